//! The ptrace side of a freeze: seize and interrupt every thread, wait for
//! the stops, detach. Runs in the freezer process ([`super::helper`]).

use super::{NotFrozen, NotFrozenKind, FREEZER_COMM};
use crate::procfs;
use crate::sys::ptrace::{self, TraceeState};
use kcmp::errno_name;
use kcmp::Pid;
use rustix::io::Errno;
use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

/// What a freeze achieved.
pub(crate) struct Report {
    pub frozen: Vec<Pid>,
    pub not_frozen: Vec<NotFrozen>,
    pub threads: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ThreadState {
    /// Seized and interrupted; the stop has not been seen yet.
    Pending,
    /// Stopped; detach with this signal (0, or the signal of a
    /// signal-delivery-stop).
    Stopped(i32),
    /// Exited, vanished or detached.
    Gone,
}

#[derive(Default)]
struct Proc {
    /// The pids given for this thread group.
    requested: Vec<Pid>,
    threads: BTreeMap<i32, ThreadState>,
    /// Tids that need no stop (zombie threads).
    skipped: HashSet<i32>,
    failed: Option<Failure>,
}

type Failure = (NotFrozenKind, String, Option<Errno>);

/// The tracer of one frozen set.
#[derive(Default)]
pub(crate) struct Tracer {
    procs: BTreeMap<i32, Proc>,
}

fn stat_of(pid: i32) -> Option<procfs::TaskStat> {
    procfs::read_stat(Pid::new(pid).ok()?).ok()
}

fn status_number(pid: i32, key: &str) -> Option<i64> {
    procfs::read_status_field(Pid::new(pid).ok()?, key)
        .ok()??
        .parse()
        .ok()
}

/// The ancestors of `pid`, from its parent up to (and including) pid 1.
fn ancestors(pid: i32) -> HashSet<i32> {
    let mut set = HashSet::new();
    let mut pid = pid;
    while let Some(ppid) = stat_of(pid).map(|s| s.ppid) {
        if ppid <= 0 || !set.insert(ppid) {
            break;
        }
        pid = ppid;
    }
    set
}

fn list_tasks(tgid: i32) -> Option<Vec<i32>> {
    let tids = procfs::list_tids(Pid::new(tgid).ok()?).ok()?;
    Some(tids.into_iter().map(Pid::get).collect())
}

/// Why thread `tid` of `tgid` did not reach its stop: uninterruptible
/// sleep, a vfork parent, or plain slowness.
fn why_not_stopped(tgid: i32, tid: i32) -> Failure {
    let (p, t) = (Pid::new(tgid).ok(), Pid::new(tid).ok());
    let state = p
        .zip(t)
        .and_then(|(p, t)| procfs::read_task_stat(p, t).ok())
        .map(|s| s.state);
    let wchan = std::fs::read_to_string(format!("/proc/{tgid}/task/{tid}/wchan"))
        .ok()
        .filter(|w| !w.is_empty() && w != "0");
    let vfork = wchan.as_deref().is_some_and(|w| w.contains("vfork")) || has_vfork_child(tgid);
    match state {
        Some('D') if vfork => (
            NotFrozenKind::Vfork,
            "a vfork parent: it waits for its child to exec or exit (uninterruptible)".into(),
            None,
        ),
        Some('D') => (
            NotFrozenKind::UninterruptibleSleep,
            match wchan {
                Some(w) => format!("thread {tid} is in uninterruptible sleep (state D, in {w})"),
                None => format!("thread {tid} is in uninterruptible sleep (state D)"),
            },
            None,
        ),
        Some(s) => (
            NotFrozenKind::TimedOut,
            format!("thread {tid} did not reach its stop in time (state {s})"),
            Some(Errno::TIMEDOUT),
        ),
        None => (
            NotFrozenKind::Vanished,
            "vanished".into(),
            Some(Errno::SRCH),
        ),
    }
}

/// True when a child of `tgid` shares its address space (kcmp `KCMP_VM`)
/// without being one of its threads: a vfork child.
fn has_vfork_child(tgid: i32) -> bool {
    let Ok(parent) = Pid::new(tgid) else {
        return false;
    };
    let children =
        std::fs::read_to_string(format!("/proc/{tgid}/task/{tgid}/children")).unwrap_or_default();
    children
        .split_whitespace()
        .filter_map(|c| Pid::new(c.parse().ok()?).ok())
        .any(|c| {
            kcmp::compare_process(kcmp::ProcessResource::Vm, parent, c).is_ok_and(|o| o.is_equal())
        })
}

impl Tracer {
    /// Freezes `pids` for the process `me` (never freezing `me`, its
    /// ancestors, this freezer, kernel threads or another kcmp's freezer).
    /// `abort` is polled while waiting; when it says true, freezing stops
    /// where it is.
    pub fn freeze_all(
        &mut self,
        pids: &[Pid],
        me: i32,
        timeout: Duration,
        abort: &mut dyn FnMut() -> bool,
    ) -> Report {
        let mut not_frozen = Vec::new();
        self.select(pids, me, &mut not_frozen);
        let deadline = Instant::now() + timeout;
        loop {
            let mut grew = false;
            for (&tgid, proc_) in self.procs.iter_mut() {
                grew |= proc_.failed.is_none() && seize_new_threads(tgid, proc_);
            }
            self.wait_for_stops(deadline, abort);
            if !grew || abort() {
                break;
            }
            if Instant::now() >= deadline {
                // One last listing: only processes that still show new
                // threads kept growing.
                for (&tgid, proc_) in self.procs.iter_mut() {
                    if proc_.failed.is_none() && seize_new_threads(tgid, proc_) {
                        proc_.failed = Some((
                            NotFrozenKind::TimedOut,
                            format!("new threads kept appearing for {} ms", timeout.as_millis()),
                            Some(Errno::TIMEDOUT),
                        ));
                    }
                }
                break;
            }
        }
        self.release_failed();
        self.report(not_frozen)
    }

    fn select(&mut self, pids: &[Pid], me: i32, not_frozen: &mut Vec<NotFrozen>) {
        let ancestors = ancestors(me);
        let freezer = std::process::id() as i32;
        for &pid in pids {
            let nf = |kind: NotFrozenKind, reason: &str, errno: Option<Errno>| NotFrozen {
                pid,
                kind,
                reason: reason.to_string(),
                errno,
            };
            let Some(tgid) = status_number(pid.get(), "Tgid").map(|t| t as i32) else {
                not_frozen.push(nf(NotFrozenKind::Vanished, "vanished", Some(Errno::SRCH)));
                continue;
            };
            let stat = stat_of(tgid);
            let reason = if tgid == me || tgid == freezer {
                Some((NotFrozenKind::CallingProcess, "the calling process itself"))
            } else if ancestors.contains(&tgid) {
                Some((
                    NotFrozenKind::Ancestor,
                    "an ancestor of the calling process",
                ))
            } else if stat.as_ref().is_some_and(|s| s.comm == FREEZER_COMM) {
                Some((
                    NotFrozenKind::Freezer,
                    "the freezer of another kcmp (freezers never freeze each other)",
                ))
            } else if stat.as_ref().is_some_and(|s| s.is_kernel_thread()) {
                Some((NotFrozenKind::KernelThread, "a kernel thread"))
            } else {
                None
            };
            match (reason, stat) {
                (_, None) => {
                    not_frozen.push(nf(NotFrozenKind::Vanished, "vanished", Some(Errno::SRCH)))
                }
                (Some((kind, why)), _) => not_frozen.push(nf(kind, why, None)),
                (None, Some(_)) => self.procs.entry(tgid).or_default().requested.push(pid),
            }
        }
    }

    fn report(&self, mut not_frozen: Vec<NotFrozen>) -> Report {
        let mut frozen = Vec::new();
        let mut threads = 0;
        for (&tgid, proc_) in &self.procs {
            let stopped = proc_
                .threads
                .values()
                .filter(|s| matches!(s, ThreadState::Stopped(_)))
                .count();
            let outcome: Option<Failure> = match &proc_.failed {
                Some(f) => Some(f.clone()),
                None if stopped > 0 => None,
                None if stat_of(tgid).is_some_and(|s| s.is_zombie()) => Some((
                    NotFrozenKind::Zombie,
                    "a zombie (nothing left to stop)".into(),
                    None,
                )),
                None => Some((
                    NotFrozenKind::Vanished,
                    "vanished".into(),
                    Some(Errno::SRCH),
                )),
            };
            match outcome {
                None => {
                    threads += stopped;
                    frozen.extend(proc_.requested.iter().copied());
                }
                Some((kind, reason, errno)) => {
                    not_frozen.extend(proc_.requested.iter().map(|&pid| NotFrozen {
                        pid,
                        kind,
                        reason: reason.clone(),
                        errno,
                    }));
                }
            }
        }
        frozen.sort();
        frozen.dedup();
        not_frozen.sort_by_key(|n| n.pid);
        Report {
            frozen,
            not_frozen,
            threads,
        }
    }

    /// Polls every pending thread until all have stopped or exited, or the
    /// deadline passes or `abort` says so (then their processes are marked
    /// failed, with the reason their threads give).
    fn wait_for_stops(&mut self, deadline: Instant, abort: &mut dyn FnMut() -> bool) {
        let mut nap = Duration::from_micros(20);
        loop {
            let mut pending = false;
            for proc_ in self.procs.values_mut() {
                pending |= poll_pending(proc_);
            }
            let now = Instant::now();
            if !pending {
                return;
            }
            if now >= deadline || abort() {
                for (&tgid, proc_) in self.procs.iter_mut() {
                    if proc_.failed.is_some() {
                        continue;
                    }
                    let stuck = proc_
                        .threads
                        .iter()
                        .find(|(_, s)| **s == ThreadState::Pending);
                    if let Some((&tid, _)) = stuck {
                        proc_.failed = Some(why_not_stopped(tgid, tid));
                    }
                }
                return;
            }
            std::thread::sleep(nap.min(deadline - now));
            nap = (nap * 2).min(Duration::from_millis(2));
        }
    }

    /// Resumes at once the stopped threads of processes that could not be
    /// frozen as a whole, so that they are really not stopped; their pending
    /// threads are detached as soon as they stop ([`Self::release_late`]).
    fn release_failed(&mut self) {
        for proc_ in self.procs.values_mut() {
            if proc_.failed.is_some() {
                let _ = detach_stopped(proc_);
            }
        }
    }

    /// Detaches threads of failed processes that reached their stop late
    /// (a D-state thread woke up). Called periodically while frozen.
    pub fn release_late(&mut self) {
        for proc_ in self.procs.values_mut().filter(|p| p.failed.is_some()) {
            poll_pending(proc_);
            let _ = detach_stopped(proc_);
        }
    }

    /// Detaches every stopped thread; returns the first error a detach gave.
    /// Threads still pending are released when the freezer exits.
    pub fn thaw(&mut self) -> Result<(), String> {
        let mut first_err = None;
        for proc_ in self.procs.values_mut() {
            poll_pending(proc_);
            if let Err(e) = detach_stopped(proc_) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

/// Updates the pending threads of one process; true when some still run.
fn poll_pending(proc_: &mut Proc) -> bool {
    let mut pending = false;
    for (&tid, state) in proc_.threads.iter_mut() {
        if *state != ThreadState::Pending {
            continue;
        }
        match ptrace::peek(tid) {
            Ok(TraceeState::Stopped { status, trapped }) => {
                let event = (status >> 8) & 0xff;
                let sig = status & 0x7f;
                // A signal-delivery-stop (no event): the signal is delivered
                // on detach. Event stops carry none.
                let reinject = if trapped && event == 0 { sig } else { 0 };
                *state = ThreadState::Stopped(reinject);
            }
            Ok(TraceeState::Exited) => {
                let _ = ptrace::reap_exited(tid);
                *state = ThreadState::Gone;
            }
            Ok(TraceeState::Running) => pending = true,
            // ECHILD: no longer ours to wait for (reaped, gone).
            Err(_) => *state = ThreadState::Gone,
        }
    }
    pending
}

/// Detaches the stopped threads of one process.
fn detach_stopped(proc_: &mut Proc) -> Result<(), String> {
    let mut first_err = None;
    for (&tid, state) in proc_.threads.iter_mut() {
        match *state {
            ThreadState::Stopped(sig) => match ptrace::detach(tid, sig) {
                Ok(()) => {}
                // Killed while stopped (SIGKILL wakes tracees): it is no
                // longer in a ptrace stop. Reap its exit if any.
                Err(e) if e == Errno::SRCH => {
                    let _ = ptrace::reap_exited(tid);
                }
                Err(e) => {
                    first_err
                        .get_or_insert_with(|| format!("PTRACE_DETACH {tid}: {}", errno_name(e)));
                }
            },
            ThreadState::Gone => {
                let _ = ptrace::reap_exited(tid);
            }
            ThreadState::Pending => continue,
        }
        *state = ThreadState::Gone;
    }
    first_err.map_or(Ok(()), Err)
}

/// Seizes and interrupts the threads of `tgid` not seen before. Returns
/// true when there were any.
fn seize_new_threads(tgid: i32, proc_: &mut Proc) -> bool {
    let Some(tids) = list_tasks(tgid) else {
        return false;
    };
    let mut any = false;
    for tid in tids {
        if proc_.threads.contains_key(&tid) || proc_.skipped.contains(&tid) {
            continue;
        }
        any = true;
        match ptrace::seize(tid) {
            Ok(()) => {
                let state = match ptrace::interrupt(tid) {
                    Ok(()) => ThreadState::Pending,
                    Err(_) => ThreadState::Gone,
                };
                proc_.threads.insert(tid, state);
            }
            Err(e) if e == Errno::SRCH => {
                proc_.skipped.insert(tid);
            }
            Err(e) => {
                if stat_of(tid).is_none_or(|s| s.is_zombie()) {
                    // An exited thread: nothing to stop.
                    proc_.skipped.insert(tid);
                    continue;
                }
                proc_.failed = Some(seize_failure(tid, e));
                return any;
            }
        }
    }
    any
}

/// The reason for a refused `PTRACE_SEIZE`.
fn seize_failure(tid: i32, e: Errno) -> Failure {
    let tracer = status_number(tid, "TracerPid").unwrap_or(0) as i32;
    if e == Errno::PERM && tracer != 0 {
        // TracerPid names the tracing thread; report its process, and for
        // another kcmp's freezer, that kcmp.
        let mut by = status_number(tracer, "Tgid").unwrap_or(tracer as i64) as i32;
        if let Some(st) = stat_of(by).filter(|s| s.comm == FREEZER_COMM) {
            by = st.ppid;
        }
        (
            NotFrozenKind::AlreadyTraced,
            format!("already traced by process {by}"),
            Some(e),
        )
    } else if e == Errno::PERM {
        (
            NotFrozenKind::PermissionDenied,
            "permission denied (ptrace attach refused: another user's process, \
             Yama ptrace_scope, or a non-dumpable process)"
                .into(),
            Some(e),
        )
    } else {
        (
            NotFrozenKind::Failed,
            format!("PTRACE_SEIZE failed: {}", errno_name(e)),
            Some(e),
        )
    }
}
