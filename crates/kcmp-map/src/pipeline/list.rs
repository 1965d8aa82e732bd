//! Step 3, list fds: every task's fds and their link texts, parents before
//! children so that an inherited fd can be recognised by one kcmp.

use super::group::FileComparator;
use super::pin::SelectedTask;
use crate::model::ScanProgress;
use crate::parallel::parallel_map;
use crate::procfs;
use kcmp::{FdNum, KcmpOrdering, Pid, Result};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

/// The fds of each process (none for zombies and kernel threads), on all
/// workers: the plain listing, for callers that do not need
/// [`list_fds_inheriting`].
pub(crate) fn list_all_fds(
    tasks: &[SelectedTask],
    workers: usize,
) -> Vec<Result<Vec<procfs::FdEntry>>> {
    parallel_map(tasks.len(), workers, |i| {
        let r = &tasks[i].record;
        if r.kernel_thread || r.is_zombie() {
            Ok(Vec::new())
        } else {
            procfs::list_fds(r.pid)
        }
    })
}

/// The tasks' family: each task's parent among the selected tasks (the
/// thread-group leader for a thread when threads are tasks, the parent
/// process otherwise), and the tasks by depth, parents before children.
pub(crate) struct Family {
    pub parent: Vec<Option<u32>>,
    pub levels: Vec<Vec<u32>>,
}

impl Family {
    pub(crate) fn new(tasks: &[SelectedTask], threads: bool) -> Family {
        let mut task_of_pid: HashMap<Pid, u32> = HashMap::with_capacity(tasks.len());
        for (i, t) in tasks.iter().enumerate() {
            task_of_pid.insert(t.record.pid, i as u32);
        }
        let parent: Vec<Option<u32>> = tasks
            .iter()
            .map(|t| {
                let rec = &t.record;
                let p = if threads && rec.pid != rec.tgid {
                    rec.tgid
                } else {
                    Pid::new(rec.ppid).ok()?
                };
                task_of_pid.get(&p).copied()
            })
            .collect();
        let mut depth: Vec<Option<u32>> = vec![None; tasks.len()];
        let mut levels: Vec<Vec<u32>> = Vec::new();
        for t in 0..tasks.len() as u32 {
            // Walk up to a task of known depth (or a root), then assign.
            let mut chain = vec![t];
            let mut d = loop {
                let top = *chain.last().expect("non-empty");
                if let Some(d) = depth[top as usize] {
                    chain.pop(); // known already: only the ones below it get a depth
                    break d;
                }
                match parent[top as usize] {
                    Some(p) if !chain.contains(&p) => chain.push(p),
                    _ => {
                        depth[top as usize] = Some(0);
                        chain.pop();
                        if levels.is_empty() {
                            levels.push(Vec::new());
                        }
                        levels[0].push(top);
                        break 0;
                    }
                }
            };
            while let Some(x) = chain.pop() {
                d += 1;
                depth[x as usize] = Some(d);
                if levels.len() <= d as usize {
                    levels.resize(d as usize + 1, Vec::new());
                }
                levels[d as usize].push(x);
            }
        }
        Family { parent, levels }
    }
}

/// One task's listing: its fds, and those proven to be its parent's.
pub(crate) type Listing = (Result<Vec<procfs::FdEntry>>, Vec<FdNum>);

/// Lists every task's fds, parents before children. An fd number N that the
/// parent has too is first compared with the parent's N (one kcmp, about
/// half the cost of a readlink): when they are one description, the child's
/// fd takes the parent's link text without a readlink, and the pair is a
/// proven inheritance hint. Otherwise the fd is read as usual.
pub(crate) fn list_fds_inheriting(
    tasks: &[SelectedTask],
    family: &Family,
    threads: bool,
    cmp: &FileComparator<'_>,
    workers: usize,
    progress: &(dyn Fn(ScanProgress) + Sync),
) -> Vec<Listing> {
    let done = AtomicU64::new(0);
    let total = tasks.len() as u64;
    let mut listings: Vec<Option<Listing>> = (0..tasks.len()).map(|_| None).collect();
    for level in &family.levels {
        let results = parallel_map(level.len(), workers, |x| {
            let t = level[x] as usize;
            let r = &tasks[t].record;
            let mut hinted = Vec::new();
            let listing = if r.kernel_thread || r.is_zombie() {
                Ok(Vec::new())
            } else {
                let parent = family.parent[t].and_then(|p| match &listings[p as usize] {
                    Some((Ok(entries), _)) => {
                        Some((entries.as_slice(), tasks[p as usize].record.pid))
                    }
                    _ => None,
                });
                let dir = if threads && r.pid != r.tgid {
                    procfs::FdDir::open_task(r.tgid, r.pid)
                } else {
                    procfs::FdDir::open(r.pid)
                };
                dir.and_then(|dir| {
                    let mut entries = Vec::new();
                    for fd in dir.fds()? {
                        if let Some((pe, ppid)) = parent {
                            if let Ok(k) = pe.binary_search_by_key(&fd, |e| e.fd) {
                                if let Ok(KcmpOrdering::Equal) = cmp(r.pid, fd, ppid, fd) {
                                    entries.push(procfs::FdEntry {
                                        fd,
                                        target: pe[k].target.clone(),
                                    });
                                    hinted.push(fd);
                                    continue;
                                }
                            }
                        }
                        if let Some(target) = dir.readlink(fd)? {
                            entries.push(procfs::FdEntry { fd, target });
                        }
                    }
                    Ok(entries)
                })
            };
            let d = done.fetch_add(1, AtomicOrdering::Relaxed) + 1;
            if d % 64 == 0 || d == total {
                progress(ScanProgress {
                    phase: 0,
                    done: d,
                    total,
                });
            }
            (listing, hinted)
        });
        for (x, result) in results.into_iter().enumerate() {
            listings[level[x] as usize] = Some(result);
        }
    }
    listings
        .into_iter()
        .map(|l| l.expect("every task is on a level"))
        .collect()
}
