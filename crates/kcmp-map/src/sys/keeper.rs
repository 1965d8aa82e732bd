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
    // The child starts with every signal blocked (the caller's handlers
    // must not run in it); this thread's mask is restored right after.
    // SAFETY: an all-zero sigset_t is valid storage for sigfillset and
    // pthread_sigmask, which write it.
    let (mut all, mut before): (libc::sigset_t, libc::sigset_t) =
        unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
    // SAFETY: sigfillset and pthread_sigmask write sigsets we own.
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut before);
    }
    // SAFETY: the child runs `keep` only: raw syscalls on integers and on
    // memory it owns (its copy of `left_open`), no allocation, no lock, no
    // libc wrapper that is a cancellation point; it closes no fd of the
    // shared table while the parent lives, and never returns.
    let pid = unsafe { super::process::clone_quietly(libc::CLONE_FILES as usize) };
    if pid == 0 {
        keep(pidfd, left_open, limit);
    }
    let failed = (pid < 0).then(io::Error::last_os_error);
    // SAFETY: pthread_sigmask reads the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &before, std::ptr::null_mut()) };
    failed.map_or(Ok(()), Err)
}

/// The keeper's life: wait for the parent to be gone (`parent`: its
/// pidfd), close all but `left_open`, exit.
fn keep(parent: i32, left_open: &[i32], limit: i32) -> ! {
    let name = b"kcmp-keeper\0";
    // SAFETY: prctl(PR_SET_NAME) reads a NUL-terminated buffer we own.
    unsafe { libc::syscall(libc::SYS_prctl, libc::PR_SET_NAME, name.as_ptr(), 0, 0, 0) };
    let mut ready = libc::pollfd {
        fd: parent,
        events: libc::POLLIN,
        revents: 0,
    };
    // A pidfd is readable once its process and all its threads exited.
    loop {
        // SAFETY: ppoll reads and writes one pollfd we own; no timeout, no
        // signal mask (every signal is blocked here).
        let n = unsafe {
            libc::syscall(
                libc::SYS_ppoll,
                &mut ready,
                1,
                std::ptr::null::<u8>(),
                std::ptr::null::<u8>(),
                0,
            )
        };
        if n > 0 && ready.revents & libc::POLLIN != 0 {
            break;
        }
        if n > 0 || (n < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR)) {
            // The pidfd is not what it was (POLLNVAL) or poll fails: close
            // nothing; exiting closes nothing either unless this keeper
            // holds the table's last reference, and then the parent is gone.
            // SAFETY: exit_group takes an integer and does not return.
            unsafe { libc::syscall(libc::SYS_exit_group, 0) };
        }
    }
    let mut from = 0i32;
    for &fd in left_open {
        if fd > from {
            close_between(from, fd - 1, limit);
        }
        from = from.max(fd.saturating_add(1));
    }
    close_between(from, i32::MAX - 1, limit);
    // SAFETY: exit_group takes an integer and does not return; it closes
    // the copies left open (a hung server makes this orphan wait, no one
    // else).
    unsafe { libc::syscall(libc::SYS_exit_group, 0) };
    unreachable!("exit_group returned")
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
            unsafe { libc::syscall(libc::SYS_close, fd) };
        }
    }
}
