//! The kernel features kcmp uses, and which of them a kernel release has.

use serde::Serialize;

/// The oldest kernel kcmp gives exact answers on: kcmp(2) appeared in
/// Linux 3.5 (built with `CONFIG_CHECKPOINT_RESTORE`, since 5.12 also
/// `CONFIG_KCMP`). Rust's std runs on 3.2; below 3.5 only the epoll trick
/// answers, within one process.
pub const MIN_KERNEL: &str = "3.5";

/// A kernel feature kcmp uses: (name, the Linux version that added it, what
/// degrades without it).
pub const KERNEL_FEATURES: [(&str, &str, &str); 8] = [
    (
        "kcmp",
        "3.5",
        "no exact comparisons with order; file comparisons fall back to \
         equality-only methods, the process-level kinds are unavailable",
    ),
    (
        "KCMP_EPOLL_TFD",
        "4.13",
        "epoll-targets cannot resolve registrations to descriptions",
    ),
    (
        "pidfd",
        "5.3",
        "processes are pinned by start time only (pid reuse is still \
         detected, but no pidfd holds the process)",
    ),
    (
        "pidfd_getfd",
        "5.6",
        "without kcmp, files of other processes cannot be compared",
    ),
    (
        "fdinfo ino",
        "5.14",
        "/proc/PID/fdinfo lacks ino: (FdInfo::ino reads 0; kcmp does not \
         rely on it)",
    ),
    (
        "PIDFD_THREAD",
        "6.9",
        "threads (--threads) are pinned by start time only",
    ),
    (
        "F_DUPFD_QUERY",
        "6.10",
        "without kcmp, same-process comparisons use the epoll trick, which \
         cannot compare regular files or O_PATH fds",
    ),
    (
        "PIDFD_GET_INFO",
        "6.13",
        "--tree scans read every process's /proc/PID/stat to find the trees \
         (about twice the cost of knowing each parent through its pidfd)",
    ),
];

/// One of [`KERNEL_FEATURES`] on this kernel.
#[derive(Debug, Clone, Serialize)]
pub struct KernelFeature {
    /// E.g. `"pidfd"`.
    pub name: &'static str,
    /// The Linux version that added it, e.g. `"5.3"`.
    pub since: &'static str,
    /// Whether this kernel's release is at least `since` (`None` when the
    /// release does not parse). A distribution may backport or disable a
    /// feature: the probes tell what actually works.
    pub present: Option<bool>,
    /// What degrades without it.
    pub without: &'static str,
}

/// `(major, minor)` of a kernel release such as `"6.18.4-arch1"`.
///
/// ```
/// assert_eq!(kcmp_map::doctor::release_version("6.18.44-fc-v669"), Some((6, 18)));
/// assert_eq!(kcmp_map::doctor::release_version("5.3"), Some((5, 3)));
/// assert_eq!(kcmp_map::doctor::release_version("junk"), None);
/// ```
pub fn release_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor_text: String = parts
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some((major, minor_text.parse().ok()?))
}

/// [`KERNEL_FEATURES`] on the kernel `release`.
///
/// ```
/// let f = kcmp_map::doctor::kernel_features("5.10.0-35-amd64");
/// let present = |n: &str| f.iter().find(|x| x.name == n).unwrap().present;
/// assert_eq!(present("pidfd_getfd"), Some(true));
/// assert_eq!(present("fdinfo ino"), Some(false));
/// assert_eq!(present("F_DUPFD_QUERY"), Some(false));
/// ```
pub fn kernel_features(release: &str) -> Vec<KernelFeature> {
    let have = release_version(release);
    KERNEL_FEATURES
        .iter()
        .map(|&(name, since, without)| KernelFeature {
            name,
            since,
            present: have.zip(release_version(since)).map(|(h, s)| h >= s),
            without,
        })
        .collect()
}
