//! One pid namespace: /proc must be the caller's.
//!
//! kcmp(2), pidfd_open(2) and ptrace(2) take pids of the caller's pid
//! namespace, while the pids kcmp reads come from /proc, which shows the
//! pid namespace it was mounted in. After `unshare -p -f` without
//! `--mount-proc`, /proc is still the parent namespace's: its pids name
//! other processes (or none) in the caller's namespace and every answer
//! would be meaningless. [`check`] detects it: `/proc/self` names the
//! caller by its pid in /proc's namespace, which then differs from
//! `getpid()`.

use kcmp::{Error, Result};
use rustix::io::Errno;

/// Ok when /proc belongs to the caller's pid namespace; otherwise an
/// `EINVAL` error that says so and how to fix it.
///
/// ```
/// kcmp_map::pidns::check().unwrap();
/// ```
pub fn check() -> Result<()> {
    let me = std::process::id();
    let seen = std::fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str()?.parse::<u32>().ok());
    match seen {
        Some(p) if p == me => Ok(()),
        Some(p) => Err(Error::os(
            format!(
                "/proc belongs to another pid namespace than this process (/proc/self is {p}, \
                 getpid() is {me}; mount this namespace's /proc: unshare --mount-proc, or \
                 mount -t proc proc /proc)"
            ),
            Errno::INVAL,
        )),
        None => Err(Error::os(
            format!(
                "/proc does not show this process (no /proc/self; getpid() is {me}; mount this \
                 pid namespace's /proc: unshare --mount-proc, or mount -t proc proc /proc)"
            ),
            Errno::NOENT,
        )),
    }
}
