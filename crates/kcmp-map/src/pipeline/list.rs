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
        true if workers > 1 => {
            let listed = list_in_chunks(tasks, workers, &one);
            progress(ScanProgress {
                phase: 0,
                done: total,
                total,
            });
            listed
        }
        true => parallel_map(tasks.len(), workers, one),
        false => parallel_map_lazy(tasks.len(), workers, one),
    }
}

/// Fds whose links one worker reads at a time, of a task with more.
const CHUNK: usize = 2048;

/// [`list_fds`] for few tasks, which may each hold very many fds (4 tasks
/// of 15,000 on 2 cores left one core idle for a third of the phase): each
/// task's fd directory is read first, then its links in chunks of
/// [`CHUNK`] on all workers. `one` lists a task whose directory could not
/// be read (again, for its error) or is empty.
fn list_in_chunks(
    tasks: &[SelectedTask],
    workers: usize,
    one: &(dyn Fn(usize) -> Listing + Sync),
) -> Vec<Listing> {
    let numbers: Vec<Option<(procfs::FdDir, Vec<FdNum>)>> =
        parallel_map(tasks.len(), workers, |t| {
            let r = &tasks[t].record;
            if r.kernel_thread || r.is_zombie() {
                return None;
            }
            let dir = procfs::FdDir::open(tasks[t].via).ok()?;
            let fds = dir.fds().ok()?;
            let skip = (r.tgid == Pid::this()).then(|| dir.own_number());
            let fds = fds.into_iter().filter(|&fd| Some(fd) != skip).collect();
            Some((dir, fds))
        });
    // (task, range of its fds), or (task, None): listed by `one` (its
    // directory could not be read above: `one` says why).
    let mut parts: Vec<(usize, Option<std::ops::Range<usize>>)> = Vec::new();
    for (t, n) in numbers.iter().enumerate() {
        match n {
            Some((_, fds)) if !fds.is_empty() => {
                parts.extend(
                    (0..fds.len())
                        .step_by(CHUNK)
                        .map(|a| (t, Some(a..(a + CHUNK).min(fds.len())))),
                );
            }
            _ => parts.push((t, None)),
        }
    }
    // Workers take consecutive parts: interleaved by task, they read
    // different tasks' directories at once (two readers of one directory
    // share its dentry's reference count and the task's lock).
    let order = interleaved(&parts);
    let listed = parallel_map(parts.len(), workers, |i| match &parts[order[i]] {
        (t, None) => one(*t),
        (t, Some(range)) => {
            let (dir, fds) = numbers[*t].as_ref().expect("chunked tasks were read");
            links(dir, &fds[range.clone()])
        }
    });
    let mut listed: Vec<Option<Listing>> = listed.into_iter().map(Some).collect();
    let mut by_part: Vec<Option<Listing>> = (0..parts.len()).map(|_| None).collect();
    for (i, &p) in order.iter().enumerate() {
        by_part[p] = listed[i].take();
    }
    let mut out: Vec<Listing> = Vec::with_capacity(tasks.len());
    for ((t, _), part) in parts.iter().zip(by_part.into_iter().flatten()) {
        if out.len() == *t {
            out.push(part);
            continue;
        }
        let whole = out.last_mut().expect("a task's first part came first");
        whole.bad.extend(part.bad);
        match (&mut whole.fds, part.fds) {
            (Ok(entries), Ok(more)) => entries.extend(more),
            (Ok(_), Err(e)) => whole.fds = Err(e),
            (Err(_), _) => {}
        }
    }
    out
}

/// The indices of `parts` (grouped by task, in task order) taken round
/// robin: each task's first part, then each task's second, …
fn interleaved(parts: &[(usize, Option<std::ops::Range<usize>>)]) -> Vec<usize> {
    let mut rank = Vec::with_capacity(parts.len());
    let mut k = 0;
    for (i, (t, _)) in parts.iter().enumerate() {
        k = if i > 0 && parts[i - 1].0 == *t {
            k + 1
        } else {
            0
        };
        rank.push((k, i));
    }
    rank.sort_unstable();
    rank.into_iter().map(|(_, i)| i).collect()
}

/// The entries of `fds` in `dir`: closed ones left out, unreadable links
/// as bad fds, an error when the task is gone.
fn links(dir: &procfs::FdDir, fds: &[FdNum]) -> Listing {
    let mut out = Listing {
        fds: Ok(Vec::new()),
        bad: Vec::new(),
    };
    let mut entries = Vec::with_capacity(fds.len());
    for &fd in fds {
        match dir.entry(fd) {
            Ok(Some(entry)) => entries.push(entry),
            Ok(None) => {} // closed meanwhile
            Err(e) if e.is_gone() => {
                out.fds = Err(e);
                return out;
            }
            Err(e) => out.bad.push((fd, e)),
        }
    }
    out.fds = Ok(entries);
    out
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
    let dir = match procfs::FdDir::open(task.via) {
        Ok(dir) => dir,
        Err(e) => {
            out.fds = Err(e);
            return out;
        }
    };
    let this = task.record.tgid == Pid::this();
    match dir.fds() {
        // Without the directory being read, in a listing of this process.
        Ok(fds) => links(
            &dir,
            &fds.into_iter()
                .filter(|&fd| !(this && fd == dir.own_number()))
                .collect::<Vec<_>>(),
        ),
        Err(e) => {
            out.fds = Err(e);
            out
        }
    }
}

/// This process's own fds and their links, read before the engine opens
/// anything: the caller's fds. See [`drop_engine_fds`].
pub(crate) fn own_fds() -> HashMap<FdNum, procfs::FdEntry> {
    let Ok(dir) = procfs::FdDir::open(super::own_table::own_fds_task()) else {
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

#[cfg(test)]
mod tests {
    use super::interleaved;

    #[test]
    fn parts_are_taken_round_robin_by_task() {
        let tasks = [0, 0, 1, 2, 2, 2];
        let parts: Vec<_> = tasks.iter().map(|&t| (t, None)).collect();
        assert_eq!(interleaved(&parts), [0, 2, 3, 1, 4, 5]);
        assert!(interleaved(&[]).is_empty());
    }
}
