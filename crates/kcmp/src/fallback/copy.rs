//! The copy path across processes: `pidfd_getfd` brings another process's
//! fds into this one (only files whose close never waits on a server, see
//! [`LOCAL_FILESYSTEMS`]), then the same-process methods compare them.

use super::local::same_own_numbers;
use super::{Method, SameDescription};
use crate::{Error, FdNum, Pid, Result};
use rustix::io::Errno;
use std::os::fd::{AsRawFd, OwnedFd};

/// Filesystem types whose files never make a close (or a `getattr`) wait
/// for another process or the network: local disk filesystems, memory
/// filesystems and the kernel's own. FUSE (`fuse`, `fuse.*`, `fuseblk`),
/// NFS, CIFS, 9p, Ceph and overlayfs (its layers may be any of those) are
/// not among them. The fallbacks copy another process's fd only when it is
/// a pipe, a socket, an anonymous inode or a file on a mount of one of
/// these types: closing the copy of a FUSE file sends `FLUSH` to its server
/// and waits, uninterruptibly, for as long as the server does not answer.
///
/// ```
/// use kcmp::fallback::LOCAL_FILESYSTEMS;
/// assert!(LOCAL_FILESYSTEMS.contains(&"ext4"));
/// assert!(!LOCAL_FILESYSTEMS.contains(&"fuse.sshfs") && !LOCAL_FILESYSTEMS.contains(&"nfs4"));
/// ```
pub const LOCAL_FILESYSTEMS: &[&str] = &[
    "ext2",
    "ext3",
    "ext4",
    "xfs",
    "btrfs",
    "f2fs",
    "vfat",
    "exfat",
    "tmpfs",
    "ramfs",
    "devtmpfs",
    "proc",
    "sysfs",
    "devpts",
    "mqueue",
    "hugetlbfs",
    "cgroup",
    "cgroup2",
    "debugfs",
    "tracefs",
    "securityfs",
    "pstore",
    "bpf",
    "configfs",
    "binfmt_misc",
    "efivarfs",
    "nsfs",
    "pipefs",
    "sockfs",
    "anon_inodefs",
];

/// Brings fd `fd` of another process into this one with `pidfd_getfd`
/// (needs ptrace attach rights); `None` for the calling process, whose fd
/// numbers are compared in place.
fn fetch(pid: Pid, fd: FdNum) -> Result<Option<OwnedFd>> {
    if pid == Pid::this() {
        return Ok(None);
    }
    let rpid = rustix::process::Pid::from_raw(pid.get()).expect("Pid is positive");
    let pidfd = rustix::process::pidfd_open(rpid, rustix::process::PidfdFlags::empty())
        .map_err(|e| Error::os(format!("pidfd_open({pid})"), e))?;
    let unsafe_to_close = || {
        Error::os(
            format!(
                "fd {fd} of process {pid}: comparing it without kcmp(2) means closing a copy \
                 of it, and its file is not known to close without waiting on a server \
                 (FUSE, NFS, …; kcmp::fallback::LOCAL_FILESYSTEMS)"
            ),
            Errno::OPNOTSUPP,
        )
    };
    if !crate::copy_guard::close_never_waits(pid, fd, pid)? {
        return Err(unsafe_to_close());
    }
    let owned =
        rustix::process::pidfd_getfd(&pidfd, fd.get(), rustix::process::PidfdGetfdFlags::empty())
            .map_err(|e| {
            Error::os(
                format!("pidfd_getfd(fd {fd} of process {pid}) (needs ptrace attach rights)"),
                e,
            )
        })?;
    // The fd may have been switched (dup2) onto another file since the
    // check: the copy itself is checked too, and left open (never closed,
    // so never waited on) when it fails.
    let own = FdNum::new(owned.as_raw_fd()).expect("an open fd is non-negative");
    if !crate::copy_guard::close_never_waits(Pid::this(), own, pid).unwrap_or(false) {
        let raw = rustix::fd::IntoRawFd::into_raw_fd(owned);
        LEFT_OPEN
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(raw);
        return Err(unsafe_to_close());
    }
    Ok(Some(owned))
}

/// The copies [`fetch`] left open.
static LEFT_OPEN: std::sync::Mutex<Vec<i32>> = std::sync::Mutex::new(Vec::new());

/// The fds of this process that the fallbacks left open, sorted: copies
/// taken with `pidfd_getfd` of an fd switched, between its check and the
/// copy, onto a file whose close could wait on a server (FUSE, NFS). The
/// process's exit would close them and wait: `kcmp_map::exit` leaves them
/// to a keeper child.
///
/// ```
/// // A process that compared nothing without kcmp(2) left nothing open.
/// assert!(kcmp::fallback::copies_left_open().is_empty());
/// ```
pub fn copies_left_open() -> Vec<i32> {
    let mut fds = LEFT_OPEN.lock().unwrap_or_else(|e| e.into_inner()).clone();
    fds.sort_unstable();
    fds
}

/// Decides without kcmp whether fd1 of pid1 and fd2 of pid2 are one open
/// file description (the methods of the [module docs](super)).
pub fn same_description_without_kcmp(
    pid1: Pid,
    fd1: FdNum,
    pid2: Pid,
    fd2: FdNum,
) -> Result<SameDescription> {
    let a = fetch(pid1, fd1)?;
    let b = fetch(pid2, fd2)?;
    let number = |fetched: &Option<OwnedFd>, fd: FdNum| match fetched {
        Some(owned) => owned.as_raw_fd(),
        None => fd.get(),
    };
    let (same, local) = same_own_numbers(number(&a, fd1), number(&b, fd2)).map_err(|e| {
        // Name the process for an fd of this process that is not open.
        match (&e, a.is_none(), b.is_none()) {
            (Error::Os { errno, .. }, _, _) if *errno == Errno::BADF => Error::os(
                format!("fd {fd1} of process {pid1} or fd {fd2} of process {pid2}"),
                *errno,
            ),
            _ => e,
        }
    })?;
    // Fetched fds are closed here, at once.
    let method = if a.is_some() || b.is_some() {
        Method::PidfdGetfd(local)
    } else {
        Method::local(local)
    };
    Ok(SameDescription { same, method })
}
