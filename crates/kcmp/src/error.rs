//! Errors that say why: the raw errno, its name, and what it means here.
#![forbid(unsafe_code)]

use crate::KcmpType;
use rustix::io::Errno;
use std::fmt;

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in this crate.
///
/// Every variant has an errno ([`Error::errno`], [`Error::raw_os_error`]),
/// and converting into [`std::io::Error`] keeps it, so `?` works in a
/// function returning [`std::io::Result`]:
///
/// ```
/// fn first_fd_is_stdin() -> std::io::Result<bool> {
///     let me = kcmp::Pid::this();
///     let fd = kcmp::FdNum::new(0)?;
///     Ok(kcmp::compare_files(me, fd, me, fd)?.is_equal())
/// }
/// assert!(first_fd_is_stdin().unwrap());
/// ```
///
/// ```
/// use kcmp::{Error, InvalidArgument, Pid};
/// let err = Pid::new(0).unwrap_err();
/// assert_eq!(err, Error::InvalidArgument(InvalidArgument::Pid(0)));
/// assert_eq!(err.errno_name(), Some("EINVAL"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An argument the kernel would reject or silently misread, caught
    /// before the call.
    #[error("invalid argument: {0}")]
    InvalidArgument(InvalidArgument),
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

/// What was wrong with an argument ([`Error::InvalidArgument`]).
///
/// ```
/// use kcmp::{FdNum, InvalidArgument, Error};
/// let err = FdNum::new(-1).unwrap_err();
/// assert_eq!(err, Error::InvalidArgument(InvalidArgument::Fd(-1)));
/// assert_eq!(err.errno_name(), Some("EBADF")); // as the kernel answers kcmp(…, -1, …)
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidArgument {
    /// A pid outside `1..=i32::MAX` (errno `EINVAL`).
    #[error("pid {0} is out of range (a pid is 1..={max})", max = i32::MAX)]
    Pid(i64),
    /// An fd number outside `0..=i32::MAX` (errno `EBADF`: no such fd can be
    /// open, which is what kcmp(2) answers for fd -1; numbers of 2^32 and
    /// more would be truncated by the kernel and silently compare as
    /// another fd).
    #[error("fd {0} is out of range (an fd is 0..={max})", max = i32::MAX)]
    Fd(i64),
    /// [`KcmpType::EpollTfd`] given to [`compare`](crate::compare()), which
    /// has no epoll slot (errno `EINVAL`).
    #[error("KCMP_EPOLL_TFD needs an epoll slot: use compare_epoll_target")]
    EpollTfdWithoutSlot,
    /// A request a caller (such as the `kcmp-map` engine) cannot serve as
    /// given — no process matches a selection, nothing could be inspected —
    /// with why (errno `EINVAL`).
    #[error("{0}")]
    Request(String),
}

impl InvalidArgument {
    /// The errno this argument error stands for.
    pub fn errno(&self) -> Errno {
        match self {
            InvalidArgument::Fd(_) => Errno::BADF,
            _ => Errno::INVAL,
        }
    }
}

impl From<String> for InvalidArgument {
    /// An [`InvalidArgument::Request`].
    fn from(why: String) -> Self {
        InvalidArgument::Request(why)
    }
}

impl From<&str> for InvalidArgument {
    /// An [`InvalidArgument::Request`].
    fn from(why: &str) -> Self {
        InvalidArgument::Request(why.to_string())
    }
}

impl Error {
    /// Builds an [`Error::Os`] from a description and an errno.
    pub fn os(what: impl Into<String>, errno: Errno) -> Self {
        Error::Os {
            what: what.into(),
            errno,
        }
    }

    /// Builds an [`Error::Os`] from an [`std::io::Error`] (`EIO` when it
    /// carries no errno).
    pub fn io(what: impl Into<String>, err: &std::io::Error) -> Self {
        Error::os(
            what,
            Errno::from_raw_os_error(err.raw_os_error().unwrap_or(libc::EIO)),
        )
    }

    /// The errno behind this error. Invalid pids map to `EINVAL`, invalid
    /// fd numbers to `EBADF` ([`InvalidArgument::errno`]) and vanished
    /// processes to `ESRCH`. Every error of this version has one; the
    /// `Option` leaves room for errors without an errno.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::InvalidArgument(a) => Some(a.errno()),
            Error::Kcmp(e) => Some(e.errno),
            Error::Vanished { .. } => Some(Errno::SRCH),
            Error::Os { errno, .. } => Some(*errno),
        }
    }

    /// The raw errno, as [`std::io::Error::raw_os_error`] gives it.
    ///
    /// ```
    /// let err = kcmp::Pid::new(-3).unwrap_err();
    /// assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    /// ```
    pub fn raw_os_error(&self) -> Option<i32> {
        self.errno().map(Errno::raw_os_error)
    }

    /// The errno's symbolic name, e.g. `"ESRCH"`.
    pub fn errno_name(&self) -> Option<&'static str> {
        self.errno().map(errno_name)
    }

    /// True when the error means the *process* is gone: `ESRCH` (from kcmp
    /// or another call), [`Error::Vanished`], or `ENOENT` from a /proc read
    /// (its /proc directory is gone). A closed *fd* (`EBADF`) is not "gone"
    /// in this sense: see [`is_bad_fd`](Self::is_bad_fd).
    ///
    /// ```
    /// use kcmp::{compare_files, FdNum, Pid};
    /// let me = Pid::this();
    /// let err = compare_files(me, FdNum::new(1_000_000)?, me, FdNum::new(0)?).unwrap_err();
    /// assert!(!err.is_gone() && err.is_bad_fd());
    /// # Ok::<(), kcmp::Error>(())
    /// ```
    pub fn is_gone(&self) -> bool {
        match self {
            Error::Vanished { .. } => true,
            Error::Kcmp(e) => e.errno == Errno::SRCH,
            Error::Os { errno, .. } => *errno == Errno::SRCH || *errno == Errno::NOENT,
            Error::InvalidArgument(_) => false,
        }
    }

    /// True when the error is `EBADF`: an fd that is not open (in the
    /// process named), or an fd number no fd can have.
    pub fn is_bad_fd(&self) -> bool {
        self.errno() == Some(Errno::BADF)
    }

    /// True when the error is a permission refusal (`EPERM` or `EACCES`).
    pub fn is_permission(&self) -> bool {
        matches!(self.errno(), Some(e) if e == Errno::PERM || e == Errno::ACCESS)
    }
}

impl From<Error> for std::io::Error {
    /// An [`std::io::Error`] with the same errno
    /// ([`raw_os_error`](std::io::Error::raw_os_error) keeps it; the kind
    /// follows from it). The message becomes the C library's text for the
    /// errno: log the [`Error`] itself first when its explanation matters.
    ///
    /// ```
    /// let err: std::io::Error = kcmp::FdNum::new(-1).unwrap_err().into();
    /// assert_eq!(err.raw_os_error(), Some(libc::EBADF));
    /// ```
    fn from(err: Error) -> Self {
        std::io::Error::from_raw_os_error(err.raw_os_error().unwrap_or(libc::EIO))
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

/// The symbolic name of an errno (`"EPERM"`), from a complete table of
/// Linux's errnos (built from the `libc` constants of the target, so the
/// numbers are right on every architecture). Aliases give their primary
/// name: `EWOULDBLOCK` is `"EAGAIN"`, `EDEADLOCK` `"EDEADLK"`, `ENOTSUP`
/// `"EOPNOTSUPP"`. A number that is no Linux errno gives `"EUNKNOWN"`.
///
/// ```
/// use kcmp::{errno_name, Errno};
/// assert_eq!(errno_name(Errno::SRCH), "ESRCH");
/// assert_eq!(errno_name(Errno::HWPOISON), "EHWPOISON");
/// assert_eq!(errno_name(Errno::from_raw_os_error(4095)), "EUNKNOWN");
/// ```
pub fn errno_name(errno: Errno) -> &'static str {
    let raw = errno.raw_os_error();
    ERRNO_NAMES
        .iter()
        .find(|&&(n, _)| n == raw)
        .map_or("EUNKNOWN", |&(_, name)| name)
}

/// Every Linux errno and its name, from the target's `libc` constants.
const ERRNO_NAMES: &[(i32, &str)] = &[
    (libc::EPERM, "EPERM"),
    (libc::ENOENT, "ENOENT"),
    (libc::ESRCH, "ESRCH"),
    (libc::EINTR, "EINTR"),
    (libc::EIO, "EIO"),
    (libc::ENXIO, "ENXIO"),
    (libc::E2BIG, "E2BIG"),
    (libc::ENOEXEC, "ENOEXEC"),
    (libc::EBADF, "EBADF"),
    (libc::ECHILD, "ECHILD"),
    (libc::EAGAIN, "EAGAIN"),
    (libc::ENOMEM, "ENOMEM"),
    (libc::EACCES, "EACCES"),
    (libc::EFAULT, "EFAULT"),
    (libc::ENOTBLK, "ENOTBLK"),
    (libc::EBUSY, "EBUSY"),
    (libc::EEXIST, "EEXIST"),
    (libc::EXDEV, "EXDEV"),
    (libc::ENODEV, "ENODEV"),
    (libc::ENOTDIR, "ENOTDIR"),
    (libc::EISDIR, "EISDIR"),
    (libc::EINVAL, "EINVAL"),
    (libc::ENFILE, "ENFILE"),
    (libc::EMFILE, "EMFILE"),
    (libc::ENOTTY, "ENOTTY"),
    (libc::ETXTBSY, "ETXTBSY"),
    (libc::EFBIG, "EFBIG"),
    (libc::ENOSPC, "ENOSPC"),
    (libc::ESPIPE, "ESPIPE"),
    (libc::EROFS, "EROFS"),
    (libc::EMLINK, "EMLINK"),
    (libc::EPIPE, "EPIPE"),
    (libc::EDOM, "EDOM"),
    (libc::ERANGE, "ERANGE"),
    (libc::EDEADLK, "EDEADLK"),
    (libc::ENAMETOOLONG, "ENAMETOOLONG"),
    (libc::ENOLCK, "ENOLCK"),
    (libc::ENOSYS, "ENOSYS"),
    (libc::ENOTEMPTY, "ENOTEMPTY"),
    (libc::ELOOP, "ELOOP"),
    (libc::ENOMSG, "ENOMSG"),
    (libc::EIDRM, "EIDRM"),
    (libc::ECHRNG, "ECHRNG"),
    (libc::EL2NSYNC, "EL2NSYNC"),
    (libc::EL3HLT, "EL3HLT"),
    (libc::EL3RST, "EL3RST"),
    (libc::ELNRNG, "ELNRNG"),
    (libc::EUNATCH, "EUNATCH"),
    (libc::ENOCSI, "ENOCSI"),
    (libc::EL2HLT, "EL2HLT"),
    (libc::EBADE, "EBADE"),
    (libc::EBADR, "EBADR"),
    (libc::EXFULL, "EXFULL"),
    (libc::ENOANO, "ENOANO"),
    (libc::EBADRQC, "EBADRQC"),
    (libc::EBADSLT, "EBADSLT"),
    (libc::EBFONT, "EBFONT"),
    (libc::ENOSTR, "ENOSTR"),
    (libc::ENODATA, "ENODATA"),
    (libc::ETIME, "ETIME"),
    (libc::ENOSR, "ENOSR"),
    (libc::ENONET, "ENONET"),
    (libc::ENOPKG, "ENOPKG"),
    (libc::EREMOTE, "EREMOTE"),
    (libc::ENOLINK, "ENOLINK"),
    (libc::EADV, "EADV"),
    (libc::ESRMNT, "ESRMNT"),
    (libc::ECOMM, "ECOMM"),
    (libc::EPROTO, "EPROTO"),
    (libc::EMULTIHOP, "EMULTIHOP"),
    (libc::EDOTDOT, "EDOTDOT"),
    (libc::EBADMSG, "EBADMSG"),
    (libc::EOVERFLOW, "EOVERFLOW"),
    (libc::ENOTUNIQ, "ENOTUNIQ"),
    (libc::EBADFD, "EBADFD"),
    (libc::EREMCHG, "EREMCHG"),
    (libc::ELIBACC, "ELIBACC"),
    (libc::ELIBBAD, "ELIBBAD"),
    (libc::ELIBSCN, "ELIBSCN"),
    (libc::ELIBMAX, "ELIBMAX"),
    (libc::ELIBEXEC, "ELIBEXEC"),
    (libc::EILSEQ, "EILSEQ"),
    (libc::ERESTART, "ERESTART"),
    (libc::ESTRPIPE, "ESTRPIPE"),
    (libc::EUSERS, "EUSERS"),
    (libc::ENOTSOCK, "ENOTSOCK"),
    (libc::EDESTADDRREQ, "EDESTADDRREQ"),
    (libc::EMSGSIZE, "EMSGSIZE"),
    (libc::EPROTOTYPE, "EPROTOTYPE"),
    (libc::ENOPROTOOPT, "ENOPROTOOPT"),
    (libc::EPROTONOSUPPORT, "EPROTONOSUPPORT"),
    (libc::ESOCKTNOSUPPORT, "ESOCKTNOSUPPORT"),
    (libc::EOPNOTSUPP, "EOPNOTSUPP"),
    (libc::EPFNOSUPPORT, "EPFNOSUPPORT"),
    (libc::EAFNOSUPPORT, "EAFNOSUPPORT"),
    (libc::EADDRINUSE, "EADDRINUSE"),
    (libc::EADDRNOTAVAIL, "EADDRNOTAVAIL"),
    (libc::ENETDOWN, "ENETDOWN"),
    (libc::ENETUNREACH, "ENETUNREACH"),
    (libc::ENETRESET, "ENETRESET"),
    (libc::ECONNABORTED, "ECONNABORTED"),
    (libc::ECONNRESET, "ECONNRESET"),
    (libc::ENOBUFS, "ENOBUFS"),
    (libc::EISCONN, "EISCONN"),
    (libc::ENOTCONN, "ENOTCONN"),
    (libc::ESHUTDOWN, "ESHUTDOWN"),
    (libc::ETOOMANYREFS, "ETOOMANYREFS"),
    (libc::ETIMEDOUT, "ETIMEDOUT"),
    (libc::ECONNREFUSED, "ECONNREFUSED"),
    (libc::EHOSTDOWN, "EHOSTDOWN"),
    (libc::EHOSTUNREACH, "EHOSTUNREACH"),
    (libc::EALREADY, "EALREADY"),
    (libc::EINPROGRESS, "EINPROGRESS"),
    (libc::ESTALE, "ESTALE"),
    (libc::EUCLEAN, "EUCLEAN"),
    (libc::ENOTNAM, "ENOTNAM"),
    (libc::ENAVAIL, "ENAVAIL"),
    (libc::EISNAM, "EISNAM"),
    (libc::EREMOTEIO, "EREMOTEIO"),
    (libc::EDQUOT, "EDQUOT"),
    (libc::ENOMEDIUM, "ENOMEDIUM"),
    (libc::EMEDIUMTYPE, "EMEDIUMTYPE"),
    (libc::ECANCELED, "ECANCELED"),
    (libc::ENOKEY, "ENOKEY"),
    (libc::EKEYEXPIRED, "EKEYEXPIRED"),
    (libc::EKEYREVOKED, "EKEYREVOKED"),
    (libc::EKEYREJECTED, "EKEYREJECTED"),
    (libc::EOWNERDEAD, "EOWNERDEAD"),
    (libc::ENOTRECOVERABLE, "ENOTRECOVERABLE"),
    (libc::ERFKILL, "ERFKILL"),
    (libc::EHWPOISON, "EHWPOISON"),
];

/// The C library's description of an errno (`strerror`).
pub(crate) fn errno_text(errno: Errno) -> String {
    let s = std::io::Error::from_raw_os_error(errno.raw_os_error()).to_string();
    // std appends " (os error N)"; keep only the text.
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}
