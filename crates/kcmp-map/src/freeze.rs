//! Stopping processes while they are inspected, and resuming them exactly as
//! they were — whatever happens to kcmp.
//!
//! kcmp's answers about running processes can be stale by the time they are
//! read; the man page advises stopping the processes first. [`freeze`] stops
//! every thread of every given process with `PTRACE_SEIZE` +
//! `PTRACE_INTERRUPT` and returns a [`FrozenSet`]; dropping it (or calling
//! [`FrozenSet::thaw`] or [`FrozenSet::finish`]) detaches with
//! `PTRACE_DETACH`.
//!
//! ## Guarantees
//! - **Exactly as they were.** No signal is ever sent. A process that was
//!   already stopped (group-stop, state `T`) is stopped again by the kernel
//!   when it is detached; a running one resumes. A signal that arrived
//!   during the freeze is delivered on detach.
//! - **Never stopped beyond the budget.** The tracer is not kcmp but a
//!   *freezer* process, a fork of the caller (no program is executed) in a
//!   process group of its own (Ctrl-Z on the terminal does not reach it),
//!   named `kcmp-freezer`. It releases every process it froze:
//!   - when kcmp dies, whatever the reason (`SIGKILL`, a crash): its socket
//!     to kcmp closes, or its parent changes;
//!   - within 1 s when kcmp is stopped: kcmp's heartbeat thread writes
//!     every 100 ms; after 500 ms of silence while kcmp is not running or
//!     sleeping (`SIGSTOP`, a debugger, uninterruptible sleep), or 2 s of
//!     silence in any state, it thaws. `SIGTSTP` (Ctrl-Z) can be made to
//!     thaw first and then stop ([`release_on_terminal_stop`]);
//!   - with [`FreezeOptions::release_when_stalled`] (the CLI's runs), within
//!     1 s of kcmp's last step of work ([`progress`]), even when a bug makes
//!     kcmp loop while its heartbeat thread still beats ([`Release::Stalled`]).
//!     Off by default: a library caller may hold a set idle as long as the
//!     window allows;
//!   - when the frozen window ([`FreezeOptions::max_frozen`], the CLI's
//!     `--freeze-timeout`, 10 s by default) is over, even if kcmp hangs.
//!
//!   [`FrozenSet::finish`] tells whether the set held until the end, or why
//!   it was released early ([`Release`]): the caller then knows its answers
//!   were read (partly) unfrozen.
//! - **Concurrent runs never deadlock.** The rule: *one frozen window at a
//!   time per host and user.* A host-wide `flock` (`/run/kcmp-freeze.lock`,
//!   else `/tmp/kcmp-freeze-UID.lock`) is taken before freezing and held
//!   until the thaw; a run that cannot get it within the window plus 2 s
//!   does not freeze and says so ([`Release::Busy`]). While one run holds
//!   it, other runs wait for it unfrozen or frozen — a waiting run holds no
//!   tracee, so nothing can wait in a circle. Besides, a freezer never
//!   freezes another freezer ([`NotFrozenKind::Freezer`]), and every
//!   freezer thaws by itself when its kcmp stops.
//! - **All threads.** `/proc/PID/task` is listed again after every round of
//!   stops, until a listing shows no new thread; since every listed thread is
//!   stopped by then, no thread can be created behind the freezer's back.
//! - **Never** freezes the calling process, its ancestors (the shell and
//!   terminal waiting for it), kernel threads or another kcmp's freezer.
//! - **A true report.** [`FrozenSet::not_frozen`] lists exactly the
//!   processes that are not stopped, each with its own reason: self,
//!   ancestor, kernel thread, zombie, vanished, already traced, `EPERM`,
//!   uninterruptible sleep (state `D`), a vfork parent, a thread that did
//!   not stop in time, or threads that kept appearing. A process that could
//!   not be frozen as a whole is resumed at once (none of its threads stays
//!   stopped).
//!
//! The freezer is forked from a possibly multi-threaded process and runs
//! Rust code: it needs a fork-safe `malloc` (glibc's and musl's are). With
//! Yama `ptrace_scope` 1 an unprivileged freezer may trace only its own
//! descendants, so without `CAP_SYS_PTRACE` processes are listed as
//! `EPERM` there.
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
//! if let Some(why) = set.finish()? {
//!     eprintln!("released early: {}", why.code());
//! }
//! # Ok::<(), kcmp::Error>(())
//! ```

mod beat;
mod helper;
mod lock;
mod tracer;

pub(crate) use beat::step;
pub use beat::{progress, set_release_when_stalled};

use crate::sys::process as sys;
use kcmp::Pid;
use kcmp::{errno_name, Error, Result};
use rustix::io::Errno;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

/// The comm of every freezer process.
pub const FREEZER_COMM: &str = "kcmp-freezer";

/// The default time [`freeze`] waits for every thread to reach its stop.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// The default longest frozen window ([`FreezeOptions::max_frozen`];
/// [`set_max_frozen`] changes it for a process).
pub const DEFAULT_MAX_FROZEN: Duration = Duration::from_secs(10);

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
    /// Another kcmp's freezer process (freezers never freeze each other).
    Freezer,
    /// ptrace attach was refused.
    PermissionDenied,
    /// A thread is in uninterruptible sleep (state `D`) and cannot stop.
    UninterruptibleSleep,
    /// A vfork parent: it sleeps uninterruptibly until its child execs or exits.
    Vfork,
    /// A thread did not stop in time, or threads kept appearing.
    TimedOut,
    /// Another error of `PTRACE_SEIZE`.
    Failed,
}

const KIND_CODES: &[(NotFrozenKind, &str)] = &[
    (NotFrozenKind::CallingProcess, "self"),
    (NotFrozenKind::Ancestor, "ancestor"),
    (NotFrozenKind::KernelThread, "kernel_thread"),
    (NotFrozenKind::Zombie, "zombie"),
    (NotFrozenKind::Vanished, "vanished"),
    (NotFrozenKind::AlreadyTraced, "already_traced"),
    (NotFrozenKind::Freezer, "freezer"),
    (NotFrozenKind::PermissionDenied, "permission"),
    (NotFrozenKind::UninterruptibleSleep, "uninterruptible"),
    (NotFrozenKind::Vfork, "vfork"),
    (NotFrozenKind::TimedOut, "timeout"),
    (NotFrozenKind::Failed, "error"),
];

impl NotFrozenKind {
    /// A short code for JSON: `"self"`, `"ancestor"`, `"kernel_thread"`,
    /// `"zombie"`, `"vanished"`, `"already_traced"`, `"freezer"`,
    /// `"permission"`, `"uninterruptible"`, `"vfork"`, `"timeout"` or
    /// `"error"`.
    pub fn code(self) -> &'static str {
        KIND_CODES
            .iter()
            .find(|(k, _)| *k == self)
            .map_or("error", |(_, c)| c)
    }

    /// The kind with this [`code`](Self::code).
    pub fn from_code(code: &str) -> Option<NotFrozenKind> {
        KIND_CODES.iter().find(|(_, c)| *c == code).map(|(k, _)| *k)
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
    /// The longest the set stays frozen: past it the freezer thaws by
    /// itself and [`FrozenSet::finish`] says [`Release::Timeout`].
    pub max_frozen: Duration,
    /// Release the set within 1 s of this process's last step of work
    /// ([`progress`]; the engine counts its own), and say
    /// [`Release::Stalled`]. Off unless [`set_release_when_stalled`] turned
    /// it on for the process (the kcmp CLI does): a set held idle stays
    /// frozen for the whole window.
    pub release_when_stalled: bool,
}

impl Default for FreezeOptions {
    fn default() -> Self {
        FreezeOptions {
            timeout: DEFAULT_TIMEOUT,
            max_frozen: Duration::from_millis(MAX_FROZEN_MS.load(Ordering::SeqCst)),
            release_when_stalled: beat::release_when_stalled(),
        }
    }
}

/// Why a frozen set was released before the caller thawed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Release {
    /// The frozen window ([`FreezeOptions::max_frozen`]) was over.
    Timeout,
    /// kcmp was stopped (SIGSTOP, SIGTSTP, a debugger) or stopped making
    /// progress.
    Stopped,
    /// Another run held the host's freeze lock: nothing was frozen.
    Busy,
    /// The freezer process died (its tracees were released by the kernel).
    Lost,
    /// kcmp made no progress for 700 ms while it ran (a hang), with
    /// [`FreezeOptions::release_when_stalled`].
    Stalled,
}

impl Release {
    /// `"timeout"`, `"stopped"`, `"busy"`, `"freezer_died"` or `"stalled"`.
    pub fn code(self) -> &'static str {
        match self {
            Release::Timeout => "timeout",
            Release::Stopped => "stopped",
            Release::Busy => "busy",
            Release::Lost => "freezer_died",
            Release::Stalled => "stalled",
        }
    }

    fn from_code(code: &str) -> Option<Release> {
        [
            Release::Timeout,
            Release::Stopped,
            Release::Busy,
            Release::Lost,
            Release::Stalled,
        ]
        .into_iter()
        .find(|r| r.code() == code)
    }

    /// In words, for a note on stderr.
    pub fn describe(self) -> &'static str {
        match self {
            Release::Timeout => "the frozen window (--freeze-timeout) was over",
            Release::Stopped => "kcmp was stopped (SIGSTOP/SIGTSTP) or stopped making progress",
            Release::Busy => "another kcmp held the host's freeze lock",
            Release::Lost => "the freezer process died",
            Release::Stalled => "kcmp made no progress for 700 ms (a hang)",
        }
    }
}

impl serde::Serialize for Release {
    /// The [`code`](Release::code).
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

/// The process-wide default window, in milliseconds (see [`set_max_frozen`]).
static MAX_FROZEN_MS: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(DEFAULT_MAX_FROZEN.as_millis() as u64);

/// Sets the frozen window of [`FreezeOptions::default`] for this process:
/// every [`freeze`], and every scan or holders search with `freeze`, is
/// thawed after it at the latest (the CLI's `--freeze-timeout`).
pub fn set_max_frozen(window: Duration) {
    MAX_FROZEN_MS.store(window.as_millis() as u64, Ordering::SeqCst);
}

/// The freezer sockets of the live sets, for [`release_on_terminal_stop`]'s
/// signal handler (async-signal-safe: atomics only), and the sockets on
/// which each freezer acknowledges that it has thawed.
static STOP_SLOTS: [AtomicI32; 32] = [const { AtomicI32::new(-1) }; 32];
static ACK_SLOTS: [AtomicI32; 32] = [const { AtomicI32::new(-1) }; 32];

/// Tells every freezer to thaw, then waits (at most 500 ms each) until it
/// says it has: thaw first, then stop.
fn stop_hook() {
    for slot in &STOP_SLOTS {
        let fd = slot.load(Ordering::SeqCst);
        if fd >= 0 {
            sys::send_byte(fd, b's');
        }
    }
    for (slot, ack) in STOP_SLOTS.iter().zip(&ACK_SLOTS) {
        let (fd, ack) = (slot.load(Ordering::SeqCst), ack.load(Ordering::SeqCst));
        if fd >= 0 && ack >= 0 {
            let mut byte = [0u8; 1];
            let _ = sys::read_within(ack, Duration::from_millis(500), &mut byte);
        }
    }
}

/// Makes SIGTSTP (Ctrl-Z), SIGTTIN and SIGTTOU release every live frozen
/// set of this process before the process stops (a signal handler that
/// tells each freezer to thaw, then raises SIGSTOP). The sets then finish
/// with [`Release::Stopped`]. For programs (the kcmp CLI); a library caller
/// decides about its own signal handlers. Without it, a stopped kcmp is
/// noticed by the freezer within a second anyway.
pub fn release_on_terminal_stop() -> Result<()> {
    sys::on_terminal_stop(stop_hook).map_err(|e| Error::os("sigaction(SIGTSTP)", e))
}

/// The parent's side of one freezer.
#[derive(Debug)]
struct Freezer {
    pid: i32,
    sock: rustix::fd::OwnedFd,
    ack: rustix::fd::OwnedFd,
    slot: Option<usize>,
    beat: Option<beat::Beating>,
    _lock: lock::LockShare,
}

/// A set of stopped processes. Dropping it, [`FrozenSet::thaw`] or
/// [`FrozenSet::finish`] resumes them exactly as they were. See the
/// [module docs](self).
#[derive(Debug)]
pub struct FrozenSet {
    frozen: Vec<Pid>,
    not_frozen: Vec<NotFrozen>,
    threads: usize,
    freezer: Option<Freezer>,
    early: Option<Release>,
}

/// Stops every thread of every process in `pids` (with the default
/// [`FreezeOptions`]).
///
/// Fails only when the freezer process cannot be started; processes that
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
    let Ok(lock) = lock::acquire(options.max_frozen + Duration::from_secs(2)) else {
        return Ok(FrozenSet {
            frozen: Vec::new(),
            not_frozen: Vec::new(),
            threads: 0,
            freezer: None,
            early: Some(Release::Busy),
        });
    };
    let (mine, theirs) = freezer_socketpair()?;
    let job = helper::Job {
        pids,
        me: std::process::id() as i32,
        stop_timeout: options.timeout,
        window: options.max_frozen,
        stalls: options.release_when_stalled,
    };
    use rustix::fd::AsRawFd;
    let (ack, ack_theirs) = freezer_socketpair()?;
    // The freezer's fds: 0 the socket, 1 the lock (or the socket again),
    // 2 the acknowledgements of early thaws.
    let lock_fd = match lock.raw_fd() {
        -1 => theirs.as_raw_fd(),
        fd => fd,
    };
    let keep = [theirs.as_raw_fd(), lock_fd, ack_theirs.as_raw_fd()];
    let pid = fork_freezer(&job, &keep)?;
    drop((theirs, ack_theirs));
    let mut freezer = Freezer {
        pid,
        ack,
        slot: None,
        beat: None,
        _lock: lock,
        sock: mine,
    };
    freezer.start_beating(options.release_when_stalled);
    let lines = freezer.read_lines(options.timeout + Duration::from_secs(10), "E");
    let report = lines
        .as_ref()
        .and_then(|l| helper::decode(&l[..l.len() - 1]));
    match report {
        Some(r) => {
            progress(); // the freeze itself: the freezer now watches steps
            Ok(FrozenSet {
                frozen: r.frozen,
                not_frozen: r.not_frozen,
                threads: r.threads,
                freezer: Some(freezer),
                early: None,
            })
        }
        None => {
            // The freezer died or hung before reporting; killing it
            // releases whatever it traced.
            freezer.stop();
            Err(Error::os("the freezer process failed", Errno::IO))
        }
    }
}

/// A connected pair of stream sockets between kcmp and its freezer.
fn freezer_socketpair() -> Result<(rustix::fd::OwnedFd, rustix::fd::OwnedFd)> {
    rustix::net::socketpair(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::STREAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| Error::os("socketpair for the freezer", e))
}

/// Forks the freezer, which keeps only the fds `keep` and runs `job`;
/// returns its pid (in the parent: the child never returns).
fn fork_freezer(job: &helper::Job, keep: &[i32]) -> Result<i32> {
    match sys::fork().map_err(|e| Error::os("fork of the freezer", e))? {
        sys::Forked::Child => {
            sys::own_process_group();
            sys::default_signals();
            sys::keep_only_fds(keep);
            sys::set_comm(c"kcmp-freezer");
            // Never unwind into the caller's code in this forked copy: a
            // panic ends the freezer, and its exit releases every tracee.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| helper::run(job)));
            sys::exit_now(70)
        }
        sys::Forked::Parent(pid) => Ok(pid),
    }
}

impl Freezer {
    fn start_beating(&mut self, stalls: bool) {
        use rustix::fd::AsRawFd;
        let fd = self.sock.as_raw_fd();
        self.slot = STOP_SLOTS.iter().position(|s| {
            s.compare_exchange(-1, fd, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        });
        if let Some(i) = self.slot {
            ACK_SLOTS[i].store(self.ack.as_raw_fd(), Ordering::SeqCst);
        }
        self.beat = beat::start(fd, stalls);
    }

    fn stop_beating(&mut self) {
        if let Some(b) = self.beat.take() {
            beat::stop(b);
        }
        if let Some(i) = self.slot.take() {
            STOP_SLOTS[i].store(-1, Ordering::SeqCst);
            ACK_SLOTS[i].store(-1, Ordering::SeqCst);
        }
    }

    /// Reads lines until one starting with `last` (included), EOF or the
    /// time limit.
    fn read_lines(&self, limit: Duration, last: &str) -> Option<Vec<String>> {
        use rustix::fd::AsRawFd;
        let deadline = std::time::Instant::now() + limit;
        let mut text = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            match sys::read_within(self.sock.as_raw_fd(), left, &mut buf) {
                Ok(None) => continue,
                Ok(Some(0)) | Err(_) => return None,
                Ok(Some(n)) => text.extend_from_slice(&buf[..n]),
            }
            let s = String::from_utf8_lossy(&text);
            let lines: Vec<String> = s.lines().map(str::to_string).collect();
            if s.ends_with('\n') && lines.last().is_some_and(|l| l.starts_with(last)) {
                return Some(lines);
            }
        }
    }

    /// Asks for the thaw and its outcome; reaps the freezer.
    fn thaw(mut self) -> Result<Option<Release>> {
        use rustix::fd::AsRawFd;
        self.stop_beating();
        sys::send_all(self.sock.as_raw_fd(), b"r");
        let end = self.read_lines(Duration::from_secs(10), "end");
        let outcome = match end.as_ref().and_then(|l| l.last()) {
            Some(line) => {
                let mut f = line.splitn(3, ' ').skip(1);
                let release = f.next().and_then(Release::from_code);
                match f.next() {
                    Some(err) => Err(Error::os(format!("thaw: {err}"), Errno::IO)),
                    None => Ok(release),
                }
            }
            None => Ok(Some(Release::Lost)),
        };
        self.stop();
        outcome
    }

    /// Ends the freezer (its tracees are released by the kernel) and reaps it.
    fn stop(&mut self) {
        self.stop_beating();
        if !sys::try_reap(self.pid) {
            // Closing the socket lets it finish by itself; give it a moment.
            let _ = rustix::net::shutdown(&self.sock, rustix::net::Shutdown::Both);
            for _ in 0..200 {
                if sys::try_reap(self.pid) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            sys::kill(self.pid);
            // One that cannot die (its exit closes an inherited copy of a
            // FUSE file an earlier scan left open) is left behind.
            sys::reap_within(self.pid, Duration::from_secs(2));
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

    /// False when nothing could be frozen because another run held the
    /// host's freeze lock ([`Release::Busy`]).
    pub fn is_held(&self) -> bool {
        self.early.is_none()
    }

    /// [`Release::Busy`] when the set was never frozen, else `None` (an
    /// early release during the window is told by [`finish`](Self::finish)).
    pub fn released_early(&self) -> Option<Release> {
        self.early
    }

    /// How many threads are stopped in all.
    pub fn stopped_threads(&self) -> usize {
        self.threads
    }

    /// Resumes every process exactly as it was; returns the first error a
    /// detach gave (the processes are released either way: the freezer has
    /// ended when this returns).
    pub fn thaw(self) -> Result<()> {
        self.finish().map(|_| ())
    }

    /// Like [`thaw`](Self::thaw), and tells whether the set held until now:
    /// `None` when it did, otherwise why it was released early (then the
    /// caller's answers were read partly or wholly unfrozen).
    pub fn finish(mut self) -> Result<Option<Release>> {
        self.release()
    }

    fn release(&mut self) -> Result<Option<Release>> {
        match self.freezer.take() {
            Some(f) => f.thaw(),
            None => Ok(self.early),
        }
    }
}

impl Drop for FrozenSet {
    fn drop(&mut self) {
        let _ = self.release();
    }
}
