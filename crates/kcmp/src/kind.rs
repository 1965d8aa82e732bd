//! The kinds of kernel object kcmp(2) compares.
#![forbid(unsafe_code)]

use std::fmt;
use std::str::FromStr;

/// A kcmp(2) comparison type, with the kernel's numeric value.
///
/// ```
/// use kcmp::KcmpType;
/// assert_eq!(KcmpType::EpollTfd as i32, 7);
/// assert_eq!("sighand".parse::<KcmpType>().unwrap(), KcmpType::Sighand);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(i32)]
pub enum KcmpType {
    /// `KCMP_FILE`: an open file description (idx1, idx2 are fds).
    File = 0,
    /// `KCMP_VM`: the address space (`mm_struct`).
    Vm = 1,
    /// `KCMP_FILES`: the file descriptor table.
    Files = 2,
    /// `KCMP_FS`: cwd, root and umask (`fs_struct`).
    Fs = 3,
    /// `KCMP_SIGHAND`: the signal handler table.
    Sighand = 4,
    /// `KCMP_IO`: the I/O context (allocated lazily; absent ones compare equal).
    Io = 5,
    /// `KCMP_SYSVSEM`: the SysV semaphore undo list (absent ones compare equal).
    Sysvsem = 6,
    /// `KCMP_EPOLL_TFD`: a file registered in an epoll instance (Linux 4.13+).
    EpollTfd = 7,
}

impl KcmpType {
    /// All eight types in kernel order.
    pub const ALL: [KcmpType; 8] = [
        KcmpType::File,
        KcmpType::Vm,
        KcmpType::Files,
        KcmpType::Fs,
        KcmpType::Sighand,
        KcmpType::Io,
        KcmpType::Sysvsem,
        KcmpType::EpollTfd,
    ];

    /// The lower-case name used by the CLI and JSON (`"file"`, `"epoll-tfd"`, …).
    ///
    /// ```
    /// assert_eq!(kcmp::KcmpType::EpollTfd.name(), "epoll-tfd");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            KcmpType::File => "file",
            KcmpType::Vm => "vm",
            KcmpType::Files => "files",
            KcmpType::Fs => "fs",
            KcmpType::Sighand => "sighand",
            KcmpType::Io => "io",
            KcmpType::Sysvsem => "sysvsem",
            KcmpType::EpollTfd => "epoll-tfd",
        }
    }

    /// The kernel constant's name (`"KCMP_FILE"`, …).
    ///
    /// ```
    /// assert_eq!(kcmp::KcmpType::Vm.kernel_name(), "KCMP_VM");
    /// ```
    pub fn kernel_name(self) -> &'static str {
        match self {
            KcmpType::File => "KCMP_FILE",
            KcmpType::Vm => "KCMP_VM",
            KcmpType::Files => "KCMP_FILES",
            KcmpType::Fs => "KCMP_FS",
            KcmpType::Sighand => "KCMP_SIGHAND",
            KcmpType::Io => "KCMP_IO",
            KcmpType::Sysvsem => "KCMP_SYSVSEM",
            KcmpType::EpollTfd => "KCMP_EPOLL_TFD",
        }
    }

    /// The process-level resource this type compares, if it is one.
    ///
    /// ```
    /// use kcmp::{KcmpType, ProcessResource};
    /// assert_eq!(KcmpType::Io.process_resource(), Some(ProcessResource::Io));
    /// assert_eq!(KcmpType::File.process_resource(), None);
    /// ```
    pub fn process_resource(self) -> Option<ProcessResource> {
        ProcessResource::ALL
            .into_iter()
            .find(|r| r.kcmp_type() == self)
    }
}

impl fmt::Display for KcmpType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown name given to [`KcmpType::from_str`] or [`ProcessResource::from_str`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown kcmp type {0:?} (expected file, vm, files, fs, sighand, io, sysvsem or epoll-tfd)"
)]
pub struct UnknownKcmpType(pub String);

impl FromStr for KcmpType {
    type Err = UnknownKcmpType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        let lower = lower
            .strip_prefix("kcmp_")
            .unwrap_or(&lower)
            .replace('_', "-");
        KcmpType::ALL
            .into_iter()
            .find(|t| t.name() == lower)
            .ok_or_else(|| UnknownKcmpType(s.to_string()))
    }
}

/// The six per-process resources (the types that take no index).
///
/// ```
/// use kcmp::ProcessResource;
/// let names: Vec<_> = ProcessResource::ALL.iter().map(|r| r.name()).collect();
/// assert_eq!(names, ["vm", "files", "fs", "sighand", "io", "sysvsem"]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProcessResource {
    /// The address space.
    Vm,
    /// The fd table.
    Files,
    /// cwd, root and umask.
    Fs,
    /// Signal handlers.
    Sighand,
    /// The I/O context.
    Io,
    /// The SysV semaphore undo list.
    Sysvsem,
}

impl ProcessResource {
    /// All six, in kernel order.
    pub const ALL: [ProcessResource; 6] = [
        ProcessResource::Vm,
        ProcessResource::Files,
        ProcessResource::Fs,
        ProcessResource::Sighand,
        ProcessResource::Io,
        ProcessResource::Sysvsem,
    ];

    /// The matching [`KcmpType`].
    ///
    /// ```
    /// assert_eq!(kcmp::ProcessResource::Fs.kcmp_type(), kcmp::KcmpType::Fs);
    /// ```
    pub fn kcmp_type(self) -> KcmpType {
        match self {
            ProcessResource::Vm => KcmpType::Vm,
            ProcessResource::Files => KcmpType::Files,
            ProcessResource::Fs => KcmpType::Fs,
            ProcessResource::Sighand => KcmpType::Sighand,
            ProcessResource::Io => KcmpType::Io,
            ProcessResource::Sysvsem => KcmpType::Sysvsem,
        }
    }

    /// The lower-case name (`"vm"`, …), also the JSON key.
    ///
    /// ```
    /// assert_eq!(kcmp::ProcessResource::Sysvsem.name(), "sysvsem");
    /// ```
    pub fn name(self) -> &'static str {
        self.kcmp_type().name()
    }

    /// Whether a live, ordinary task may lack this object, so that two
    /// such tasks compare "equal" (IO and SYSVSEM are allocated lazily).
    /// Exited tasks (zombies) also lack VM, FILES and FS, and kernel
    /// threads VM; `kcmp_map::absent` decides absence exactly for any task.
    ///
    /// ```
    /// assert!(kcmp::ProcessResource::Io.may_be_absent());
    /// assert!(!kcmp::ProcessResource::Sighand.may_be_absent());
    /// ```
    pub fn may_be_absent(self) -> bool {
        matches!(self, ProcessResource::Io | ProcessResource::Sysvsem)
    }
}

impl fmt::Display for ProcessResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ProcessResource {
    type Err = UnknownKcmpType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<KcmpType>()
            .ok()
            .and_then(KcmpType::process_resource)
            .ok_or_else(|| UnknownKcmpType(s.to_string()))
    }
}
