//! The host-wide freeze lock: one frozen window at a time per host (and
//! per user), so that two kcmp runs never freeze each other's freezer.
//!
//! The lock is `flock(LOCK_EX)` on `/run/kcmp-freeze.lock` (root, or any
//! user once root has created it), else `/tmp/kcmp-freeze-UID.lock`. Two
//! runs that could freeze each other need ptrace rights on each other, so
//! they run as one user (or as root) and meet on one lock. Within one
//! process the lock is shared by every live frozen set. The freezer
//! process inherits it and drops it when it thaws; kcmp drops it when its
//! last set is thawed.

use rustix::fd::{AsRawFd, OwnedFd};
use rustix::fs::{FlockOperation, Mode, OFlags};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The lock file and how many sets of this process hold it.
static HELD: Mutex<Option<(OwnedFd, usize)>> = Mutex::new(None);

/// One set's share of the lock; dropping the last one unlocks.
#[derive(Debug)]
pub(crate) struct LockShare {
    fd: i32,
}

impl LockShare {
    /// The lock file's fd (for the freezer process to inherit), or -1.
    pub fn raw_fd(&self) -> i32 {
        self.fd
    }
}

impl Drop for LockShare {
    fn drop(&mut self) {
        if self.fd < 0 {
            return;
        }
        let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, n)) = held.as_mut() {
            *n -= 1;
            if *n == 0 {
                *held = None;
            }
        }
    }
}

fn open_lock_file() -> Option<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    let run = "/run/kcmp-freeze.lock";
    if let Ok(fd) = rustix::fs::open(run, flags, Mode::empty()) {
        return Some(fd);
    }
    if rustix::process::geteuid().is_root() {
        let create = flags | OFlags::CREATE;
        if let Ok(fd) = rustix::fs::open(run, create, Mode::from_raw_mode(0o644)) {
            return Some(fd);
        }
    }
    let uid = rustix::process::geteuid().as_raw();
    let tmp = format!("/tmp/kcmp-freeze-{uid}.lock");
    rustix::fs::open(
        tmp.as_str(),
        flags | OFlags::CREATE,
        Mode::from_raw_mode(0o600),
    )
    .ok()
}

/// Takes the lock, waiting at most `wait`. `Ok(share)` when held (a share
/// with fd -1 when no lock file can be opened at all: freezing goes on
/// without it); `Err(())` when another run held it all along.
pub(crate) fn acquire(wait: Duration) -> Result<LockShare, ()> {
    let deadline = Instant::now() + wait;
    loop {
        {
            let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((fd, n)) = held.as_mut() {
                *n += 1;
                return Ok(LockShare { fd: fd.as_raw_fd() });
            }
            let Some(fd) = open_lock_file() else {
                return Ok(LockShare { fd: -1 });
            };
            if rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive).is_ok() {
                let raw = fd.as_raw_fd();
                *held = Some((fd, 1));
                return Ok(LockShare { fd: raw });
            }
        }
        if Instant::now() >= deadline {
            return Err(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
