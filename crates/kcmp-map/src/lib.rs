//! # kcmp-map — the exact sharing map of Linux processes
//!
//! Built on the [`kcmp`] binding: which fds of which processes are one open
//! file description, which processes share an address space, an fd table,
//! fs info, signal handlers, an I/O context or a SysV undo list, and which
//! files are registered in which epoll instances.
//!
//! ```no_run
//! use kcmp_map::{scan, ScanOptions};
//! let map = scan(&ScanOptions::default())?;
//! for d in map.open_files.iter().filter(|d| d.members.len() > 1) {
//!     println!("{}: {} holders", d.target, d.members.len());
//! }
//! # Ok::<(), kcmp::Error>(())
//! ```
#![warn(missing_docs)]

pub mod absent;
pub mod audit;
pub mod doctor;
pub mod epoll;
pub mod freeze;
pub mod holders;
mod hostfs;
pub mod model;
pub mod mounts;
mod parallel;
pub mod pidns;
mod pipeline;
pub mod procfs;
pub mod scan;
pub mod sentinel;
pub mod sockdiag;
mod sys;
#[cfg(test)]
mod test_alone;

pub use scan::{scan, FdRef, OpenFileDescription, ScanOptions, SharingMap};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;

/// Ends this process with exit status `code`, like
/// [`std::process::exit`], but never waiting on a FUSE or network server.
///
/// A scan takes its own copies (`pidfd_getfd`) of the descriptions it
/// compares, only of files whose close cannot wait on a server. When a
/// process switched an fd onto such a file (a FUSE file whose server hangs)
/// between the check and the copy, the copy is left open: closing it, as
/// the kernel does at exit, would wait for the server, maybe forever. If
/// there is any (or a copy's close is still waiting, on a lingering
/// socket say), this starts a keeper child (named `kcmp-keeper`) that
/// shares this process's fd table, so that this exit closes nothing; once
/// this process is gone, the keeper closes those copies, and only it waits.
/// Programs that scan hosts with FUSE mounts should exit through this (the
/// `kcmp` command does).
///
/// ```no_run
/// let map = kcmp_map::scan(&kcmp_map::ScanOptions::default());
/// kcmp_map::exit(if map.is_ok() { 0 } else { 2 });
/// ```
pub fn exit(code: i32) -> ! {
    // Copies still queued for the closer are in the fd table too: give
    // them a moment, then count what is left.
    pipeline::closer::settle(std::time::Duration::from_millis(100));
    let mut left_open = pipeline::closer::left_open();
    // And the copies the fallbacks (no kcmp(2)) left open.
    left_open.extend(kcmp::fallback::copies_left_open());
    left_open.sort_unstable();
    // A close still waiting (a lingering socket) would make the exit wait
    // on the copies queued behind it: the keeper closes those too.
    if !left_open.is_empty() || pipeline::closer::pending() > 0 {
        let _ = sys::keeper::spawn(&left_open);
    }
    std::process::exit(code)
}

/// Raises this process's soft `RLIMIT_NOFILE` to its hard limit and returns
/// the new soft limit. For programs (the `kcmp` CLI calls it at start): a
/// library must not change process-wide limits behind its caller's back, so
/// the scan itself never calls this and works within the limit it finds.
pub fn raise_fd_limit() -> std::io::Result<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            },
        )?;
    }
    Ok(limit.maximum.unwrap_or(u64::MAX))
}
