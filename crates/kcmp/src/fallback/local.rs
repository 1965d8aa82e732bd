//! Comparisons of two fds of the calling process without kcmp:
//! `F_DUPFD_QUERY` and the epoll trick (and kcmp between them, in
//! [`same_own_description`]).

use super::{LocalMethod, Method, SameDescription};
use crate::sys;
use crate::{compare_files, Error, FdNum, Pid, Result};
use rustix::io::Errno;
use std::os::fd::{AsFd, AsRawFd};

/// `fcntl(a, F_DUPFD_QUERY, b)`: `Ok(Some(same))`, or `Ok(None)` when this
/// kernel lacks `F_DUPFD_QUERY` (before 6.10).
///
/// ```
/// let f = std::fs::File::open("/dev/null").unwrap();
/// let g = std::fs::File::open("/dev/null").unwrap();
/// if let Some(same) = kcmp::fallback::dupfd_query(&f, &g).unwrap() {
///     assert!(!same);
/// }
/// ```
pub fn dupfd_query(a: impl AsFd, b: impl AsFd) -> Result<Option<bool>> {
    dupfd_query_numbers(a.as_fd().as_raw_fd(), b.as_fd().as_raw_fd())
}

/// [`dupfd_query`] on two fd numbers of this process.
fn dupfd_query_numbers(a: i32, b: i32) -> Result<Option<bool>> {
    match sys::fcntl::dupfd_query(a, b) {
        Ok(same) => Ok(Some(same)),
        Err(e) if e == Errno::INVAL => Ok(None),
        Err(e) if e == Errno::BADF => {
            // Old kernels give EBADF for unknown commands on O_PATH fds; a
            // real EBADF means one fd is not open.
            match (sys::fcntl::is_open(a), sys::fcntl::is_open(b)) {
                (Ok(()), Ok(())) => Ok(None),
                _ => Err(Error::os("fcntl(F_DUPFD_QUERY)", e)),
            }
        }
        Err(e) => Err(Error::os("fcntl(F_DUPFD_QUERY)", e)),
    }
}

/// The epoll trick: true when `a` and `b` are one open file description.
/// Needs files that support poll; regular files and O_PATH fds give an
/// error (`EPERM`).
///
/// ```
/// let (r, w) = rustix::pipe::pipe().unwrap();
/// let r2 = r.try_clone().unwrap();
/// assert!(kcmp::fallback::epoll_same(&r, &r2).unwrap());
/// assert!(!kcmp::fallback::epoll_same(&r, &w).unwrap());
/// ```
pub fn epoll_same(a: impl AsFd, b: impl AsFd) -> Result<bool> {
    epoll_same_numbers(a.as_fd().as_raw_fd(), b.as_fd().as_raw_fd())
}

/// The epoll trick on two fd numbers of this process.
fn epoll_same_numbers(a: i32, b: i32) -> Result<bool> {
    use sys::fcntl::EpollStep;
    sys::fcntl::epoll_same(a, b).map_err(|(step, e)| {
        let what = match step {
            EpollStep::Create => "epoll_create1",
            EpollStep::Dup => "dup",
            EpollStep::Dup2 => "dup2",
            EpollStep::Add => {
                "epoll_ctl(EPOLL_CTL_ADD) (the epoll trick needs a file that supports poll)"
            }
        };
        Error::os(what, e)
    })
}

/// Decides whether two fds of the calling process are one open file
/// description without kcmp: `F_DUPFD_QUERY`, else the epoll trick.
///
/// ```
/// use kcmp::fallback::same_own_fds;
/// let (r, _w) = rustix::pipe::pipe().unwrap();
/// let r2 = r.try_clone().unwrap();
/// assert!(same_own_fds(&r, &r2).unwrap().0);
/// ```
pub fn same_own_fds(a: impl AsFd, b: impl AsFd) -> Result<(bool, LocalMethod)> {
    same_own_numbers(a.as_fd().as_raw_fd(), b.as_fd().as_raw_fd())
}

/// [`same_own_fds`] on two fd numbers of this process.
pub(super) fn same_own_numbers(a: i32, b: i32) -> Result<(bool, LocalMethod)> {
    if let Some(same) = dupfd_query_numbers(a, b)? {
        return Ok((same, LocalMethod::DupfdQuery));
    }
    Ok((epoll_same_numbers(a, b)?, LocalMethod::EpollTrick))
}

/// Whether an errno from kcmp for this process against itself means that
/// kcmp is blocked or missing here (not that an argument was wrong).
fn kcmp_blocked(err: &Error) -> bool {
    matches!(err, Error::Kcmp(k) if k.errno == Errno::PERM || k.errno == Errno::NOSYS)
}

/// Decides whether two fds of the calling process are one open file
/// description, with the first exact method that works here, in systemd's
/// `same_fd` order, and says which method answered:
///
/// 1. `fcntl(a, F_DUPFD_QUERY, b)`: Linux 6.10+, one call, no permission
///    needed, any file (O_PATH included);
/// 2. kcmp(2) `KCMP_FILE`: Linux 3.5+ with `CONFIG_KCMP`, needs ptrace read
///    access to this process (always granted, unless a seccomp filter or a
///    sandbox blocks kcmp: then `EPERM` or `ENOSYS`, and the next method is tried);
/// 3. the epoll trick: any kernel, no permission, but only for files that
///    support poll (pipes, sockets, eventfds, ttys…; not regular files).
///
/// All three are exact. When none applies (kcmp blocked on a kernel before
/// 6.10, and a regular file) the error is the epoll trick's `EPERM`, and
/// nothing is guessed.
///
/// ```
/// use kcmp::fallback::{same_own_description, Method};
/// let f = std::fs::File::open("/dev/null").unwrap();
/// let g = f.try_clone().unwrap();
/// let answer = same_own_description(&f, &g).unwrap();
/// assert!(answer.same);
/// assert!(matches!(answer.method, Method::DupfdQuery | Method::Kcmp | Method::EpollTrick));
/// ```
pub fn same_own_description(a: impl AsFd, b: impl AsFd) -> Result<SameDescription> {
    let (a, b) = (a.as_fd().as_raw_fd(), b.as_fd().as_raw_fd());
    if let Some(same) = dupfd_query_numbers(a, b)? {
        return Ok(SameDescription {
            same,
            method: Method::DupfdQuery,
        });
    }
    let me = Pid::this();
    // Own fds are valid numbers (BorrowedFd is never negative).
    let (fa, fb) = (FdNum::new(a)?, FdNum::new(b)?);
    match compare_files(me, fa, me, fb) {
        Ok(ord) => Ok(SameDescription {
            same: ord.is_equal(),
            method: Method::Kcmp,
        }),
        Err(e) if kcmp_blocked(&e) => Ok(SameDescription {
            same: epoll_same_numbers(a, b)?,
            method: Method::EpollTrick,
        }),
        Err(e) => Err(e),
    }
}
