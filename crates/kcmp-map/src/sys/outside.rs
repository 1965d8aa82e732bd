//! The outside closer: a process of its own (not a thread of this one)
//! that closes the engine's copies, whose last close may wait
//! uninterruptibly.
//!
//! The last close of a block device writes its dirty pages back and waits
//! for them (`sync_blockdev`), and that of a regular file on ext4 may start
//! its delayed allocation and wait for a journal handle: both in state D
//! while the device's I/O is stuck (a loop device over a frozen filesystem,
//! a suspended device-mapper device, a hung network block device). A thread
//! in that wait cannot be killed, and a process exits only when all its
//! threads have: on the closer thread, that close would keep this process
//! from exiting and its caller waiting. So the copies are sent (`SCM_RIGHTS`) to a process
//! that belongs to no one: a grandchild, reparented to init at once, which
//! closes what it receives and exits when this process closes its end of
//! the socket (or exits). Sent, a copy is held by the message, then by the
//! outside closer, which closes it only once told that the sender closed
//! its own: the close here is never the last one.

use rustix::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::io;

/// The most copies one message carries.
pub(crate) const MAX: usize = 64;

/// `u64` words of a control buffer for [`MAX`] fds (`CMSG_SPACE(4 * MAX)`
/// is 272 bytes on 64-bit Linux).
const CONTROL_WORDS: usize = 40;

/// Starts the outside closer; returns this process's end of its socket
/// (`SOCK_SEQPACKET`, up to [`MAX`] copies a message).
pub(crate) fn spawn() -> io::Result<OwnedFd> {
    let mut pair = [0i32; 2];
    let flags = libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC;
    // SAFETY: socketpair writes two fds into `pair`, which we own.
    if unsafe { libc::socketpair(libc::AF_UNIX, flags, 0, pair.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just made by socketpair and are owned here.
    let (ours, theirs) = unsafe { (OwnedFd::from_raw_fd(pair[0]), OwnedFd::from_raw_fd(pair[1])) };
    // The children start with every signal blocked (the caller's handlers
    // must not run in them); this thread's mask is restored right after.
    // SAFETY: an all-zero sigset_t is valid storage for sigfillset and
    // pthread_sigmask, which write it.
    let (mut all, mut before): (libc::sigset_t, libc::sigset_t) =
        unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
    // SAFETY: sigfillset and pthread_sigmask write sigsets we own.
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut before);
    }
    let keep = theirs.as_raw_fd();
    // The intermediate child shares this fd table: its exit closes nothing
    // (a copy left open of a hung FUSE file would make it wait, and us in
    // `waitpid`). The outside closer gets a table of its own.
    // SAFETY: the intermediate child makes one more clone and exit_group,
    // raw syscalls touching no fd; the closer it starts runs `serve` only
    // (raw syscalls on integers and on buffers of its own stack, in a table
    // of its own), never returning.
    let pid = unsafe { super::process::clone_quietly(libc::CLONE_FILES as usize) };
    if pid == 0 {
        // The intermediate child: start the closer, exit at once, so that
        // the closer is reparented (to init or a subreaper), which reaps it.
        // SAFETY: as above: the closer runs `serve` only.
        if unsafe { super::process::clone_quietly(0) } == 0 {
            serve(keep);
        }
        // SAFETY: exit_group takes an integer and does not return.
        unsafe { libc::syscall(libc::SYS_exit_group, 0) };
    }
    let failed = (pid < 0).then(io::Error::last_os_error);
    // SAFETY: pthread_sigmask reads the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &before, std::ptr::null_mut()) };
    if let Some(e) = failed {
        return Err(e);
    }
    // The intermediate child exits at once; __WALL since its exit signal is 0.
    let mut status = 0;
    loop {
        // SAFETY: waitpid of our own child, writing a status we own.
        let r = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::__WALL) };
        if r >= 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break;
        }
    }
    drop(theirs);
    Ok(ours)
}

/// The outside closer's life: close every inherited fd but `sock` (a
/// caller's FUSE file among them may make that wait: then this orphan
/// waits, and the sender, finding its socket full, leaves its copies open),
/// then close each fd received on it, until its peer is gone.
fn serve(sock: i32) -> ! {
    let name = b"kcmp-closer\0";
    // SAFETY: prctl(PR_SET_NAME) reads a NUL-terminated buffer we own.
    unsafe { libc::syscall(libc::SYS_prctl, libc::PR_SET_NAME, name.as_ptr(), 0, 0, 0) };
    // SAFETY: close_range takes integers and closes fds of this process's
    // own table (a copy of the parent's: the parent keeps its fds).
    unsafe {
        if sock > 0 {
            libc::syscall(libc::SYS_close_range, 0u32, (sock - 1) as u32, 0);
        }
        libc::syscall(libc::SYS_close_range, (sock + 1) as u32, u32::MAX, 0);
    }
    // Room for one message of MAX fds (a u64 array keeps it aligned).
    let mut control = [0u64; CONTROL_WORDS];
    let mut byte = 0u8;
    // Received and not closed yet: the sender's own copies may still be
    // open, and closing these first would leave the last close to it. It
    // sends nothing more before it closed them.
    let mut held = [-1i32; MAX];
    let mut count = 0usize;
    loop {
        let mut iov = one_byte(&mut byte);
        let mut msg = message(&mut iov);
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control);
        // SAFETY: recvmsg writes into the buffers `msg` points to, which
        // live on this stack for the call.
        let n = unsafe { libc::syscall(libc::SYS_recvmsg, sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        if n <= 0 {
            // SAFETY: exit_group takes an integer and does not return; it
            // closes what is still held.
            unsafe { libc::syscall(libc::SYS_exit_group, 0) };
        }
        {
            // The sender closed its copies of what came before: close ours.
            for fd in &mut held[..count] {
                // SAFETY: close takes an integer, an fd received here.
                unsafe { libc::syscall(libc::SYS_close, *fd) };
                *fd = -1;
            }
            count = 0;
        }
        // SAFETY: CMSG_FIRSTHDR/CMSG_NXTHDR/CMSG_DATA walk the control
        // buffer recvmsg filled, within msg_controllen; an SCM_RIGHTS
        // message carries fds installed in this process, closed here.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                    let data = libc::CMSG_DATA(cmsg).cast::<i32>();
                    let len = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                    for i in 0..len / std::mem::size_of::<i32>() {
                        let fd = data.add(i).read_unaligned();
                        if count < held.len() {
                            held[count] = fd;
                            count += 1;
                        } else {
                            libc::syscall(libc::SYS_close, fd);
                        }
                    }
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
        }
    }
}

/// Hands `copies` (at most [`MAX`]) to the outside closer behind `sock`:
/// sends them, closes them here (not the last close: the message, or the
/// outside closer, holds them), then tells the outside closer it may close
/// its own. `Err` when they were not sent: with the error, `EAGAIN` when
/// that would wait (the closer is stuck with a full socket); another when
/// one of them cannot be sent (an io_uring) or the closer is gone.
pub(crate) fn hand_over(
    sock: BorrowedFd<'_>,
    copies: Vec<OwnedFd>,
) -> Result<(), (Vec<OwnedFd>, io::Error)> {
    let raw: Vec<i32> = copies.iter().map(|c| c.as_raw_fd()).collect();
    if raw.is_empty() {
        return Ok(());
    }
    if raw.len() > MAX {
        return Err((copies, io::Error::from_raw_os_error(libc::E2BIG)));
    }
    if let Err(e) = send(sock, &raw) {
        return Err((copies, e));
    }
    drop(copies);
    // Failing, the outside closer closes them with the next message, or at
    // its exit.
    let _ = send(sock, &[]);
    Ok(())
}

/// An iovec of the one byte `byte` (every message carries one).
fn one_byte(byte: &mut u8) -> libc::iovec {
    libc::iovec {
        iov_base: (byte as *mut u8).cast(),
        iov_len: 1,
    }
}

/// A msghdr of `iov` alone, no control data yet (set by the caller).
fn message(iov: &mut libc::iovec) -> libc::msghdr {
    // SAFETY: an all-zero msghdr is valid (null pointers, zero lengths).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov;
    msg.msg_iovlen = 1;
    msg
}

/// Sends one message carrying `fds` (none: a one-byte message), without
/// waiting.
fn send(sock: BorrowedFd<'_>, fds: &[i32]) -> io::Result<()> {
    let mut control = [0u64; CONTROL_WORDS];
    let mut byte = 0u8;
    let mut iov = one_byte(&mut byte);
    let mut msg = message(&mut iov);
    if !fds.is_empty() {
        let bytes = std::mem::size_of_val(fds) as u32;
        msg.msg_control = control.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE/CMSG_LEN compute sizes; CMSG_FIRSTHDR and
        // CMSG_DATA point into `control`, large enough for MAX fds (the
        // caller sends at most MAX).
        unsafe {
            msg.msg_controllen = libc::CMSG_SPACE(bytes) as usize;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(bytes) as usize;
            let data = libc::CMSG_DATA(cmsg).cast::<i32>();
            for (i, fd) in fds.iter().enumerate() {
                data.add(i).write_unaligned(*fd);
            }
        }
    }
    let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
    // SAFETY: sendmsg reads the buffers `msg` points to, alive for the call.
    let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, flags) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
