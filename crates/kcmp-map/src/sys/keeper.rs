//! The keeper: a child that shares this process's fd table and closes the
//! engine's copies that this process must not close.
//!
//! Closing any fd of a FUSE file sends `FUSE_FLUSH` to its server and waits
//! for the answer, uninterruptibly once the server has read the request: a
//! hung server hangs whoever closes. The engine takes copies only of files
//! whose close cannot wait, but an fd can be switched (`dup2`) onto such a
//! file between its check and `pidfd_getfd`; that copy is then left open
//! ([`crate::pipeline::anchor`]). At exit the kernel would close it and the
//! exit would hang. So before exiting, [`spawn`] starts a child that shares
//! the fd table (`clone(CLONE_FILES)` without `CLONE_VM`: a fork that keeps
//! the table): this process's exit then closes nothing, and the child, once
//! this process is gone, closes every other fd and exits, closing the
//! copies left open: a hung server hangs that orphan only, never the
//! program its caller waits for.

use std::io;

/// Starts the keeper of `left_open` (fd numbers, sorted). It polls its
/// parent every 10 ms and, once it is gone, closes every fd but
/// `left_open` (which it then closes by exiting). Call it last, just
/// before exiting: this process's fd table stays shared with the keeper.
pub(crate) fn spawn(left_open: &[i32]) -> io::Result<()> {
    let parent = std::process::id() as libc::pid_t;
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .map_or(1 << 20, |l| l.min(1 << 20)) as i32;
    // SAFETY: clone without CLONE_VM and with a null stack runs the child on
    // a copy of this address space and of this thread's stack, as fork
    // does; exit signal 0, so that no caller's wait(2) sees it. The child
    // runs `keep` only: raw syscalls on integers and on memory it owns (its
    // copy of `left_open`), no allocation, no lock, and it never returns.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::CLONE_FILES as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    match pid {
        p if p < 0 => Err(io::Error::last_os_error()),
        0 => keep(parent, left_open, limit),
        _ => Ok(()),
    }
}

/// The keeper's life: wait for the parent to go, close all but
/// `left_open`, exit.
fn keep(parent: libc::pid_t, left_open: &[i32], limit: i32) -> ! {
    let name = b"kcmp-keeper\0";
    // SAFETY: prctl(PR_SET_NAME) reads a NUL-terminated buffer we own.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0) };
    let tick = libc::timespec {
        tv_sec: 0,
        tv_nsec: 10_000_000,
    };
    // SAFETY: getppid takes nothing.
    while unsafe { libc::getppid() } == parent {
        // SAFETY: nanosleep reads a timespec we own.
        unsafe { libc::nanosleep(&tick, std::ptr::null_mut()) };
    }
    let mut from = 0i32;
    for &fd in left_open {
        if fd > from {
            close_between(from, fd - 1, limit);
        }
        from = from.max(fd.saturating_add(1));
    }
    close_between(from, i32::MAX - 1, limit);
    // SAFETY: _exit takes an integer and does not return; it closes the
    // copies left open (a hung server makes this orphan wait, no one else).
    unsafe { libc::_exit(0) }
}

/// Closes fds `first..=last` (`close_range`, or one by one below `limit`
/// before Linux 5.9).
fn close_between(first: i32, last: i32, limit: i32) {
    // SAFETY: close_range takes integers and closes fds of this table only,
    // which the parent no longer uses.
    let r = unsafe { libc::syscall(libc::SYS_close_range, first as u32, last as u32, 0) };
    if r < 0 {
        for fd in first..=last.min(limit) {
            // SAFETY: close takes an integer; a closed fd gives EBADF.
            unsafe { libc::close(fd) };
        }
    }
}
