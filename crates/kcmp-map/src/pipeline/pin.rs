//! Step 2, pin: each selected task gets a handle (pidfd or start time) so
//! that an answer about a task that exited, or whose pid was reused, is
//! discarded rather than attributed to a newcomer.

use super::select::{skipped_from, EarlyPins};
use crate::model::{Skipped, TaskRecord};
use crate::parallel::{parallel_map_lazy, CallCounter};
use crate::procfs::{self, TaskStat};
use kcmp::{Error, PendingPin, Pid, ProcessHandle, Result};
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::Mutex;

/// A task selected for inspection, with its handle.
pub(crate) struct SelectedTask {
    /// What the output says about it (`pid` is the process, or the thread
    /// with `threads`).
    pub record: TaskRecord,
    /// The task to read and compare: `record.pid`, or a live thread of a
    /// process whose main thread has exited (its fds live on in it).
    pub via: Pid,
    /// The pin of `via`.
    pub pin: Pin,
}

/// How a task is pinned.
pub(crate) enum Pin {
    /// A pidfd (or the kernel's fallback to the start time).
    Handle(ProcessHandle),
    /// The start time only, checked again at the end: when the fd limit
    /// leaves no room for one more pidfd. `process`: the task pinned is a
    /// process, which a thread that took its pid in the same clock tick
    /// must not pass for.
    StartTime { start_time: u64, process: bool },
}

impl SelectedTask {
    /// The pidfd, when the task has one.
    pub(crate) fn pidfd(&self) -> Option<rustix::fd::BorrowedFd<'_>> {
        match &self.pin {
            Pin::Handle(h) => h.pidfd(),
            Pin::StartTime { .. } => None,
        }
    }

    /// `Ok` when the task lived from its pinning until now.
    pub(crate) fn verify(&self) -> Result<()> {
        match &self.pin {
            Pin::Handle(h) => h.verify(),
            Pin::StartTime {
                start_time,
                process,
            } => same_start(self.via, *start_time, *process),
        }
    }
}

/// `Ok` when `tid` still names the task that started at `start_time` (a
/// process, with `process`: not a thread of another that took its pid
/// within the same clock tick); [`Error::Vanished`] when not; any other
/// error (`EMFILE`: no fd to read /proc with) as it is, never as "the task
/// exited".
fn same_start(tid: Pid, start_time: u64, process: bool) -> Result<()> {
    let stat = if process {
        procfs::read_process_stat(tid)
    } else {
        procfs::read_stat(tid)
    };
    match stat {
        Ok(st) if st.start_time == start_time => Ok(()),
        Err(e) if !e.is_gone() => Err(e),
        _ => Err(Error::Vanished { pid: tid.get() }),
    }
}

/// Pidfds that may be open at once for pinning: three quarters of the fds
/// still free under the soft `RLIMIT_NOFILE` (the library never raises
/// it), keeping 128 for /proc reads and anchors.
pub(crate) fn pidfd_budget() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(1 << 20)
        .min(1 << 20) as usize;
    let open = procfs::FdDir::open(super::own_table::own_fds_task())
        .and_then(|d| d.fds())
        .map_or(64, |f| f.len());
    limit.saturating_sub(open + 128) * 3 / 4
}

/// The thread to inspect a process through: itself, or (its main thread
/// exited) its first live thread, with that thread's stat.
fn live_thread(st: &TaskStat) -> (Pid, TaskStat) {
    if st.is_zombie() {
        for tid in procfs::list_tids(st.pid).unwrap_or_default() {
            if let Ok(t) = procfs::read_task_stat(st.pid, tid) {
                if !t.is_zombie() {
                    return (tid, t);
                }
            }
        }
    }
    (st.pid, st.clone())
}

/// `pid`, or a live thread of it when its main thread has exited.
pub(crate) fn live_thread_of(pid: Pid) -> Pid {
    match procfs::read_stat(pid) {
        Ok(st) => live_thread(&st).0,
        Err(_) => pid,
    }
}

/// The stat of `tid` when it is a thread (not a process) with an fd table
/// of its own (`unshare(CLONE_FILES)`): a task in its own right.
pub(crate) fn own_table_thread(tid: Pid) -> Option<TaskStat> {
    let tgid = procfs::read_status_field(tid, "Tgid")
        .ok()??
        .trim()
        .parse::<i32>()
        .ok()?;
    let tgid = Pid::new(tgid).ok()?;
    if tgid == tid {
        return None;
    }
    let leader = live_thread_of(tgid);
    let own = kcmp::compare_process(kcmp::ProcessResource::Files, leader, tid).ok()?;
    if own.is_equal() {
        return None;
    }
    let mut st = procfs::read_task_stat(tgid, tid).ok()?;
    st.pid = tid;
    Some(st)
}

/// The threads of a process with an fd table of their own
/// (`unshare(CLONE_FILES)`): one kcmp per thread against the process.
fn own_table_threads(st: &TaskStat, calls: &CallCounter) -> Vec<Pid> {
    let (leader, _) = live_thread(st);
    procfs::list_tids(st.pid)
        .unwrap_or_default()
        .into_iter()
        .filter(|&tid| tid != st.pid && tid != leader)
        .filter(|&tid| {
            calls.add();
            kcmp::compare_process(kcmp::ProcessResource::Files, leader, tid)
                .is_ok_and(|o| !o.is_equal())
        })
        .collect()
}

/// Expands processes into tasks (threads when `threads`) and pins each.
/// The kcmp calls that find threads with their own fd table count in
/// `calls` (the process-level kinds: they compare `KCMP_FILES`).
pub(crate) fn pin_tasks(
    procs: &[TaskStat],
    early: EarlyPins,
    threads: bool,
    workers: usize,
    calls: &CallCounter,
) -> (Vec<SelectedTask>, Vec<Skipped>) {
    let budget = AtomicUsize::new(early.budget_left.unwrap_or_else(pidfd_budget));
    let named_threads = early.own_table_threads;
    let early = Mutex::new(early.handles);
    let results = parallel_map_lazy(procs.len(), workers, |i| {
        let st = &procs[i];
        let mut early = early
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&st.pid);
        let tids = if threads {
            procfs::list_tids(st.pid).unwrap_or_else(|_| vec![st.pid])
        } else {
            let mut tids = vec![st.pid];
            if st.num_threads > 1 && !st.is_kernel_thread() {
                tids.extend(own_table_threads(st, calls));
            }
            tids
        };
        let named_thread = named_threads.contains(&st.pid);
        let mut out: Vec<std::result::Result<SelectedTask, Skipped>> = Vec::new();
        for tid in tids {
            out.push(pin_task(
                st,
                tid,
                threads,
                named_thread,
                &mut early,
                &budget,
            ));
        }
        if !named_thread {
            check_threads_of(st, early.as_ref(), &mut out);
        }
        out
    });
    let mut tasks = Vec::new();
    let mut skipped = Vec::new();
    for r in results.into_iter().flatten() {
        match r {
            Ok(t) => tasks.push(t),
            Err(s) => skipped.push(s),
        }
    }
    (tasks, skipped)
}

/// Pins task `tid` of process `st` (through a live thread when `st` is a
/// zombie whose threads live on): with `early`, the process's own pin from
/// selection, when it is inspected through itself.
fn pin_task(
    st: &TaskStat,
    tid: Pid,
    threads: bool,
    named_thread: bool,
    early: &mut Option<ProcessHandle>,
    budget: &AtomicUsize,
) -> std::result::Result<SelectedTask, Skipped> {
    // With threads as tasks, the leader is itself even when its main
    // thread exited (its live threads are tasks of their own). A zombie
    // marked single-threaded may be a named thread's process: read through
    // its live thread.
    let single = st.num_threads == 1 && !st.is_zombie();
    let stat = if tid == st.pid && (single || threads) {
        Ok((st.pid, st.clone()))
    } else if tid == st.pid {
        Ok(live_thread(st))
    } else {
        procfs::read_task_stat(st.pid, tid).map(|s| (tid, s))
    };
    let pinned = stat.and_then(|(via, stat)| {
        let itself = via == st.pid && tid == st.pid;
        let own = if itself { early.take() } else { None };
        let pin = match own {
            Some(h) => Pin::Handle(h),
            None => pin(via, stat.start_time, itself && !named_thread, budget)?,
        };
        Ok((via, stat, pin))
    });
    match pinned {
        Ok((via, stat, pin)) => Ok(SelectedTask {
            record: TaskRecord {
                pid: tid,
                tgid: st.pid,
                ppid: stat.ppid,
                comm: stat.comm.clone(),
                state: stat.state,
                kernel_thread: stat.is_kernel_thread(),
            },
            via,
            pin,
        }),
        Err(e) => Err(skipped_from(tid, &e, "pin")),
    }
}

/// Threads of process `st` (listed in /proc/PID/task) pinned in `out`:
/// once they are pinned, the process must still be the one selected (not
/// reaped, so its pid names it: a process whose main thread exited stays
/// a zombie until its last thread exits), or its pid, reaped and reused,
/// listed another process's threads. Checked with its own pin (`early`, or
/// its task in `out`), else its start time; on failure its threads are
/// skipped.
fn check_threads_of(
    st: &TaskStat,
    early: Option<&ProcessHandle>,
    out: &mut [std::result::Result<SelectedTask, Skipped>],
) {
    let is_thread = |t: &SelectedTask| t.via != st.pid;
    if !out.iter().any(|t| t.as_ref().is_ok_and(is_thread)) {
        return;
    }
    let itself = out
        .iter()
        .flatten()
        .find(|t| t.via == st.pid && matches!(t.pin, Pin::Handle(_)));
    let still = match (early, itself) {
        (Some(h), _) => h.verify(),
        (None, Some(t)) => t.verify(),
        (None, None) => same_start(st.pid, st.start_time, true),
    };
    let Err(e) = still else {
        return;
    };
    for task in out.iter_mut() {
        if let Ok(t) = task {
            if is_thread(t) {
                *task = Err(skipped_from(t.record.pid, &e, "pin"));
            }
        }
    }
}

/// Takes one pidfd from `budget`: false when it is spent.
pub(crate) fn take_pidfd(budget: &AtomicUsize) -> bool {
    budget
        .fetch_update(AtomicOrdering::Relaxed, AtomicOrdering::Relaxed, |b| {
            b.checked_sub(1)
        })
        .is_ok()
}

/// Pins `tid` with a pidfd while the budget lasts, by start time after. A
/// process (`process`) is pinned as a process: its pidfd first, then its
/// stat, which a thread of another that took its pid fails (a pidfd of a
/// thread would pass a start-time check within the same clock tick).
fn pin(tid: Pid, start_time: u64, process: bool, budget: &AtomicUsize) -> Result<Pin> {
    crate::freeze::step();
    if !take_pidfd(budget) {
        return same_start(tid, start_time, process).map(|()| Pin::StartTime {
            start_time,
            process,
        });
    }
    if !process {
        return ProcessHandle::pin(tid, start_time).map(Pin::Handle);
    }
    let read = || match procfs::read_process_stat(tid) {
        Ok(st) if st.start_time == start_time => Ok((start_time, ())),
        Err(e) if !e.is_gone() => Err(e),
        _ => Err(Error::Vanished { pid: tid.get() }),
    };
    let (handle, ()) = PendingPin::open(tid)?.read_then_pin(read)?;
    Ok(Pin::Handle(handle))
}

/// Makes room for `extra` more open fds within the soft `RLIMIT_NOFILE`
/// (never raised here: that is the caller's decision, see
/// [`crate::raise_fd_limit`]): grows the fd table once, while this thread
/// may still be the only one (growing a shared table later waits for an
/// RCU grace period each time it doubles).
pub(crate) fn reserve_fds(extra: usize) {
    let want = (extra + 256) as u64;
    let usable = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    // Growing the table: duplicate any fd to the highest number needed.
    let target = want.min(usable).saturating_sub(1).min(i32::MAX as u64) as i32;
    if let Ok(dir) = rustix::fs::openat(
        rustix::fs::CWD,
        "/proc/self",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) {
        let _ = rustix::io::fcntl_dupfd_cloexec(&dir, target);
    }
}

/// Marks every task that did not live through the scan as failed: its
/// answers are discarded.
pub(crate) fn verify_tasks(
    tasks: &[SelectedTask],
    failed: &mut std::collections::HashMap<u32, Skipped>,
) {
    for (i, t) in tasks.iter().enumerate() {
        if failed.contains_key(&(i as u32)) {
            continue;
        }
        if let Err(e) = t.verify() {
            let mut skipped = skipped_from(t.record.pid, &e, "verify");
            skipped.detail.push_str("; its answers were discarded");
            failed.insert(i as u32, skipped);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{pin, pin_tasks, same_start, Pin};
    use crate::parallel::CallCounter;
    use crate::pipeline::select::EarlyPins;
    use crate::procfs;
    use kcmp::Pid;
    use kcmp::ProcessHandle;
    use std::collections::{HashMap, HashSet};
    use std::sync::atomic::AtomicUsize;
    use std::sync::mpsc;

    /// A thread of this process that waits until its sender is dropped:
    /// its tid, that sender, its handle.
    fn parked_thread() -> (i32, mpsc::Sender<()>, std::thread::JoinHandle<()>) {
        let (tid_tx, tid_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let tid = rustix::thread::gettid().as_raw_nonzero().get();
            tid_tx.send(tid).unwrap();
            let _ = stop_rx.recv();
        });
        (tid_rx.recv().unwrap(), stop_tx, thread)
    }

    /// A pid that names a thread now, with the start time its process had
    /// (a pid reused by a thread of another within one clock tick): a
    /// process pinned by that start time must not be that thread, with or
    /// without a pidfd; a thread selected as a task of its own still is.
    #[test]
    fn a_thread_with_the_start_time_of_the_process_it_replaced_is_refused() {
        let (tid, stop_tx, thread) = parked_thread();
        let tid = Pid::new(tid).unwrap();
        let start_time = procfs::read_task_stat(Pid::this(), tid).unwrap().start_time;
        assert!(same_start(tid, start_time, true).is_err(), "by start time");
        assert!(same_start(tid, start_time, false).is_ok());
        let budget = AtomicUsize::new(1);
        assert!(pin(tid, start_time, true, &budget).is_err(), "with a pidfd");
        let budget = AtomicUsize::new(1);
        assert!(matches!(
            pin(tid, start_time, false, &budget),
            Ok(Pin::Handle(_))
        ));
        let none_left = AtomicUsize::new(0);
        assert!(matches!(
            pin(tid, start_time, false, &none_left),
            Ok(Pin::StartTime { process: false, .. })
        ));
        drop(stop_tx);
        thread.join().unwrap();
    }

    /// A process selected as a zombie (pinned by its pidfd) is reaped, and
    /// its pid given to a thread of this process before it is pinned: a
    /// zombie is read through a live thread of its own (its main thread
    /// may have exited before the others), and /proc/PID/task now lists
    /// this process's threads. None of them may stand in for it.
    #[test]
    fn a_reaped_zombie_whose_pid_names_a_thread_of_another_lends_it_no_thread() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: not root (ns_last_pid)");
            return;
        }
        for _ in 0..20 {
            let mut child = std::process::Command::new("/bin/sleep")
                .arg("30")
                .spawn()
                .unwrap();
            let pid = Pid::new(child.id() as i32).unwrap();
            child.kill().unwrap();
            let zombie = loop {
                match procfs::read_stat(pid) {
                    Ok(st) if st.is_zombie() => break st,
                    _ => std::thread::yield_now(),
                }
            };
            let read = || procfs::read_stat(pid).map(|s| (s.start_time, ()));
            let (handle, ()) = ProcessHandle::open_with(pid, read).unwrap();
            child.wait().unwrap();
            let _ = std::fs::write("/proc/sys/kernel/ns_last_pid", (pid.get() - 1).to_string());
            let (tid, stop_tx, thread) = parked_thread();
            let reused = tid == pid.get();
            let early = EarlyPins {
                handles: HashMap::from([(pid, handle)]),
                budget_left: Some(16),
                own_table_threads: HashSet::new(),
            };
            let calls = CallCounter::default();
            let (tasks, _skipped) = pin_tasks(&[zombie], early, false, 1, &calls);
            drop(stop_tx);
            thread.join().unwrap();
            if reused {
                let me = std::process::id() as i32;
                let lent: Vec<i32> = tasks
                    .iter()
                    .map(|t| t.via.get())
                    .filter(|&v| procfs::read_stat(Pid::new(v).unwrap()).is_ok() && v != pid.get())
                    .collect();
                assert!(
                    tasks.is_empty(),
                    "the reaped zombie {pid} was pinned through {lent:?} (threads of {me})"
                );
                return;
            }
        }
        eprintln!("skipped: no pid could be reused (a busy host)");
    }
}
