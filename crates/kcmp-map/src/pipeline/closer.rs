//! Closing the engine's copies (anchors) off the scan's threads.
//!
//! A copy can become the last reference to its description: every holder
//! closed its fd or exited while the scan held the copy. Its close then
//! runs the file's `release`, which can wait: a TCP socket with `SO_LINGER`
//! waits for its send queue to drain, a serial tty for its output. So the
//! copies are closed by one closer thread, started once and never joined: a
//! close that waits stalls that thread alone, never a scan.
//!
//! Closing any fd of a file also releases the POSIX locks this process
//! holds on it. The scan never copies a file this process had locked when
//! it began ([`super::anchor`]), and just before closing a copy the closer
//! asks the kernel whether this process holds such a lock now
//! (`F_OFD_GETLK`): a lock its caller took during the scan keeps the copy
//! open ([`super::anchor::leave_open`]). Between that question and the
//! close remains a window of a few microseconds.

use super::anchor::{leave_open, OwnLocks};
use rustix::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Copies sent to the closer and not closed yet.
static PENDING: AtomicUsize = AtomicUsize::new(0);

/// The closer's queue (`None` when its thread could not start).
fn queue() -> Option<&'static Mutex<Sender<OwnedFd>>> {
    static QUEUE: OnceLock<Option<Mutex<Sender<OwnedFd>>>> = OnceLock::new();
    QUEUE
        .get_or_init(|| {
            let (tx, rx) = channel::<OwnedFd>();
            let started = std::thread::Builder::new()
                .name("kcmp-closer".into())
                .spawn(move || {
                    for copy in rx {
                        close_unless_locked(copy);
                        PENDING.fetch_sub(1, Ordering::SeqCst);
                    }
                });
            started.ok().map(|_| Mutex::new(tx))
        })
        .as_ref()
}

/// Closes `copy` on the closer thread (here when that thread could not
/// start).
pub(crate) fn close_later(copy: OwnedFd) {
    let Some(queue) = queue() else {
        return close_unless_locked(copy);
    };
    PENDING.fetch_add(1, Ordering::SeqCst);
    let sent = queue.lock().unwrap_or_else(|e| e.into_inner()).send(copy);
    if let Err(unsent) = sent {
        PENDING.fetch_sub(1, Ordering::SeqCst);
        close_unless_locked(unsent.0);
    }
}

/// Waits until every copy sent so far is closed, at most `limit` (a close
/// that waits on a socket's linger or a tty's drain is left to finish
/// alone): a scan returns with its copies closed, as its caller expects.
pub(crate) fn settle(limit: Duration) {
    let deadline = Instant::now() + limit;
    while PENDING.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Closes `copy`, unless this process holds a POSIX lock on its file.
fn close_unless_locked(copy: OwnedFd) {
    if holds_posix_lock_on(&copy) {
        leave_open(copy);
    } else {
        drop(copy);
    }
}

/// Whether this process holds a POSIX lock on `copy`'s file: an OFD
/// write-lock test conflicts with every lock of another owner, and reports
/// a POSIX lock's owner pid (an OFD lock reports -1). When another owner's
/// lock is reported, ours may hide behind it: this process's locks are
/// read then (rare).
fn holds_posix_lock_on(copy: &OwnedFd) -> bool {
    match crate::sys::process::ofd_write_lock_owner(copy.as_fd()) {
        Ok(None) | Err(_) => false, // no lock, or a file that takes none
        Ok(Some(pid)) if pid == std::process::id() as i32 => true,
        Ok(Some(_)) => OwnLocks::read().covers(copy.as_fd()),
    }
}
