//! Progress, and the heartbeat that carries it to the freezer.
//!
//! The engine calls [`progress`] at its natural steps (a kcmp call, a
//! `/proc` read, a task pinned, an epoll registration resolved, an audit
//! fact read). kcmp's heartbeat thread writes every 100 ms: `h` when the
//! progress counter moved since its last beat (or always, when the set
//! does not release on a stall), `i` when kcmp is alive but made no
//! progress. With [`FreezeOptions::release_when_stalled`](super::FreezeOptions::release_when_stalled)
//! the freezer thaws after 700 ms without an `h`: within 1 s of kcmp's
//! last step (the beat notices a step within 100 ms; the freezer looks
//! every 50 ms), even when a bug makes kcmp loop while its heartbeat
//! thread still beats.

use crate::sys::process as sys;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// How often kcmp's heartbeat thread writes.
pub(crate) const BEAT: std::time::Duration = std::time::Duration::from_millis(100);

/// Every step of work counted by [`progress`].
static PROGRESS: AtomicU64 = AtomicU64::new(0);

/// The process-wide default of `release_when_stalled`.
static RELEASE_WHEN_STALLED: AtomicBool = AtomicBool::new(false);

/// Counts one step of work of this process: a frozen set with
/// [`FreezeOptions::release_when_stalled`](super::FreezeOptions::release_when_stalled)
/// is released when no step was counted for 700 ms.
///
/// The engine counts its own steps (kcmp calls, `/proc` reads, tasks
/// pinned, epoll registrations, audit facts); a program that works on a
/// frozen set with code of its own calls this at its own steps. Cheap: one
/// relaxed atomic add.
pub fn progress() {
    PROGRESS.fetch_add(1, Ordering::Relaxed);
}

/// Sets the default of
/// [`FreezeOptions::release_when_stalled`](super::FreezeOptions::release_when_stalled)
/// for this process: every [`freeze`](super::freeze), and every scan,
/// holders search or audit with `freeze`, is then released within 1 s of
/// the last [`progress`] (the kcmp CLI turns it on). Off by default: a
/// library caller may hold a frozen set idle.
pub fn set_release_when_stalled(on: bool) {
    RELEASE_WHEN_STALLED.store(on, Ordering::SeqCst);
}

/// The default set by [`set_release_when_stalled`].
pub(crate) fn release_when_stalled() -> bool {
    RELEASE_WHEN_STALLED.load(Ordering::SeqCst)
}

/// A running heartbeat thread: its stop flag and handle.
pub(crate) type Beating = (Arc<AtomicBool>, JoinHandle<()>);

/// Starts the heartbeat thread writing to `fd`; with `stalls`, its beats
/// tell progress (`h`) from mere life (`i`).
pub(crate) fn start(fd: i32, stalls: bool) -> Option<Beating> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let handle = std::thread::Builder::new()
        .name("kcmp-heartbeat".into())
        .spawn(move || {
            let mut seen = PROGRESS.load(Ordering::Relaxed);
            while !flag.load(Ordering::SeqCst) {
                let now = PROGRESS.load(Ordering::Relaxed);
                let moved = now != seen;
                seen = now;
                sys::send_byte(fd, if moved || !stalls { b'h' } else { b'i' });
                std::thread::park_timeout(BEAT);
            }
        });
    handle.ok().map(|h| (stop, h))
}

/// Stops the heartbeat thread and waits for it.
pub(crate) fn stop(beating: Beating) {
    let (stop, h) = beating;
    stop.store(true, Ordering::SeqCst);
    h.thread().unpark();
    let _ = h.join();
}

/// One of many small steps (a readlink, a kcmp call): counted as
/// [`progress`] once in 16 per thread, so that hot loops on several cores
/// do not share a cache line at every step (the first step of a thread
/// counts at once).
pub(crate) fn step() {
    thread_local! {
        static STEPS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    }
    STEPS.with(|s| {
        let n = s.get();
        s.set(n.wrapping_add(1));
        if n % 16 == 0 {
            progress();
        }
    });
}
