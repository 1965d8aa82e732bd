//! The comparison API: one safe, validated function per kcmp(2) use.
#![forbid(unsafe_code)]

use crate::sys;
use crate::{
    Error, InvalidArgument, KcmpCall, KcmpError, KcmpOrdering, KcmpType, ProcessResource, Result,
};
use std::fmt;
use std::os::fd::{AsFd, AsRawFd};
use std::process::Child;

/// A process or thread id, always `> 0`.
///
/// kcmp looks pids up in the caller's pid namespace; thread ids work as pids.
/// Built from an `i32` ([`Pid::new`], `TryFrom<i32>`), a `u32` (what
/// [`std::process::id`] and [`Child::id`] return), an `i64`, or a
/// `&Child`; out-of-range numbers give [`InvalidArgument::Pid`] (`EINVAL`).
///
/// ```
/// use kcmp::Pid;
/// assert!(Pid::new(0).is_err());
/// assert!(Pid::new(-5).is_err());
/// assert!(Pid::try_from(u32::MAX).is_err());
/// assert_eq!(Pid::new(42).unwrap().get(), 42);
/// assert_eq!(Pid::try_from(std::process::id()).unwrap(), Pid::this());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize), serde(transparent))]
pub struct Pid(i32);

impl Pid {
    /// Validates a pid: it must be positive.
    pub fn new(raw: i32) -> Result<Self> {
        Pid::try_from(raw as i64)
    }

    /// The calling process.
    pub fn this() -> Self {
        Pid(std::process::id() as i32)
    }

    /// The number.
    pub fn get(self) -> i32 {
        self.0
    }
}

impl TryFrom<i64> for Pid {
    type Error = Error;
    fn try_from(raw: i64) -> Result<Self> {
        if raw <= 0 || raw > i32::MAX as i64 {
            return Err(Error::InvalidArgument(InvalidArgument::Pid(raw)));
        }
        Ok(Pid(raw as i32))
    }
}

impl TryFrom<i32> for Pid {
    type Error = Error;
    fn try_from(raw: i32) -> Result<Self> {
        Pid::try_from(i64::from(raw))
    }
}

impl TryFrom<u32> for Pid {
    type Error = Error;
    fn try_from(raw: u32) -> Result<Self> {
        Pid::try_from(i64::from(raw))
    }
}

impl TryFrom<&Child> for Pid {
    type Error = Error;
    /// The child's pid ([`Child::id`]). It names the child until the child
    /// is reaped (waited for); afterwards the number may be reused.
    ///
    /// ```
    /// let mut child = std::process::Command::new("true").spawn().unwrap();
    /// let pid = kcmp::Pid::try_from(&child).unwrap();
    /// assert_eq!(pid.get() as u32, child.id());
    /// child.wait().unwrap();
    /// ```
    fn try_from(child: &Child) -> Result<Self> {
        Pid::try_from(child.id())
    }
}

impl From<Pid> for i32 {
    fn from(pid: Pid) -> i32 {
        pid.0
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An fd number in another (or this) process, `0..=i32::MAX`: a number,
/// not a handle (it owns nothing and may name a different file, or none,
/// by the time it is used).
///
/// The kernel truncates kcmp's fd arguments to 32 bits, so fd + 2^32 would
/// silently compare as fd; this type rejects such numbers. A number outside
/// the range gives [`InvalidArgument::Fd`], whose errno is `EBADF` — what
/// kcmp(2) itself answers for fd -1 (and LTP's kcmp02 expects).
///
/// ```
/// use kcmp::FdNum;
/// assert_eq!(FdNum::new(-1).unwrap_err().errno_name(), Some("EBADF"));
/// assert!(FdNum::try_from((1i64 << 32) + 3).is_err());
/// assert_eq!(FdNum::new(3).unwrap().get(), 3);
/// let f = std::fs::File::open("/dev/null").unwrap();
/// assert_eq!(FdNum::of(&f).get(), std::os::fd::AsRawFd::as_raw_fd(&f));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize), serde(transparent))]
pub struct FdNum(i32);

impl FdNum {
    /// Validates an fd number: it must be non-negative.
    pub fn new(raw: i32) -> Result<Self> {
        FdNum::try_from(raw as i64)
    }

    /// The number of one of this process's own fds (always valid: an open
    /// fd is never negative). Only the number is kept; it names the file
    /// only as long as the fd stays open.
    pub fn of(fd: impl AsFd) -> Self {
        FdNum(fd.as_fd().as_raw_fd())
    }

    /// The number.
    pub fn get(self) -> i32 {
        self.0
    }
}

impl TryFrom<i64> for FdNum {
    type Error = Error;
    fn try_from(raw: i64) -> Result<Self> {
        if !(0..=i32::MAX as i64).contains(&raw) {
            return Err(Error::InvalidArgument(InvalidArgument::Fd(raw)));
        }
        Ok(FdNum(raw as i32))
    }
}

impl TryFrom<i32> for FdNum {
    type Error = Error;
    fn try_from(raw: i32) -> Result<Self> {
        FdNum::try_from(i64::from(raw))
    }
}

impl TryFrom<u32> for FdNum {
    type Error = Error;
    fn try_from(raw: u32) -> Result<Self> {
        FdNum::try_from(i64::from(raw))
    }
}

impl From<FdNum> for i32 {
    fn from(fd: FdNum) -> i32 {
        fd.0
    }
}

impl fmt::Display for FdNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a registration sits in an epoll instance: the `struct
/// kcmp_epoll_slot` of `KCMP_EPOLL_TFD`.
///
/// ```
/// use kcmp::{EpollSlot, FdNum};
/// let slot = EpollSlot { epfd: FdNum::new(5).unwrap(), tfd: FdNum::new(7).unwrap(), toff: 0 };
/// assert_eq!(slot.tfd.get(), 7);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EpollSlot {
    /// The epoll fd, in the second process.
    pub epfd: FdNum,
    /// The fd number the target was registered under (it may be closed since).
    pub tfd: FdNum,
    /// Which of the registrations under `tfd`, counted from 0 in the kernel's order.
    pub toff: u32,
}

fn call(
    call: KcmpCall,
    result: std::result::Result<i32, rustix::io::Errno>,
) -> Result<KcmpOrdering> {
    match result {
        Ok(raw) => Ok(KcmpOrdering::from_raw(raw)),
        Err(errno) => Err(Error::Kcmp(KcmpError { call, errno })),
    }
}

/// Compares two open file descriptions: fd1 of pid1 against fd2 of pid2
/// (`KCMP_FILE`).
///
/// Two `open()`s of one file are *different* descriptions; `dup`, `fork`
/// and `SCM_RIGHTS` share one. O_PATH fds work.
///
/// ```
/// use kcmp::{compare_files, FdNum, Pid};
/// let me = Pid::this();
/// let stdin = FdNum::new(0).unwrap();
/// assert!(compare_files(me, stdin, me, stdin).unwrap().is_equal());
/// ```
pub fn compare_files(pid1: Pid, fd1: FdNum, pid2: Pid, fd2: FdNum) -> Result<KcmpOrdering> {
    let c = KcmpCall {
        pid1: pid1.0,
        pid2: pid2.0,
        ty: KcmpType::File,
        idx1: fd1.0 as u64,
        idx2: fd2.0 as u64,
        epoll_slot: None,
    };
    call(c, sys::kcmp(c.pid1, c.pid2, 0, c.idx1, c.idx2))
}

/// Compares a per-process resource of two tasks (`KCMP_VM`, `KCMP_FILES`,
/// `KCMP_FS`, `KCMP_SIGHAND`, `KCMP_IO`, `KCMP_SYSVSEM`).
///
/// Caveat: the kernel compares pointers even when an object was never
/// allocated. Two tasks with no I/O context, or no SysV undo list, compare
/// *equal*; zombies and kernel threads (no mm) compare equal on VM. "Equal"
/// from this function therefore means "same object, or both have none".
/// The scanner (`kcmp_map::scan`) tells the two apart.
///
/// ```
/// use kcmp::{compare_process, Pid, ProcessResource};
/// let me = Pid::this();
/// assert!(compare_process(ProcessResource::Vm, me, me).unwrap().is_equal());
/// ```
pub fn compare_process(resource: ProcessResource, pid1: Pid, pid2: Pid) -> Result<KcmpOrdering> {
    let ty = resource.kcmp_type();
    let c = KcmpCall {
        pid1: pid1.0,
        pid2: pid2.0,
        ty,
        idx1: 0,
        idx2: 0,
        epoll_slot: None,
    };
    call(c, sys::kcmp(c.pid1, c.pid2, ty as i32, 0, 0))
}

/// Compares fd1 of pid1 with a file registered in an epoll instance of pid2
/// (`KCMP_EPOLL_TFD`, Linux 4.13+). Orders like [`compare_files`].
///
/// Errors: `EBADF` (fd1 or the epoll fd not open), `EINVAL` (not an epoll),
/// `ENOENT` (no registration at (tfd, toff)).
///
/// ```no_run
/// use kcmp::{compare_epoll_target, EpollSlot, FdNum, Pid};
/// let me = Pid::this();
/// let slot = EpollSlot { epfd: FdNum::new(4).unwrap(), tfd: FdNum::new(3).unwrap(), toff: 0 };
/// let same = compare_epoll_target(me, FdNum::new(3).unwrap(), me, slot)?.is_equal();
/// # Ok::<(), kcmp::Error>(())
/// ```
pub fn compare_epoll_target(
    pid1: Pid,
    fd1: FdNum,
    pid2: Pid,
    slot: EpollSlot,
) -> Result<KcmpOrdering> {
    let raw = sys::KcmpEpollSlot {
        efd: slot.epfd.0 as u32,
        tfd: slot.tfd.0 as u32,
        toff: slot.toff,
    };
    let c = KcmpCall {
        pid1: pid1.0,
        pid2: pid2.0,
        ty: KcmpType::EpollTfd,
        idx1: fd1.0 as u64,
        idx2: 0,
        epoll_slot: Some((raw.efd, raw.tfd, raw.toff)),
    };
    call(c, sys::kcmp_epoll_tfd(c.pid1, c.pid2, c.idx1, &raw))
}

/// Any comparison by type and raw indices, validated like the typed
/// functions. For [`KcmpType::EpollTfd`] use [`compare_epoll_target`].
///
/// ```
/// use kcmp::{compare, KcmpType, Pid};
/// let me = Pid::this();
/// assert!(compare(KcmpType::Fs, me, me, 0, 0).unwrap().is_equal());
/// assert!(compare(KcmpType::File, me, me, 1 << 32, 0).is_err()); // would be truncated
/// ```
pub fn compare(ty: KcmpType, pid1: Pid, pid2: Pid, idx1: i64, idx2: i64) -> Result<KcmpOrdering> {
    match ty {
        KcmpType::File => compare_files(pid1, FdNum::try_from(idx1)?, pid2, FdNum::try_from(idx2)?),
        KcmpType::EpollTfd => Err(Error::InvalidArgument(InvalidArgument::EpollTfdWithoutSlot)),
        other => compare_process(
            other
                .process_resource()
                .expect("non-file types are process resources"),
            pid1,
            pid2,
        ),
    }
}

/// Compares two fds of the calling process by their open file descriptions,
/// with kcmp(2): an ordering (for sorting and grouping), so this needs kcmp
/// to work here (see [`same_open_file`] for a yes/no answer that also works
/// where kcmp is blocked).
///
/// ```
/// use kcmp::compare_own_fds;
/// let f = std::fs::File::open("/dev/null").unwrap();
/// let g = f.try_clone().unwrap(); // dup: one description
/// let h = std::fs::File::open("/dev/null").unwrap(); // a second open()
/// assert!(compare_own_fds(&f, &g).unwrap().is_equal());
/// assert!(!compare_own_fds(&f, &h).unwrap().is_equal());
/// ```
pub fn compare_own_fds(a: impl AsFd, b: impl AsFd) -> Result<KcmpOrdering> {
    let me = Pid::this();
    compare_files(me, FdNum::of(a), me, FdNum::of(b))
}

/// True when two fds of the calling process refer to one open file
/// description (systemd's `same_fd`, Mesa's `os_same_file_description`).
///
/// Answers wherever an exact method works, tried in systemd's order:
/// `fcntl(F_DUPFD_QUERY)` (Linux 6.10+, no permission needed), kcmp(2)
/// (blocked by some seccomp profiles and sandboxes), the epoll trick (files
/// that support poll). See [`fallback::same_own_description`](crate::fallback::same_own_description),
/// which also says which method answered.
///
/// ```
/// let f = std::fs::File::open("/dev/null").unwrap();
/// let g = std::fs::File::open("/dev/null").unwrap();
/// assert!(kcmp::same_open_file(&f, &f).unwrap());
/// assert!(!kcmp::same_open_file(&f, &g).unwrap());
/// ```
pub fn same_open_file(a: impl AsFd, b: impl AsFd) -> Result<bool> {
    Ok(crate::fallback::same_own_description(a, b)?.same)
}
