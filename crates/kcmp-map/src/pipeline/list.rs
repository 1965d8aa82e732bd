//! Step 3, list fds: every task's fds and their link texts, and the tasks'
//! family (parents before children) for the inheritance hints of grouping.

use super::pin::SelectedTask;
use crate::model::ScanProgress;
use crate::parallel::{parallel_map, parallel_map_lazy};
use crate::procfs;
use kcmp::{Error, FdNum, Pid, Result};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

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

    /// Each task's depth (0 for a root).
    pub(crate) fn depths(&self, tasks: usize) -> Vec<u32> {
        let mut depth = vec![0u32; tasks];
        for (d, level) in self.levels.iter().enumerate() {
            for &t in level {
                depth[t as usize] = d as u32;
            }
        }
        depth
    }
}

/// One task's listing.
pub(crate) struct Listing {
    /// Its fds and link texts, or why its fd directory could not be read.
    pub fds: Result<Vec<procfs::FdEntry>>,
    /// Fds whose link could not be read (ENAMETOOLONG, EACCES, ...).
    pub bad: Vec<(FdNum, Error)>,
}

/// Lists every task's fds (through `task.via`) on all workers. A link that
/// cannot be read is one bad fd, never the whole task.
pub(crate) fn list_fds(
    tasks: &[SelectedTask],
    workers: usize,
    progress: &(dyn Fn(ScanProgress) + Sync),
) -> Vec<Listing> {
    let done = AtomicU64::new(0);
    let total = tasks.len() as u64;
    // Few tasks may each hold very many fds: start every worker at once.
    let eager = tasks.len() < LAZY_TASKS;
    let one = |t: usize| {
        let listing = list_task(&tasks[t]);
        let d = done.fetch_add(1, AtomicOrdering::Relaxed) + 1;
        if d % 64 == 0 || d == total {
            progress(ScanProgress {
                phase: 0,
                done: d,
                total,
            });
        }
        listing
    };
    match eager {
        true => parallel_map(tasks.len(), workers, one),
        false => parallel_map_lazy(tasks.len(), workers, one),
    }
}

/// From this many tasks on, listing starts alone and adds workers once it
/// turns out to need them (see [`parallel_map_lazy`]).
const LAZY_TASKS: usize = 64;

/// Lists one task's fds.
pub(crate) fn list_task(task: &SelectedTask) -> Listing {
    let mut out = Listing {
        fds: Ok(Vec::new()),
        bad: Vec::new(),
    };
    let r = &task.record;
    if r.kernel_thread || r.is_zombie() {
        return out;
    }
    out.fds = procfs::FdDir::open(task.via).and_then(|dir| {
        let mut entries = Vec::new();
        let this = task.record.tgid == Pid::this();
        for fd in dir.fds()? {
            if this && fd == dir.own_number() {
                continue; // the directory being read
            }
            match dir.entry(fd) {
                Ok(Some(entry)) => entries.push(entry),
                Ok(None) => {} // closed meanwhile
                Err(e) if e.is_gone() => return Err(e),
                Err(e) => out.bad.push((fd, e)),
            }
        }
        Ok(entries)
    });
    out
}

/// This process's own fds and their links, read before the engine opens
/// anything: the caller's fds. See [`drop_engine_fds`].
pub(crate) fn own_fds() -> HashMap<FdNum, procfs::FdEntry> {
    let Ok(dir) = procfs::FdDir::open(Pid::this()) else {
        return HashMap::new();
    };
    let mut out = HashMap::new();
    for fd in dir.fds().unwrap_or_default() {
        if fd != dir.own_number() {
            if let Ok(Some(entry)) = dir.entry(fd) {
                out.insert(fd, entry);
            }
        }
    }
    out
}

/// In a scan of this very process, keeps only the caller's fds: those open
/// with the same link (exact bytes) before the scan began (`own`), and not one of
/// the engine's pidfds. The engine's pidfds, pipes, /proc directories and
/// copies all come later, so they never appear; a caller's fd closed and
/// reused during the scan is left out too (it changed).
pub(crate) fn drop_engine_fds(
    tasks: &[SelectedTask],
    listed: &mut [Listing],
    own: &HashMap<FdNum, procfs::FdEntry>,
) {
    let me = Pid::this();
    let pidfds: std::collections::HashSet<i32> = tasks
        .iter()
        .filter_map(|t| t.pidfd())
        .map(|fd| rustix::fd::AsRawFd::as_raw_fd(&fd))
        .collect();
    for (t, l) in tasks.iter().zip(listed.iter_mut()) {
        if t.record.tgid != me {
            continue;
        }
        if let Ok(entries) = &mut l.fds {
            entries.retain(|e| own.get(&e.fd) == Some(e) && !pidfds.contains(&e.fd.get()));
        }
        l.bad.retain(|(fd, _)| own.contains_key(fd));
    }
}
