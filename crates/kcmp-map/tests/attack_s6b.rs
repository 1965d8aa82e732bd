//! Attacks on session 6b's changes, at the library level.

use kcmp::{Pid, ProcessHandle};

/// `PIDFD_THREAD` (Linux 6.9), as the kernel defines it.
const PIDFD_THREAD: u32 = libc::O_EXCL as u32;

/// A thread that is not its group's leader is pinned with a pidfd of its
/// own where the kernel offers `PIDFD_THREAD`. Linux 6.15+ refuses a plain
/// `pidfd_open` of such a thread with `ENOENT` (older kernels: `EINVAL`);
/// taking that for "no pidfd on this kernel" pinned every thread by start
/// time only.
#[test]
fn a_thread_is_pinned_with_a_thread_pidfd_where_the_kernel_has_them() {
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        tx.send(rustix::thread::gettid()).unwrap();
        let _ = stop_rx.recv();
    });
    let tid = rx.recv().unwrap();
    let offered = rustix::process::pidfd_open(
        tid,
        rustix::process::PidfdFlags::from_bits_retain(PIDFD_THREAD),
    )
    .is_ok();
    let handle = ProcessHandle::open(Pid::new(tid.as_raw_nonzero().get()).unwrap()).unwrap();
    let pinned = handle.pidfd().is_some();
    assert!(handle.verify().is_ok());
    drop(stop_tx);
    t.join().unwrap();
    if !offered {
        eprintln!("skipped: no PIDFD_THREAD on this kernel");
        return;
    }
    assert!(pinned, "thread {tid:?} pinned without a pidfd");
    // `join` returns when the kernel clears the thread's tid, a little
    // before the exit its pidfd reports.
    let exited = (0..200).any(|_| {
        let gone = handle.verify().is_err();
        if !gone {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        gone
    });
    assert!(exited, "the thread exited: its pidfd says so (within 1 s)");
}
