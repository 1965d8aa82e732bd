//! fcntl(2) on raw fd numbers, for [`crate::fallback`].
//!
//! rustix's fcntl wrappers take `AsFd` values, which cannot be built from a
//! bare fd number without `unsafe`; and rustix has no `F_DUPFD_QUERY`. These
//! shims take fd numbers and never dereference memory.

use rustix::io::Errno;
use std::os::fd::{FromRawFd, OwnedFd};

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

/// `fcntl(fd, F_DUPFD_CLOEXEC, 0)`: a new, owned fd sharing fd's open file
/// description (works on O_PATH fds).
pub fn dup_owned(fd: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: F_DUPFD_CLOEXEC takes an integer third argument (the lowest
    // acceptable fd number) and touches no memory.
    let ret = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if ret < 0 {
        return Err(last_errno());
    }
    // SAFETY: on success fcntl returned a fresh fd that nothing else in this
    // process owns; the OwnedFd becomes its only owner and closes it once.
    Ok(unsafe { OwnedFd::from_raw_fd(ret) })
}
