//! Whether kcmp(2) works for the calling process, probed on itself, and
//! why not ([`Cause`]).

use crate::{compare_process, errno_name, Pid, ProcessResource};
use rustix::io::Errno;
use std::sync::OnceLock;

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
