//! fcntl(2) on raw fd numbers, for [`crate::fallback`].
//!
//! rustix's fcntl wrappers take `AsFd` values, which cannot be built from a
//! bare fd number without `unsafe`; and rustix has no `F_DUPFD_QUERY`. These
//! shims take fd numbers of the calling process and only *ask* about them
//! (identity, openness): none reads, writes or changes a file, and none
//! returns an owned handle made from a bare number (I/O safety).

use rustix::io::Errno;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `F_DUPFD_QUERY` (Linux 6.10): is fd2 a dup of fd1 (one open file description)?
pub const F_DUPFD_QUERY: libc::c_int = 1027;

fn last_errno() -> Errno {
    Errno::from_raw_os_error(
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO),
    )
}

/// `fcntl(fd1, F_DUPFD_QUERY, fd2)`: `Ok(true)` when both fds of the calling
/// process refer to one open file description. Kernels before 6.10 fail
/// with `EINVAL` (or `EBADF` when fd1 is an O_PATH fd).
pub fn dupfd_query(fd1: i32, fd2: i32) -> Result<bool, Errno> {
    // SAFETY: F_DUPFD_QUERY takes an integer third argument (an fd number)
    // and touches no memory of this process; a bad fd gives EBADF.
    let ret = unsafe { libc::fcntl(fd1, F_DUPFD_QUERY, fd2) };
    if ret < 0 {
        Err(last_errno())
    } else {
        Ok(ret != 0)
    }
}

/// `fcntl(fd, F_GETFD)`: `Ok(())` when fd is open in the calling process
/// (O_PATH fds included).
pub fn is_open(fd: i32) -> Result<(), Errno> {
    // SAFETY: F_GETFD takes no third argument and touches no memory.
    let ret = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if ret < 0 {
        Err(last_errno())
    } else {
        Ok(())
    }
}

/// Which step of the epoll trick failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpollStep {
    /// `epoll_create1`.
    Create,
    /// The dup of fd1 (`fcntl(F_DUPFD_CLOEXEC)`).
    Dup,
    /// `epoll_ctl(EPOLL_CTL_ADD)` (the file does not support poll: `EPERM`).
    Add,
    /// `dup2(fd2, slot)`.
    Dup2,
}

/// The epoll trick on two fd numbers of the calling process: `Ok(true)`
/// when both refer to one open file description.
///
/// epoll keys a registration on (file, fd number): after adding a private
/// dup of fd1 to a fresh epoll, `dup2(fd2)` onto that number and adding
/// again fails with `EEXIST` exactly when both are one description. The
/// dup never leaves this function: it is used only as an epoll key and
/// closed before returning, so no file of another owner is read, written,
/// seeked or changed, and no owned handle to it escapes.
pub fn epoll_same(fd1: i32, fd2: i32) -> Result<bool, (EpollStep, Errno)> {
    use rustix::event::epoll;
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC).map_err(|e| (EpollStep::Create, e))?;
    // SAFETY: F_DUPFD_CLOEXEC takes an integer third argument (the lowest
    // acceptable fd number) and touches no memory.
    let ret = unsafe { libc::fcntl(fd1, libc::F_DUPFD_CLOEXEC, 0) };
    if ret < 0 {
        return Err((EpollStep::Dup, last_errno()));
    }
    // SAFETY: on success fcntl returned a fresh fd that nothing else in this
    // process owns; `slot` is its only owner, closes it once, and does not
    // escape this function (I/O safety: it is used only as an epoll key and
    // as a dup2 target, never to read, write or change the file).
    let slot = unsafe { OwnedFd::from_raw_fd(ret) };
    let add = |fd: BorrowedFd<'_>| {
        epoll::add(
            &ep,
            fd,
            epoll::EventData::new_u64(0),
            epoll::EventFlags::empty(),
        )
    };
    add(slot.as_fd()).map_err(|e| (EpollStep::Add, e))?;
    // The registration stays keyed on (fd1's file, slot's number) after the
    // dup2, because fd1 keeps that file open.
    // SAFETY: dup2 takes two integers and touches no memory; `slot` is owned
    // here, so replacing the file its number refers to affects nobody else.
    let ret = unsafe { libc::dup3(fd2, slot.as_raw_fd(), libc::O_CLOEXEC) };
    if ret < 0 {
        let e = last_errno();
        // dup3 fails with EINVAL when fd2 is slot's own number (impossible:
        // slot is fresh and fd2 was open before) and EBADF when fd2 is not open.
        return Err((EpollStep::Dup2, e));
    }
    match add(slot.as_fd()) {
        Err(e) if e == Errno::EXIST => Ok(true),
        Ok(()) => Ok(false),
        Err(e) => Err((EpollStep::Add, e)),
    }
}
