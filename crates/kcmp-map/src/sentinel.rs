//! Sentinel tasks: telling "none" from "shared".
//!
//! The kernel compares pointers even when a task has no object: two tasks
//! without an I/O context (`KCMP_IO`) or SysV undo list (`KCMP_SYSVSEM`)
//! compare equal, and so does every task without an mm, fd table or fs
//! struct (zombies) on `KCMP_VM`, `KCMP_FILES`, `KCMP_FS`.
//!
//! Sentinels make "none" observable: two freshly forked children that were
//! given neither object compare equal *only* if both have none (two real
//! objects are two allocations), and then every task that compares equal to
//! them has none too. An exited, unreaped child (a zombie) has no mm, fd
//! table or fs struct, so whatever compares equal to it on those kinds has
//! none either.
//!
//! The sentinels are forks of the calling process without exec — no
//! program is looked up or run, and when kcmp is a library the caller's
//! program is not re-run either. A live sentinel closes every inherited fd
//! but the read end of a pipe (`close_range`), blocks every signal, and
//! blocks reading that pipe until kcmp closes the write end or dies.
//! Scans leave the sentinels out of every result.
//!
//! Their exit signal is 0 (a raw `clone`, not `fork`): a caller
//! that ignores SIGCHLD (the kernel then reaps its children as they exit)
//! or reaps every child it has (`waitpid(-1)`) would take the zombie away
//! (every scan waited 5 s for it) and free its pid, which the scan then
//! killed. Each sentinel is signalled through a pidfd.

use crate::sys::process::{self as sys, ChildState, QuietChild};
use kcmp::Pid;
use rustix::fd::{AsFd, AsRawFd, OwnedFd};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Every sentinel (and idle child) of this process not dropped yet, with
/// its pidfd: a scan leaves out those of other scans running beside it too.
static ALL: Mutex<Vec<(i32, Option<Arc<OwnedFd>>)>> = Mutex::new(Vec::new());

/// The sentinels and idle children of every scan of this process now; one
/// that another thread of the caller reaped (`__WALL`) is not among them:
/// its pid may be another process's by now.
pub(crate) fn all_pids() -> HashSet<Pid> {
    let all = ALL.lock().unwrap_or_else(|e| e.into_inner());
    all.iter()
        .filter(|(p, fd)| {
            fd.as_ref()
                .is_none_or(|fd| sys::child_state_of(fd.as_fd(), *p) != ChildState::Gone)
        })
        .filter_map(|&(p, _)| Pid::new(p).ok())
        .collect()
}

/// How long a killed sentinel is waited for: one that cannot die (its exit
/// closes a copy of a FUSE file left open by an earlier scan, see
/// [`crate::exit`]) is left behind rather than hang the scan.
const REAP_LIMIT: Duration = Duration::from_millis(500);

/// A child of this process: its pid, and a pidfd to signal it by (where
/// pidfds exist), opened while the pid was surely its own (no SIGCHLD
/// reaper can take a child of exit signal 0).
#[derive(Debug)]
struct Child {
    pid: i32,
    pidfd: Option<Arc<OwnedFd>>,
}

impl Child {
    fn fork(what: QuietChild) -> std::io::Result<Child> {
        // Registered under the lock it is forked under: a scan of another
        // thread lists /proc either before the child exists or after this.
        let mut all = ALL.lock().unwrap_or_else(|e| e.into_inner());
        let pid = sys::fork_quiet(what)?;
        let pidfd = rustix::process::Pid::from_raw(pid).and_then(|p| {
            rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok()
        });
        let pidfd = pidfd.map(Arc::new);
        all.push((pid, pidfd.clone()));
        drop(all);
        Ok(Child { pid, pidfd })
    }

    /// SIGKILL, through the pidfd when there is one: never to a process
    /// that took the pid over.
    fn kill(&self) {
        match &self.pidfd {
            Some(fd) => {
                let _ = rustix::process::pidfd_send_signal(fd, rustix::process::Signal::KILL);
            }
            None => sys::kill(self.pid),
        }
    }

    /// What became of it, asked through its pidfd when it has one: a
    /// process that took its pid after another thread of the caller reaped
    /// it (`__WALL`) is not mistaken for it.
    fn state(&self) -> ChildState {
        match &self.pidfd {
            Some(fd) => sys::child_state_of(fd.as_fd(), self.pid),
            None => sys::child_state(self.pid),
        }
    }

    /// Reaps it, waiting at most `limit` for it to exit (through its
    /// pidfd: never a process that took its pid over).
    fn reap_within(&self, limit: Duration) {
        let Some(fd) = &self.pidfd else {
            sys::reap_within(self.pid, limit);
            return;
        };
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let deadline = Instant::now() + limit;
        while !sys::try_reap_pidfd(fd.as_fd(), self.pid) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            let wait = Timespec {
                tv_sec: left.as_secs() as i64,
                tv_nsec: i64::from(left.subsec_nanos()),
            };
            let _ = poll(&mut [PollFd::new(fd, PollFlags::IN)], Some(&wait));
        }
    }

    /// Kills and reaps it (waiting at most [`REAP_LIMIT`]).
    fn end(self) {
        self.kill();
        self.reap_within(REAP_LIMIT);
    }
}

impl Drop for Child {
    /// Leaves the registry ([`all_pids`]): reaped by now, or left behind.
    fn drop(&mut self) {
        let mut all = ALL.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|(p, _)| *p != self.pid);
    }
}

/// Two live sentinel tasks and one zombie, children of this process.
/// Dropping it ends and reaps them.
#[derive(Debug)]
pub struct Sentinels {
    /// Each live sentinel and the write end of its pipe.
    live: Vec<(Child, Option<OwnedFd>)>,
    zombie: Option<Child>,
}

/// Forks a live sentinel: it blocks reading the returned pipe's read end.
fn fork_live() -> std::io::Result<(Child, OwnedFd)> {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let child = Child::fork(QuietChild::ReadUntilEof(r.as_raw_fd()))?;
    Ok((child, w))
}

/// An idle child: a fork of this process (no exec) blocked reading a pipe,
/// with every other inherited fd closed. Dropping it ends and reaps it.
/// For checks that need a live process of one's own (`kcmp doctor`).
///
/// ```
/// let idle = kcmp_map::sentinel::Idle::spawn().unwrap();
/// assert!(idle.id() > 0);
/// ```
#[derive(Debug)]
pub struct Idle {
    child: Option<Child>,
    pipe: Option<OwnedFd>,
}

impl Idle {
    /// Forks the idle child.
    pub fn spawn() -> std::io::Result<Idle> {
        let (child, w) = fork_live()?;
        Ok(Idle {
            child: Some(child),
            pipe: Some(w),
        })
    }

    /// Its pid.
    pub fn id(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.pid as u32)
    }
}

impl Drop for Idle {
    fn drop(&mut self) {
        drop(self.pipe.take());
        if let Some(child) = self.child.take() {
            child.end();
        }
    }
}

impl Sentinels {
    /// Starts the sentinels and waits until they are ready: two children
    /// blocked on an empty pipe, and one that exits at once and is left
    /// unreaped.
    ///
    /// ```
    /// let s = kcmp_map::sentinel::Sentinels::start().unwrap();
    /// assert_eq!(s.live_pids().len(), 2);
    /// assert!(s.zombie_pid().is_some());
    /// ```
    pub fn start() -> std::io::Result<Sentinels> {
        let mut s = Sentinels::spawn()?;
        s.wait_ready();
        Ok(s)
    }

    /// Starts the sentinels without waiting for them: their pids are known at
    /// once (to leave them out of a selection), and
    /// [`wait_ready`](Self::wait_ready) is needed only before comparing.
    pub fn spawn() -> std::io::Result<Sentinels> {
        let mut s = Sentinels {
            live: Vec::new(),
            zombie: None,
        };
        for _ in 0..2 {
            let (child, w) = fork_live()?;
            s.live.push((child, Some(w)));
        }
        s.zombie = Some(Child::fork(QuietChild::Exit)?);
        Ok(s)
    }

    /// Waits (at most 5 s) until the zombie has exited — it is not reaped —
    /// and the live ones have closed the fds they inherited. A zombie that
    /// does not exit in time, or that another thread of this process reaped
    /// (`waitpid` with `__WALL`), is dropped ([`zombie_pid`](Self::zombie_pid)
    /// is `None`).
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        for (child, _) in &self.live {
            let dir = format!("/proc/{}/fd", child.pid);
            while Instant::now() < deadline {
                crate::freeze::step(); // a bounded wait, not a stall
                let open = std::fs::read_dir(&dir).map_or(0, |d| d.count());
                if open <= 1 {
                    break;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        while let Some(z) = &self.zombie {
            match z.state() {
                ChildState::Exited => break,
                ChildState::Gone => self.zombie = None,
                ChildState::Running if Instant::now() > deadline => {
                    if let Some(z) = self.zombie.take() {
                        z.end();
                    }
                }
                ChildState::Running => std::thread::sleep(Duration::from_micros(200)),
            }
        }
    }

    /// The live sentinels (no I/O context, no undo list of their own).
    pub fn live_pids(&self) -> Vec<Pid> {
        self.live
            .iter()
            .filter_map(|(c, _)| Pid::new(c.pid).ok())
            .collect()
    }

    /// The zombie sentinel (no mm, fd table or fs struct), if it exited in
    /// time and is still unreaped (its pid then still its own; another
    /// thread of the caller reaping with `__WALL` can take it).
    pub fn zombie_pid(&self) -> Option<Pid> {
        let z = self.zombie.as_ref()?;
        (z.state() == ChildState::Exited)
            .then(|| Pid::new(z.pid).ok())
            .flatten()
    }

    /// Whether every sentinel is still what it was when ready (the zombie
    /// unreaped, the live ones running): then no comparison made with their
    /// pids meanwhile met another process. A caller's thread reaping with
    /// `__WALL` can break it; answers resting on the sentinels are then
    /// not given.
    pub(crate) fn intact(&self) -> bool {
        let zombie = self
            .zombie
            .as_ref()
            .is_none_or(|z| z.state() == ChildState::Exited);
        zombie
            && self
                .live
                .iter()
                .all(|(c, _)| c.state() == ChildState::Running)
    }

    /// All sentinel pids.
    pub fn pids(&self) -> Vec<Pid> {
        let mut v = self.live_pids();
        v.extend(self.zombie_pid());
        v
    }
}

impl Drop for Sentinels {
    fn drop(&mut self) {
        // All told to exit first, then reaped: their exits overlap.
        for (child, w) in &mut self.live {
            drop(w.take()); // the sentinel sees EOF and exits
            child.kill();
        }
        for (child, _) in self.live.drain(..) {
            child.reap_within(REAP_LIMIT);
        }
        if let Some(z) = self.zombie.take() {
            z.reap_within(REAP_LIMIT);
        }
    }
}
