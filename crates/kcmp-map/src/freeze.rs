//! Stopping processes while they are inspected, and resuming them exactly as
//! they were.
//!
//! kcmp's answers about running processes can be stale by the time they are
//! read; the man page advises stopping the processes first. [`freeze`] stops
//! every thread of every given process with `PTRACE_SEIZE` +
//! `PTRACE_INTERRUPT` and returns a [`FrozenSet`]; dropping it (or calling
//! [`FrozenSet::thaw`]) detaches with `PTRACE_DETACH`.
//!
//! ## Guarantees
//! - **Exactly as they were.** No signal is ever sent. A process that was
//!   already stopped (group-stop, state `T`) is stopped again by the kernel
//!   when it is detached; a running one resumes. A signal that arrived
//!   during the freeze is delivered on detach.
//! - **Kill-safe.** The kernel detaches every tracee when its tracer exits,
//!   whatever the reason: `SIGKILL`, `SIGTERM`, `SIGINT` (their default
//!   actions end the process) or a panic (unwinding drops the set; aborting
//!   ends the process). No inspected process stays stopped.
//! - **All threads.** `/proc/PID/task` is listed again after every round of
//!   stops, until a listing shows no new thread; since every listed thread is
//!   stopped by then, no thread can be created behind the freezer's back.
//! - **Never** freezes the calling process, its ancestors (the shell and
//!   terminal waiting for it), or kernel threads; these, processes that are
//!   already traced, that deny permission or that vanish are listed by
//!   [`FrozenSet::not_frozen`] with the reason, and the rest are frozen.
//!
//! ## One thread
//! ptrace requests are valid only from the thread that attached. All ptrace
//! calls of one [`FrozenSet`] therefore run on a private tracer thread that
//! lives exactly as long as the set: the set itself may be used, sent and
//! dropped from any thread. When the tracer thread ends, the kernel releases
//! whatever it still traces (for example a thread that never reached its
//! stop within the timeout), so even [`std::mem::forget`] on a set only
//! keeps processes stopped until this process exits.
//!
//! Do not `wait` for a frozen process from this process while it is frozen:
//! the wait could take the kernel's stop report meant for the tracer. And
//! print nothing to a pipe whose reader may be frozen before thawing.
//!
//! ```no_run
//! use kcmp::Pid;
//! use kcmp_map::freeze::freeze;
//! let pid = Pid::new(1234)?;
//! let set = freeze(&[pid])?;
//! for nf in set.not_frozen() {
//!     eprintln!("not frozen: {} ({})", nf.pid, nf.reason);
//! }
//! // ... compare with kcmp while the processes stand still ...
//! set.thaw()?;
//! # Ok::<(), kcmp::Error>(())
//! ```

use crate::procfs;
use crate::sys::ptrace::{self, TraceeState};
use kcmp::Pid;
use kcmp::{errno_name, Error, Result};
use rustix::io::Errno;
use std::collections::{BTreeMap, HashSet};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// `PTRACE_EVENT_STOP`, in bits 8..16 of a ptrace stop's status.
const PTRACE_EVENT_STOP: i32 = 128;

/// The default time [`freeze`] waits for every thread to reach its stop.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a process was not frozen, as a category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotFrozenKind {
    /// The calling process itself.
    CallingProcess,
    /// An ancestor of the calling process (its shell, its terminal…).
    Ancestor,
    /// A kernel thread (`PF_KTHREAD`).
    KernelThread,
    /// A zombie: nothing left to stop.
    Zombie,
    /// It exited (or its pid vanished) before or while freezing.
    Vanished,
    /// Another tracer (a debugger, strace, another kcmp) holds it.
    AlreadyTraced,
    /// ptrace attach was refused.
    PermissionDenied,
    /// A thread did not stop in time, or threads kept appearing.
    TimedOut,
    /// Another error of `PTRACE_SEIZE`.
    Failed,
}

impl NotFrozenKind {
    /// A short code for JSON: `"self"`, `"ancestor"`, `"kernel_thread"`,
    /// `"zombie"`, `"vanished"`, `"already_traced"`, `"permission"`,
    /// `"timeout"` or `"error"`.
    pub fn code(self) -> &'static str {
        match self {
            NotFrozenKind::CallingProcess => "self",
            NotFrozenKind::Ancestor => "ancestor",
            NotFrozenKind::KernelThread => "kernel_thread",
            NotFrozenKind::Zombie => "zombie",
            NotFrozenKind::Vanished => "vanished",
            NotFrozenKind::AlreadyTraced => "already_traced",
            NotFrozenKind::PermissionDenied => "permission",
            NotFrozenKind::TimedOut => "timeout",
            NotFrozenKind::Failed => "error",
        }
    }
}

/// A process that was not frozen, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotFrozen {
    /// The pid as it was given to [`freeze`].
    pub pid: Pid,
    /// The category.
    pub kind: NotFrozenKind,
    /// Why, in words (e.g. `"already traced by process 812"`).
    pub reason: String,
    /// The errno behind it, when there is one (`EPERM`, `ESRCH`, …).
    pub errno: Option<Errno>,
}

impl serde::Serialize for NotFrozen {
    /// `{"pid": P, "kind": "already_traced", "reason": "…", "errno": "EPERM" | null}`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("NotFrozen", 4)?;
        st.serialize_field("pid", &self.pid)?;
        st.serialize_field("kind", self.kind.code())?;
        st.serialize_field("reason", &self.reason)?;
        st.serialize_field("errno", &self.errno.map(errno_name))?;
        st.end()
    }
}

/// Options for [`freeze_with`].
#[derive(Debug, Clone)]
pub struct FreezeOptions {
    /// How long to wait, in all, for every thread to reach its stop. A
    /// process with a thread that does not stop in time (uninterruptible
    /// sleep, a vfork parent) is reported as not frozen.
    pub timeout: Duration,
}

impl Default for FreezeOptions {
    fn default() -> Self {
        FreezeOptions {
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// A set of stopped processes. Dropping it, or [`FrozenSet::thaw`], resumes
/// them exactly as they were. See the [module docs](self).
#[derive(Debug)]
pub struct FrozenSet {
    frozen: Vec<Pid>,
    not_frozen: Vec<NotFrozen>,
    threads: usize,
    tracer: Option<(mpsc::Sender<()>, JoinHandle<Result<()>>)>,
}

/// Stops every thread of every process in `pids` (with [`DEFAULT_TIMEOUT`]).
///
/// Fails only when the tracer thread cannot be started; processes that
/// cannot be frozen are listed by [`FrozenSet::not_frozen`].
///
/// ```
/// use kcmp::Pid;
/// use kcmp_map::freeze::freeze;
/// // The caller itself is never frozen.
/// let set = freeze(&[Pid::this()]).unwrap();
/// assert!(set.frozen().is_empty());
/// assert_eq!(set.not_frozen()[0].reason, "the calling process itself");
/// ```
pub fn freeze(pids: &[Pid]) -> Result<FrozenSet> {
    freeze_with(pids, &FreezeOptions::default())
}

/// [`freeze`] with options.
pub fn freeze_with(pids: &[Pid], options: &FreezeOptions) -> Result<FrozenSet> {
    let pids = pids.to_vec();
    let timeout = options.timeout;
    let (report_tx, report_rx) = mpsc::channel::<Report>();
    let (thaw_tx, thaw_rx) = mpsc::channel::<()>();
    let handle = std::thread::Builder::new()
        .name("kcmp-freeze".into())
        .spawn(move || {
            let mut tracer = Tracer::default();
            let report = tracer.freeze_all(&pids, timeout);
            let _ = report_tx.send(report);
            // Returns on an explicit thaw, or with an error when the set was
            // dropped without one: thaw either way.
            let _ = thaw_rx.recv();
            tracer.thaw()
        })
        .map_err(|e| Error::io("starting the freeze thread", &e))?;
    match report_rx.recv() {
        Ok(report) => Ok(FrozenSet {
            frozen: report.frozen,
            not_frozen: report.not_frozen,
            threads: report.threads,
            tracer: Some((thaw_tx, handle)),
        }),
        Err(_) => {
            // The tracer thread died before reporting (a panic); its exit
            // released every tracee.
            let _ = handle.join();
            Err(Error::os("the freeze thread failed", Errno::IO))
        }
    }
}

impl FrozenSet {
    /// The processes that are stopped, as given to [`freeze`], ascending.
    pub fn frozen(&self) -> &[Pid] {
        &self.frozen
    }

    /// True when `pid` (as given to [`freeze`]) is stopped.
    pub fn is_frozen(&self, pid: Pid) -> bool {
        self.frozen.binary_search(&pid).is_ok()
    }

    /// The processes that could not be frozen, with reasons, by pid.
    pub fn not_frozen(&self) -> &[NotFrozen] {
        &self.not_frozen
    }

    /// How many threads are stopped in all.
    pub fn stopped_threads(&self) -> usize {
        self.threads
    }

    /// Resumes every process exactly as it was; returns the first error a
    /// detach gave (the processes are released either way: the tracer thread
    /// has ended when this returns).
    pub fn thaw(mut self) -> Result<()> {
        self.release()
    }

    fn release(&mut self) -> Result<()> {
        match self.tracer.take() {
            Some((tx, handle)) => {
                let _ = tx.send(());
                match handle.join() {
                    Ok(r) => r,
                    Err(_) => Err(Error::os("the freeze thread panicked", Errno::IO)),
                }
            }
            None => Ok(()),
        }
    }
}

impl Drop for FrozenSet {
    fn drop(&mut self) {
        let _ = self.release();
    }
}

struct Report {
    frozen: Vec<Pid>,
    not_frozen: Vec<NotFrozen>,
    threads: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ThreadState {
    /// Seized and interrupted; the stop has not been seen yet.
    Pending,
    /// Stopped; detach with this signal (0, or the signal of a
    /// signal-delivery-stop).
    Stopped(i32),
    /// Exited or vanished.
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

#[derive(Default)]
struct Tracer {
    procs: BTreeMap<i32, Proc>,
}

/// A task's stat from the shared /proc parser (works for thread ids too:
/// /proc/TID is every thread's own directory).
fn stat_of(pid: i32) -> Option<procfs::TaskStat> {
    procfs::read_stat(Pid::new(pid).ok()?).ok()
}

/// A numeric field of /proc/PID/status (`"TracerPid"`, `"Tgid"`).
fn status_number(pid: i32, key: &str) -> Option<i64> {
    procfs::read_status_field(Pid::new(pid).ok()?, key)
        .ok()??
        .parse()
        .ok()
}

/// The calling process's ancestors, from its parent up to (and including) pid 1.
fn ancestors() -> HashSet<i32> {
    let mut set = HashSet::new();
    let mut pid = std::process::id() as i32;
    while let Some(ppid) = stat_of(pid).map(|s| s.ppid) {
        if ppid <= 0 || !set.insert(ppid) {
            break;
        }
        pid = ppid;
    }
    set
}

/// The thread ids of a process, from the shared /proc reader.
fn list_tasks(tgid: i32) -> Option<Vec<i32>> {
    let tids = procfs::list_tids(Pid::new(tgid).ok()?).ok()?;
    Some(tids.into_iter().map(Pid::get).collect())
}

impl Tracer {
    fn freeze_all(&mut self, pids: &[Pid], timeout: Duration) -> Report {
        let me = std::process::id() as i32;
        let ancestors = ancestors();
        let mut not_frozen = Vec::new();
        for &pid in pids {
            let raw = pid.get();
            let nf = |kind: NotFrozenKind, reason: &str, errno: Option<Errno>| NotFrozen {
                pid,
                kind,
                reason: reason.to_string(),
                errno,
            };
            let tgid = match status_number(raw, "Tgid") {
                Some(t) => t as i32,
                None => {
                    not_frozen.push(nf(NotFrozenKind::Vanished, "vanished", Some(Errno::SRCH)));
                    continue;
                }
            };
            if tgid == me {
                not_frozen.push(nf(
                    NotFrozenKind::CallingProcess,
                    "the calling process itself",
                    None,
                ));
                continue;
            }
            if ancestors.contains(&tgid) {
                not_frozen.push(nf(
                    NotFrozenKind::Ancestor,
                    "an ancestor of the calling process",
                    None,
                ));
                continue;
            }
            match stat_of(tgid) {
                None => not_frozen.push(nf(NotFrozenKind::Vanished, "vanished", Some(Errno::SRCH))),
                Some(stat) if stat.is_kernel_thread() => {
                    not_frozen.push(nf(NotFrozenKind::KernelThread, "a kernel thread", None))
                }
                Some(_) => self.procs.entry(tgid).or_default().requested.push(pid),
            }
        }

        let deadline = Instant::now() + timeout;
        loop {
            let mut new_threads = false;
            for (&tgid, proc_) in self.procs.iter_mut() {
                if proc_.failed.is_none() {
                    new_threads |= seize_new_threads(tgid, proc_);
                }
            }
            self.wait_for_stops(deadline);
            if !new_threads {
                break;
            }
            if Instant::now() >= deadline {
                // Threads kept appearing: give up on processes still growing.
                for proc_ in self.procs.values_mut() {
                    if proc_.failed.is_none() {
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

        let mut frozen = Vec::new();
        let mut threads = 0;
        for (&tgid, proc_) in &self.procs {
            let stopped = proc_
                .threads
                .values()
                .filter(|s| matches!(s, ThreadState::Stopped(_)))
                .count();
            let outcome: std::result::Result<(), Failure> = match &proc_.failed {
                Some(f) => Err(f.clone()),
                None if stopped > 0 => Ok(()),
                None => {
                    let zombie = stat_of(tgid).is_some_and(|s| s.is_zombie());
                    if zombie {
                        Err((
                            NotFrozenKind::Zombie,
                            "a zombie (nothing left to stop)".into(),
                            None,
                        ))
                    } else {
                        Err((
                            NotFrozenKind::Vanished,
                            "vanished".into(),
                            Some(Errno::SRCH),
                        ))
                    }
                }
            };
            match outcome {
                Ok(()) => {
                    threads += stopped;
                    frozen.extend(proc_.requested.iter().copied());
                }
                Err((kind, reason, errno)) => {
                    for &pid in &proc_.requested {
                        not_frozen.push(NotFrozen {
                            pid,
                            kind,
                            reason: reason.clone(),
                            errno,
                        });
                    }
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
    /// deadline passes (then their processes are marked failed).
    fn wait_for_stops(&mut self, deadline: Instant) {
        let mut nap = Duration::from_micros(20);
        loop {
            let mut pending = false;
            for proc_ in self.procs.values_mut() {
                for (&tid, state) in proc_.threads.iter_mut() {
                    if *state != ThreadState::Pending {
                        continue;
                    }
                    match ptrace::peek(tid) {
                        Ok(TraceeState::Stopped { status, trapped }) => {
                            let event = (status >> 8) & 0xff;
                            let sig = status & 0x7f;
                            // A signal-delivery-stop (no event): the signal
                            // is delivered on detach. Event stops carry none.
                            let reinject = if trapped && event == 0 { sig } else { 0 };
                            debug_assert!(event == 0 || event == PTRACE_EVENT_STOP);
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
            }
            if !pending {
                return;
            }
            let now = Instant::now();
            if now >= deadline {
                for proc_ in self.procs.values_mut() {
                    if proc_.threads.values().any(|s| *s == ThreadState::Pending)
                        && proc_.failed.is_none()
                    {
                        proc_.failed = Some((
                            NotFrozenKind::TimedOut,
                            "a thread did not stop in time (uninterruptible sleep, or a \
                             vfork parent waiting for its child)"
                                .into(),
                            Some(Errno::TIMEDOUT),
                        ));
                    }
                }
                return;
            }
            std::thread::sleep(nap.min(deadline - now));
            nap = (nap * 2).min(Duration::from_millis(2));
        }
    }

    /// Detaches every stopped thread; the rest is released when the tracer
    /// thread exits.
    fn thaw(&mut self) -> Result<()> {
        let mut first_err = None;
        for proc_ in self.procs.values_mut() {
            for (&tid, state) in proc_.threads.iter_mut() {
                match *state {
                    ThreadState::Stopped(sig) => match ptrace::detach(tid, sig) {
                        Ok(()) => {}
                        // Killed while stopped (SIGKILL wakes tracees): it is
                        // no longer in a ptrace stop. Reap its exit if any.
                        Err(e) if e == Errno::SRCH => {
                            let _ = ptrace::reap_exited(tid);
                        }
                        Err(e) => {
                            first_err.get_or_insert_with(|| {
                                Error::os(format!("PTRACE_DETACH {tid}"), e)
                            });
                        }
                    },
                    ThreadState::Gone => {
                        let _ = ptrace::reap_exited(tid);
                    }
                    ThreadState::Pending => {}
                }
                *state = ThreadState::Gone;
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
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
                match stat_of(tid) {
                    None => {
                        // An exited thread: nothing to stop.
                        proc_.skipped.insert(tid);
                        continue;
                    }
                    Some(stat) if stat.is_zombie() => {
                        // An exited thread: nothing to stop.
                        proc_.skipped.insert(tid);
                        continue;
                    }
                    Some(_) => {}
                }
                let tracer = status_number(tid, "TracerPid").unwrap_or(0);
                let kind = if e == Errno::PERM && tracer != 0 {
                    NotFrozenKind::AlreadyTraced
                } else if e == Errno::PERM {
                    NotFrozenKind::PermissionDenied
                } else {
                    NotFrozenKind::Failed
                };
                let reason = if e == Errno::PERM && tracer != 0 {
                    // TracerPid names the tracing thread; report its process.
                    let tracer = status_number(tracer as i32, "Tgid").unwrap_or(tracer);
                    format!("already traced by process {tracer}")
                } else if e == Errno::PERM {
                    "permission denied (ptrace attach refused: another user's process, \
                     Yama ptrace_scope, or a non-dumpable process)"
                        .to_string()
                } else {
                    format!("PTRACE_SEIZE failed: {}", errno_name(e))
                };
                proc_.failed = Some((kind, reason, Some(e)));
                return any;
            }
        }
    }
    any
}
