//! The two /proc facts the binding needs: a task's start time (to pin it
//! against pid reuse) and this process's seccomp mode (to explain EPERM).
//! The engine (`kcmp-map`) has the full /proc parser.
#![forbid(unsafe_code)]

use crate::Pid;
use crate::{Error, Result};

/// Reads a /proc text file; invalid UTF-8 (a comm is any bytes) is
/// replaced, never an error.
fn read(path: &str) -> Result<String> {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .map_err(|e| {
            Error::os(
                format!("read {path}"),
                rustix::io::Errno::from_io_error(&e).unwrap_or(rustix::io::Errno::IO),
            )
        })
}

/// Field 22 of /proc/PID/stat: start time in clock ticks after boot.
pub(crate) fn start_time(pid: Pid) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let text = read(&path)?;
    // comm may hold spaces and parentheses: fields start after the last ')'.
    text.rfind(')')
        .and_then(|close| text[close + 1..].split_ascii_whitespace().nth(19))
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| Error::os(format!("parse {path}"), rustix::io::Errno::INVAL))
}

/// The `Seccomp:` field of /proc/self/status (0 none, 1 strict, 2 filter).
pub(crate) fn seccomp_mode() -> Option<u32> {
    let text = read("/proc/self/status").ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k == "Seccomp").then(|| v.trim().parse().ok())?
    })
}
