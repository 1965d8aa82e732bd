//! Step 1, select: which processes a scan inspects (all, named pids, or
//! trees), from one parallel read of every /proc/PID/stat.

use super::ScanOptions;
use crate::model::Skipped;
use crate::parallel::{parallel_map_lazy, workers};
use crate::procfs::{self, TaskStat};
use kcmp::{Error, Pid, ProcessHandle, Result};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::AtomicUsize;

/// A [`Skipped`] entry for `pid` from the error of `what`.
pub(crate) fn skipped_from(pid: Pid, err: &Error, what: &str) -> Skipped {
    let reason = if err.is_permission() {
        "EPERM".to_string()
    } else if err.is_gone() {
        "ESRCH".to_string()
    } else {
        err.errno_name().unwrap_or("E?").to_string()
    };
    let detail = if err.is_permission() {
        format!("{what}: permission denied ({err})")
    } else if err.is_gone() {
        format!("{what}: the task exited ({err})")
    } else {
        format!("{what}: {err}")
    };
    Skipped {
        pid,
        reason,
        detail,
    }
}

/// Processes pinned as they were selected ([`select_processes`]).
pub(crate) struct EarlyPins {
    /// Their handles, by pid.
    pub handles: HashMap<Pid, ProcessHandle>,
    /// The pidfds pinning may still open, when selection took from the
    /// budget ([`super::pin::pidfd_budget`]) already.
    pub budget_left: Option<usize>,
}

/// Every process's stat, for selection (ppid links) and records. With
/// `pin`, every process is pinned as its stat is read, while `pin`'s
/// budget of pidfds lasts ([`ProcessHandle::open_with`]: the pidfd first,
/// then the stat, which names the same task when the pidfd shows it alive
/// after), so that pinning needs no second read.
fn all_stats(
    workers: usize,
    pin: Option<&AtomicUsize>,
) -> Result<HashMap<Pid, (TaskStat, Option<ProcessHandle>)>> {
    let pids = procfs::list_pids()?;
    let chunk = pids.len().div_ceil(workers * 4).max(1);
    // A pid listed as a process may name a thread of another by the time
    // its stat is read (reused): not a process to select.
    let stat_of = |p: Pid| {
        if pin.is_some_and(super::pin::take_pidfd) {
            let read = || procfs::read_process_stat(p).map(|s| (s.start_time, s));
            ProcessHandle::open_with(p, read).map(|(h, s)| (s, Some(h)))
        } else {
            procfs::read_process_stat(p).map(|s| (s, None))
        }
    };
    let parts = parallel_map_lazy(pids.len().div_ceil(chunk), workers, |c| {
        pids[c * chunk..((c + 1) * chunk).min(pids.len())]
            .iter()
            .filter_map(|&p| stat_of(p).ok().map(|s| (p, s)))
            .collect::<Vec<_>>()
    });
    Ok(parts.into_iter().flatten().collect())
}

/// The processes (thread-group leaders) selected by `options`, excluding
/// `exclude` and this process (unless it was named explicitly). Unknown
/// explicit pids are reported. When every process is selected, they are
/// pinned as they are read (those the pidfd budget allows), and returned
/// pinned with the selection.
pub(crate) fn select_processes(
    options: &ScanOptions,
    exclude: &HashSet<Pid>,
    skipped: &mut Vec<Skipped>,
) -> Result<(Vec<TaskStat>, EarlyPins)> {
    let me = Pid::this();
    let everyone = options.pids.is_empty() && options.trees.is_empty();
    let budget = everyone.then(|| AtomicUsize::new(super::pin::pidfd_budget()));
    let read = all_stats(workers(options.workers), budget.as_ref())?;
    let mut stats: HashMap<Pid, TaskStat> = HashMap::with_capacity(read.len());
    let mut handles = HashMap::new();
    for (pid, (stat, handle)) in read {
        stats.insert(pid, stat);
        handles.extend(handle.map(|h| (pid, h)));
    }
    let mut chosen: BTreeSet<Pid> = BTreeSet::new();
    let mut threads: Vec<TaskStat> = Vec::new();
    if everyone {
        chosen.extend(stats.keys().copied());
    } else {
        let mut children: HashMap<i32, Vec<Pid>> = HashMap::new();
        for (pid, st) in &stats {
            children.entry(st.ppid).or_default().push(*pid);
        }
        for &p in options.pids.iter().chain(&options.trees) {
            if !stats.contains_key(&p) {
                // A thread id, or a process we could not stat.
                match procfs::read_stat(p) {
                    Ok(_) => threads.extend(named_thread(p)),
                    Err(e) => skipped.push(skipped_from(p, &e, "read /proc")),
                }
            }
        }
        for &p in &options.pids {
            if stats.contains_key(&p) {
                chosen.insert(p);
            }
        }
        // Walked apart from `chosen`: a pid named by --pid inside a tree
        // still has its descendants walked.
        let mut walked: HashSet<Pid> = HashSet::new();
        for &root in &options.trees {
            if !stats.contains_key(&root) {
                continue;
            }
            let mut stack = vec![root];
            while let Some(p) = stack.pop() {
                if walked.insert(p) {
                    chosen.insert(p);
                    if let Some(kids) = children.get(&p.get()) {
                        stack.extend(kids.iter().copied());
                    }
                }
            }
        }
    }
    // This process is left out (its own /proc reading and pidfds are noise),
    // unless it was named explicitly as a pid or a tree's root.
    if !options.pids.contains(&me) && !options.trees.contains(&me) {
        chosen.remove(&me);
    }
    let procs: Vec<TaskStat> = chosen
        .into_iter()
        .filter(|p| !exclude.contains(p))
        .filter_map(|p| stats.get(&p).cloned())
        .chain(threads)
        .collect();
    // The pins of processes left out are closed here.
    let selected: HashSet<Pid> = procs.iter().map(|s| s.pid).collect();
    handles.retain(|p, _| selected.contains(p));
    let pins = EarlyPins {
        handles,
        budget_left: budget.map(AtomicUsize::into_inner),
    };
    Ok((procs, pins))
}

/// A thread named explicitly: it is inspected as a task of its own, with
/// its own fd table when it has one (`unshare(CLONE_FILES)`), otherwise as
/// its process. Marked single-threaded so that pinning does not expand it.
fn named_thread(tid: Pid) -> Option<TaskStat> {
    let tgid: i32 = procfs::read_status_field(tid, "Tgid")
        .ok()??
        .trim()
        .parse()
        .ok()?;
    let tgid = Pid::new(tgid).ok()?;
    let mut st = match crate::pipeline::pin::own_table_thread(tid) {
        Some(st) => st,
        None => procfs::read_stat(tgid).ok()?,
    };
    st.num_threads = 1;
    Some(st)
}
