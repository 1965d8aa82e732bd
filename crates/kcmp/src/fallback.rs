//! Life without kcmp: exact equality of open file descriptions when kcmp(2)
//! is missing (`ENOSYS`) or refused even for the caller against itself
//! (`EPERM`: a seccomp filter or a sandbox).
//!
//! Methods, tried in this order:
//! - within the calling process: `fcntl(fd1, F_DUPFD_QUERY, fd2)` (Linux
//!   6.10+; older kernels answer `EINVAL`, or `EBADF` on an O_PATH fd1 —
//!   told apart from a closed fd with `F_GETFD`), then the **epoll trick**:
//!   epoll keys a registration on (file, fd number), so after adding a dup
//!   of fd1 to a fresh epoll, `dup2(fd2)` onto that number and adding again
//!   fails with `EEXIST` exactly when both are one description. The trick
//!   needs files that support poll (pipes, sockets, eventfds, ttys…); for
//!   regular files and O_PATH fds epoll answers `EPERM` and only
//!   `F_DUPFD_QUERY` can decide;
//! - across processes: `pidfd_open` + `pidfd_getfd` (Linux 5.6; needs ptrace
//!   *attach* rights, stricter than kcmp's *read*) bring both fds into this
//!   process, then the same-process methods; the fetched fds are closed at
//!   once. Only pipes, sockets, anonymous inodes and files on mounts of
//!   [`LOCAL_FILESYSTEMS`] are fetched (read from /proc before the copy and
//!   for the copy itself): closing a copy of a FUSE or NFS file could wait
//!   for its server forever. Other files give `EOPNOTSUPP` (a copy found
//!   unsafe after an fd was switched under the check is left open).
//!
//! These give equality without order: grouping n fds into g descriptions
//! costs up to n × g comparisons instead of kcmp's n log g
//! ([`group_by_equality`] counts them). The six process-level kinds (vm,
//! files, fs, sighand, io, sysvsem) have no exact fallback:
//! [`process_kinds_unavailable`] gives the reason to report instead.
//!
//! ```
//! use kcmp::fallback::{same_description, Method};
//! use kcmp::{FdNum, Pid};
//! use std::os::fd::AsRawFd;
//! let f = std::fs::File::open("/dev/null").unwrap();
//! let g = f.try_clone().unwrap();
//! let me = Pid::this();
//! let fd = |x: &std::fs::File| FdNum::new(x.as_raw_fd()).unwrap();
//! let answer = same_description(me, fd(&f), me, fd(&g)).unwrap();
//! assert!(answer.same);
//! ```
#![forbid(unsafe_code)]

use crate::sys;
use crate::{
    compare_files, compare_process, errno_name, Error, FdNum, KcmpOrdering, Pid, ProcessResource,
    Result,
};
use rustix::io::Errno;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::OnceLock;

/// How a same-process comparison was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LocalMethod {
    /// `fcntl(F_DUPFD_QUERY)`.
    DupfdQuery,
    /// The epoll trick.
    EpollTrick,
}

impl LocalMethod {
    /// `"f_dupfd_query"` or `"epoll"`.
    pub fn name(self) -> &'static str {
        match self {
            LocalMethod::DupfdQuery => "f_dupfd_query",
            LocalMethod::EpollTrick => "epoll",
        }
    }
}

/// Which method answered a [`same_description`] question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// kcmp(2) `KCMP_FILE`.
    Kcmp,
    /// `fcntl(F_DUPFD_QUERY)` on the caller's own fds.
    DupfdQuery,
    /// The epoll trick on the caller's own fds.
    EpollTrick,
    /// `pidfd_getfd` brought the fds in, then the inner method decided.
    PidfdGetfd(LocalMethod),
}

impl Method {
    /// The name used in JSON output: `"kcmp"`, `"f_dupfd_query"`, `"epoll"`,
    /// `"pidfd_getfd+f_dupfd_query"` or `"pidfd_getfd+epoll"`.
    ///
    /// ```
    /// use kcmp::fallback::{LocalMethod, Method};
    /// assert_eq!(Method::PidfdGetfd(LocalMethod::EpollTrick).name(), "pidfd_getfd+epoll");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Method::Kcmp => "kcmp",
            Method::DupfdQuery => "f_dupfd_query",
            Method::EpollTrick => "epoll",
            Method::PidfdGetfd(LocalMethod::DupfdQuery) => "pidfd_getfd+f_dupfd_query",
            Method::PidfdGetfd(LocalMethod::EpollTrick) => "pidfd_getfd+epoll",
        }
    }

    fn local(m: LocalMethod) -> Method {
        match m {
            LocalMethod::DupfdQuery => Method::DupfdQuery,
            LocalMethod::EpollTrick => Method::EpollTrick,
        }
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Method {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// The answer of [`same_description`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct SameDescription {
    /// True when both fds refer to one open file description.
    pub same: bool,
    /// Which method decided.
    pub method: Method,
}

/// Why kcmp does not work here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cause {
    /// `ENOSYS` and no seccomp filter: the kernel lacks `CONFIG_KCMP`
    /// (`CONFIG_CHECKPOINT_RESTORE` before 5.12), or a sandbox without a
    /// seccomp filter (gVisor) does not implement it.
    NotInKernel,
    /// A seccomp filter is installed on this process (/proc/self/status
    /// `Seccomp: 2`) and kcmp failed even for this process against itself.
    SeccompFilter,
    /// `EPERM` on self without a seccomp filter: a sandbox or security
    /// module refuses it.
    Sandbox,
    /// Another errno, unexpected for the probe.
    Other,
}

impl Cause {
    /// `"not_in_kernel"`, `"seccomp_filter"`, `"sandbox"` or `"other"`.
    pub fn name(self) -> &'static str {
        match self {
            Cause::NotInKernel => "not_in_kernel",
            Cause::SeccompFilter => "seccomp_filter",
            Cause::Sandbox => "sandbox",
            Cause::Other => "other",
        }
    }

    /// The cause in words.
    pub fn describe(self, errno: Errno) -> String {
        let e = errno_name(errno);
        match self {
            Cause::NotInKernel => format!(
                "kcmp fails with {e}: the kernel lacks CONFIG_KCMP (CONFIG_CHECKPOINT_RESTORE \
                 before 5.12), or a sandbox such as gVisor does not implement it"
            ),
            Cause::SeccompFilter => format!(
                "kcmp fails with {e} even for this process against itself, and a seccomp filter \
                 is installed (/proc/self/status Seccomp: 2): the filter blocks kcmp (Docker's \
                 default profile allows it only with CAP_SYS_PTRACE)"
            ),
            Cause::Sandbox => format!(
                "kcmp fails with {e} even for this process against itself, without a seccomp \
                 filter: a sandbox or security module refuses it"
            ),
            Cause::Other => format!("kcmp fails with {e} for this process against itself"),
        }
    }
}

/// Whether kcmp(2) works for the calling process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// kcmp answered a self-vs-self probe.
    Available,
    /// kcmp failed on a self-vs-self probe.
    Unavailable {
        /// The probe's errno (`ENOSYS`, `EPERM`, …).
        errno: Errno,
        /// The likely cause.
        cause: Cause,
    },
}

impl Availability {
    /// True for [`Availability::Available`].
    pub fn is_available(self) -> bool {
        self == Availability::Available
    }
}

/// The calling process's seccomp mode from /proc/self/status (0 none,
/// 1 strict, 2 filter), or `None` when the field is missing.
pub fn seccomp_mode() -> Option<u32> {
    crate::proc_stat::seccomp_mode()
}

/// Probes kcmp now (`KCMP_VM`, this process against itself), uncached.
pub fn probe_kcmp() -> Availability {
    let me = Pid::this();
    match compare_process(ProcessResource::Vm, me, me) {
        Ok(_) => Availability::Available,
        Err(err) => {
            let errno = err.errno().unwrap_or(Errno::IO);
            let filtered = seccomp_mode() == Some(2);
            let cause = if errno == Errno::NOSYS {
                if filtered {
                    Cause::SeccompFilter
                } else {
                    Cause::NotInKernel
                }
            } else if errno == Errno::PERM {
                if filtered {
                    Cause::SeccompFilter
                } else {
                    Cause::Sandbox
                }
            } else {
                Cause::Other
            };
            Availability::Unavailable { errno, cause }
        }
    }
}

/// Whether kcmp works, probed once per process and cached.
///
/// ```
/// // On a kernel with kcmp and no filter:
/// # if kcmp::fallback::seccomp_mode() != Some(2) {
/// assert!(kcmp::fallback::kcmp_available().is_available());
/// # }
/// ```
pub fn kcmp_available() -> Availability {
    static CACHE: OnceLock<Availability> = OnceLock::new();
    *CACHE.get_or_init(probe_kcmp)
}

/// The reason to report for the process-level kinds when kcmp is
/// unavailable: they have no exact fallback, and are never guessed.
pub fn process_kinds_unavailable(availability: Availability) -> Option<String> {
    match availability {
        Availability::Available => None,
        Availability::Unavailable { errno, cause } => Some(format!(
            "{}; process-level kinds have no exact fallback",
            cause.describe(errno)
        )),
    }
}

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
fn same_own_numbers(a: i32, b: i32) -> Result<(bool, LocalMethod)> {
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
/// file description (the methods of the [module docs](self)).
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

/// Decides whether fd1 of pid1 and fd2 of pid2 are one open file
/// description: with kcmp when it works ([`kcmp_available`]), else with the
/// fallbacks, and says which method answered. This is what C
/// `kcmp_same_file()` does.
///
/// | method | exact | order | needs |
/// |---|---|---|---|
/// | kcmp(2) | yes | yes | ptrace *read* access to both processes |
/// | `F_DUPFD_QUERY` (own fds, Linux 6.10+) | yes | no | nothing |
/// | epoll trick (own fds) | yes | no | files that support poll |
/// | `pidfd_getfd` + the above (other processes, Linux 5.6+) | yes | no | ptrace *attach* access |
pub fn same_description(pid1: Pid, fd1: FdNum, pid2: Pid, fd2: FdNum) -> Result<SameDescription> {
    if kcmp_available().is_available() {
        let ord = compare_files(pid1, fd1, pid2, fd2)?;
        return Ok(SameDescription {
            same: ord.is_equal(),
            method: Method::Kcmp,
        });
    }
    same_description_without_kcmp(pid1, fd1, pid2, fd2)
}

/// The fallback-aware file comparator, for [`crate::grouping::OrderedGroups`]
/// or any other grouping: kcmp's ordering when kcmp works here
/// ([`kcmp_available`]); otherwise [`same_description_without_kcmp`], with
/// "not the same" answered as [`KcmpOrdering::Unordered`] so that the
/// grouping switches to comparing with every representative — exact, with
/// more comparisons. Without it, a grouping loop over [`compare_files`]
/// fails on every item where kcmp is blocked.
///
/// ```
/// use kcmp::fallback::compare_descriptions;
/// use kcmp::grouping::OrderedGroups;
/// use kcmp::{FdNum, Pid};
/// let f = std::fs::File::open("/dev/null").unwrap();
/// let (g, h) = (f.try_clone().unwrap(), std::fs::File::open("/dev/null").unwrap());
/// let me = Pid::this();
/// let mut groups = OrderedGroups::new();
/// let mut cmp = |a: FdNum, b: FdNum| compare_descriptions(me, a, me, b);
/// for fd in [&f, &g, &h] {
///     groups.insert(FdNum::of(fd), &mut cmp).unwrap();
/// }
/// assert_eq!(groups.len(), 2); // f and g are one description, h another
/// ```
pub fn compare_descriptions(pid1: Pid, fd1: FdNum, pid2: Pid, fd2: FdNum) -> Result<KcmpOrdering> {
    if kcmp_available().is_available() {
        return compare_files(pid1, fd1, pid2, fd2);
    }
    let answer = same_description_without_kcmp(pid1, fd1, pid2, fd2)?;
    Ok(if answer.same {
        KcmpOrdering::Equal
    } else {
        KcmpOrdering::Unordered(3)
    })
}

/// The result of [`group_by_equality`].
#[derive(Debug)]
pub struct EqualityGroups<T> {
    /// The groups, in order of their first member; members keep input order.
    pub groups: Vec<Vec<T>>,
    /// Items a comparison failed for, with the error (never guessed into a group).
    pub failed: Vec<(T, Error)>,
    /// How many times `same` was called.
    pub comparisons: u64,
}

/// Groups items exactly with an equality-only test (no order): each item is
/// compared with one representative of every group so far and joins the
/// first that is equal, or starts a new group. Exact for an equivalence
/// relation such as "one open file description"; costs up to n × g
/// comparisons for n items in g groups, counted in
/// [`EqualityGroups::comparisons`].
///
/// An item whose comparison fails is set aside in
/// [`EqualityGroups::failed`] with the error.
///
/// ```
/// use kcmp::fallback::group_by_equality;
/// let g = group_by_equality(vec![1, 11, 2, 21, 3], |a, b| Ok(a % 10 == b % 10));
/// assert_eq!(g.groups, vec![vec![1, 11, 21], vec![2], vec![3]]);
/// ```
pub fn group_by_equality<T>(
    items: Vec<T>,
    mut same: impl FnMut(&T, &T) -> Result<bool>,
) -> EqualityGroups<T> {
    let mut groups: Vec<Vec<T>> = Vec::new();
    let mut failed = Vec::new();
    let mut comparisons = 0u64;
    'items: for item in items {
        for group in groups.iter_mut() {
            comparisons += 1;
            match same(&group[0], &item) {
                Ok(true) => {
                    group.push(item);
                    continue 'items;
                }
                Ok(false) => {}
                Err(e) => {
                    failed.push((item, e));
                    continue 'items;
                }
            }
        }
        groups.push(vec![item]);
    }
    EqualityGroups {
        groups,
        failed,
        comparisons,
    }
}
