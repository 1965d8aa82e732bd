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

/// Starts the keeper of `left_open` (fd numbers, sorted). It waits until
/// every thread of this process has exited (a pidfd of this process turns
/// readable then, after the last thread let go of the fd table) and then
/// closes every fd but `left_open` (which it then closes by exiting). Call
/// it last, just before exiting: this process's fd table stays shared
/// with the keeper. Waiting for the parent's pid to change would not do:
/// that happens when the thread that started the keeper exits, while
/// another thread of this process may still hold the table and would then
/// be the one to close the copies.
pub(crate) fn spawn(left_open: &[i32]) -> io::Result<()> {
    let me = rustix::process::getpid();
    let pidfd = rustix::process::pidfd_open(me, rustix::process::PidfdFlags::empty())?;
    // Left in the shared table: the keeper closes it with the rest.
    let pidfd = rustix::fd::IntoRawFd::into_raw_fd(pidfd);
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
        0 => keep(pidfd, left_open, limit),
        _ => Ok(()),
    }
}

/// The keeper's life: wait for the parent to be gone (`parent`: its
/// pidfd), close all but `left_open`, exit.
fn keep(parent: i32, left_open: &[i32], limit: i32) -> ! {
    let name = b"kcmp-keeper\0";
    // SAFETY: prctl(PR_SET_NAME) reads a NUL-terminated buffer we own.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0) };
    let mut ready = libc::pollfd {
        fd: parent,
        events: libc::POLLIN,
        revents: 0,
    };
    // A pidfd is readable once its process and all its threads exited.
    // SAFETY: poll reads and writes one pollfd we own.
    while unsafe { libc::poll(&mut ready, 1, -1) } <= 0 {}
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
