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

mod copy;
mod equality;
mod local;
mod probe;

pub use copy::{copies_left_open, same_description_without_kcmp, LOCAL_FILESYSTEMS};
pub use equality::{group_by_equality, EqualityGroups};
pub use local::{dupfd_query, epoll_same, same_own_description, same_own_fds};
pub use probe::{
    kcmp_available, probe_kcmp, process_kinds_unavailable, seccomp_mode, Availability, Cause,
};

use crate::{compare_files, FdNum, KcmpOrdering, Pid, Result};

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
