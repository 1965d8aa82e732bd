//! Errors that say why: the raw errno, its name, and what it means here.

use crate::kind::KcmpType;
use rustix::io::Errno;
use std::fmt;

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in this crate.
///
/// ```
/// use kcmp::{Error, Pid};
/// let err = Pid::new(0).unwrap_err();
/// assert!(matches!(err, Error::InvalidArgument(_)));
/// assert_eq!(err.errno_name(), Some("EINVAL"));
/// ```
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// An argument the kernel would reject or silently misread (a pid <= 0,
    /// an fd outside `0..=i32::MAX`), caught before the call.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The kcmp(2) call itself failed.
    #[error(transparent)]
    Kcmp(#[from] KcmpError),
    /// A process exited during the inspection, or its pid now names another
    /// process; answers about it were discarded.
    #[error("process {pid} vanished during the inspection (it exited, or its pid was reused)")]
    Vanished {
        /// The pid that vanished.
        pid: i32,
    },
    /// Another system call or /proc read failed.
    #[error("{what}: {} ({})", errno_name(*errno), errno_text(*errno))]
    Os {
        /// What was being done.
        what: String,
        /// The errno.
        errno: Errno,
    },
}

impl Error {
    /// Builds an [`Error::Os`] from a description and an errno.
    pub fn os(what: impl Into<String>, errno: Errno) -> Self {
        Error::Os {
            what: what.into(),
            errno,
        }
    }

    /// Builds an [`Error::Os`] from an [`std::io::Error`].
    pub fn io(what: impl Into<String>, err: &std::io::Error) -> Self {
        Error::os(
            what,
            Errno::from_raw_os_error(err.raw_os_error().unwrap_or(libc::EIO)),
        )
    }

    /// The errno behind this error, when there is one. Invalid arguments map
    /// to `EINVAL` and vanished processes to `ESRCH`.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::InvalidArgument(_) => Some(Errno::INVAL),
            Error::Kcmp(e) => Some(e.errno),
            Error::Vanished { .. } => Some(Errno::SRCH),
            Error::Os { errno, .. } => Some(*errno),
        }
    }

    /// The errno's symbolic name, e.g. `"ESRCH"`.
    pub fn errno_name(&self) -> Option<&'static str> {
        self.errno().map(errno_name)
    }

    /// True when the error means the process (or fd) is gone: `ESRCH`,
    /// [`Error::Vanished`], or a /proc read that found nothing (`ENOENT`).
    pub fn is_gone(&self) -> bool {
        match self {
            Error::Vanished { .. } => true,
            Error::Kcmp(e) => e.errno == Errno::SRCH,
            Error::Os { errno, .. } => *errno == Errno::SRCH || *errno == Errno::NOENT,
            Error::InvalidArgument(_) => false,
        }
    }

    /// True when the error is a permission refusal (`EPERM` or `EACCES`).
    pub fn is_permission(&self) -> bool {
        matches!(self.errno(), Some(e) if e == Errno::PERM || e == Errno::ACCESS)
    }
}

/// The arguments of one kcmp(2) call, kept for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KcmpCall {
    /// First pid.
    pub pid1: i32,
    /// Second pid.
    pub pid2: i32,
    /// Comparison type.
    pub ty: KcmpType,
    /// First index (fd for FILE and EPOLL_TFD).
    pub idx1: u64,
    /// Second index (fd for FILE).
    pub idx2: u64,
    /// For EPOLL_TFD: (efd, tfd, toff).
    pub epoll_slot: Option<(u32, u32, u32)>,
}

impl fmt::Display for KcmpCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.ty, self.epoll_slot) {
            (KcmpType::File, _) => write!(
                f,
                "kcmp({}, {}, KCMP_FILE, {}, {})",
                self.pid1, self.pid2, self.idx1, self.idx2
            ),
            (KcmpType::EpollTfd, Some((efd, tfd, toff))) => write!(
                f,
                "kcmp({}, {}, KCMP_EPOLL_TFD, {}, {{efd {}, tfd {}, toff {}}})",
                self.pid1, self.pid2, self.idx1, efd, tfd, toff
            ),
            (ty, _) => write!(
                f,
                "kcmp({}, {}, {})",
                self.pid1,
                self.pid2,
                ty.kernel_name()
            ),
        }
    }
}

/// A failed kcmp(2) call: the call, the errno and what it means.
///
/// ```
/// use kcmp::{compare_files, FdNum, Pid};
/// // An fd number that is not open in this process.
/// let me = Pid::this();
/// let err = compare_files(me, FdNum::new(1_000_000).unwrap(), me, FdNum::new(0).unwrap()).unwrap_err();
/// assert_eq!(err.errno_name(), Some("EBADF"));
/// assert!(err.to_string().contains("EBADF"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KcmpError {
    /// The call that failed.
    pub call: KcmpCall,
    /// The raw errno.
    pub errno: Errno,
}

impl KcmpError {
    /// What this errno means for this call, in words.
    pub fn explanation(&self) -> String {
        let c = &self.call;
        let (p1, p2) = (c.pid1, c.pid2);
        let me = std::process::id() as i32;
        let e = self.errno;
        if e == Errno::SRCH {
            if p1 == p2 {
                format!("no process or thread {p1} in this pid namespace (it may have exited)")
            } else {
                format!(
                    "no process or thread {p1} or {p2} in this pid namespace (one may have exited)"
                )
            }
        } else if e == Errno::PERM {
            if p1 == me && p2 == me {
                "kcmp was refused even for this process against itself: a seccomp filter or \
                 sandbox blocks it (Docker's default profile allows kcmp only with CAP_SYS_PTRACE; \
                 gVisor does not implement it)"
                    .to_string()
            } else {
                format!(
                    "permission denied: ptrace access (PTRACE_MODE_READ_REALCREDS) to {p1} or {p2} \
                     was refused (another user's process, Yama ptrace_scope, a non-dumpable \
                     process, or a seccomp filter)"
                )
            }
        } else if e == Errno::BADF {
            // Say which fd, when /proc can tell (it may be racy; then say both).
            // lstat of the link itself: following it would stat the file,
            // which can wait forever on a hung FUSE or NFS server.
            let open = |pid: i32, fd: u64| {
                std::fs::symlink_metadata(format!("/proc/{pid}/fd/{fd}")).is_ok()
            };
            let (second_fd, second_what) = match (c.ty, c.epoll_slot) {
                (KcmpType::EpollTfd, Some((efd, _, _))) => (efd as u64, "epoll fd"),
                _ => (c.idx2, "fd"),
            };
            match (open(p1, c.idx1), open(p2, second_fd)) {
                (false, true) => format!("fd {} is not open in process {p1}", c.idx1),
                (true, false) => format!("{second_what} {second_fd} is not open in process {p2}"),
                (false, false) if (p1, c.idx1) == (p2, second_fd) => {
                    format!("fd {} is not open in process {p1}", c.idx1)
                }
                (false, false) => format!(
                    "fd {} is not open in process {p1}, and {second_what} {second_fd} is not open in process {p2}",
                    c.idx1
                ),
                (true, true) => format!(
                    "fd {} is not open in process {p1}, or {second_what} {second_fd} is not open in process {p2}",
                    c.idx1
                ),
            }
        } else if e == Errno::INVAL {
            match (c.ty, c.epoll_slot) {
                (KcmpType::EpollTfd, Some((efd, _, _))) => format!(
                    "fd {efd} of process {p2} is not an epoll instance (or this kernel, before \
                     4.13, has no KCMP_EPOLL_TFD)"
                ),
                _ => format!(
                    "this kernel does not know comparison type {}",
                    c.ty.kernel_name()
                ),
            }
        } else if e == Errno::NOENT {
            match c.epoll_slot {
                Some((efd, tfd, toff)) => format!(
                    "epoll fd {efd} of process {p2} has no registration of target fd {tfd} at \
                     offset {toff}"
                ),
                None => "no such entry".to_string(),
            }
        } else if e == Errno::OPNOTSUPP {
            format!(
                "the kernel was built without support for {} (CONFIG_SYSVIPC or CONFIG_EPOLL)",
                c.ty.kernel_name()
            )
        } else if e == Errno::FAULT {
            "the kernel could not read the kcmp_epoll_slot argument".to_string()
        } else if e == Errno::NOSYS {
            "kcmp is not available: the kernel lacks CONFIG_KCMP (CONFIG_CHECKPOINT_RESTORE \
             before 5.12), or a sandbox hides it"
                .to_string()
        } else if e == Errno::INTR {
            "interrupted by a fatal signal while waiting for a task's exec lock".to_string()
        } else {
            errno_text(e)
        }
    }
}

impl fmt::Display for KcmpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: {}",
            self.call,
            errno_name(self.errno),
            self.explanation()
        )
    }
}

impl std::error::Error for KcmpError {}

/// The symbolic name of an errno (`"EPERM"`), or `"E?"` for one not listed.
///
/// ```
/// assert_eq!(kcmp::errno_name(rustix::io::Errno::SRCH), "ESRCH");
/// ```
pub fn errno_name(errno: Errno) -> &'static str {
    const NAMES: &[(i32, &str)] = &[
        (libc::EPERM, "EPERM"),
        (libc::ENOENT, "ENOENT"),
        (libc::ESRCH, "ESRCH"),
        (libc::EINTR, "EINTR"),
        (libc::EIO, "EIO"),
        (libc::ENXIO, "ENXIO"),
        (libc::E2BIG, "E2BIG"),
        (libc::EBADF, "EBADF"),
        (libc::ECHILD, "ECHILD"),
        (libc::EAGAIN, "EAGAIN"),
        (libc::ENOMEM, "ENOMEM"),
        (libc::EACCES, "EACCES"),
        (libc::EFAULT, "EFAULT"),
        (libc::EBUSY, "EBUSY"),
        (libc::EEXIST, "EEXIST"),
        (libc::ENOTDIR, "ENOTDIR"),
        (libc::EISDIR, "EISDIR"),
        (libc::EINVAL, "EINVAL"),
        (libc::EMFILE, "EMFILE"),
        (libc::ENFILE, "ENFILE"),
        (libc::ENOSPC, "ENOSPC"),
        (libc::ERANGE, "ERANGE"),
        (libc::ENAMETOOLONG, "ENAMETOOLONG"),
        (libc::ENOSYS, "ENOSYS"),
        (libc::ELOOP, "ELOOP"),
        (libc::EOPNOTSUPP, "EOPNOTSUPP"),
        (libc::ETIMEDOUT, "ETIMEDOUT"),
    ];
    let raw = errno.raw_os_error();
    NAMES
        .iter()
        .find(|(n, _)| *n == raw)
        .map(|(_, s)| *s)
        .unwrap_or("E?")
}

/// The C library's description of an errno (`strerror`).
pub(crate) fn errno_text(errno: Errno) -> String {
    let s = std::io::Error::from_raw_os_error(errno.raw_os_error()).to_string();
    // std appends " (os error N)"; keep only the text.
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}
