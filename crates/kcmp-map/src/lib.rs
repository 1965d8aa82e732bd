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

pub use scan::{scan, FdRef, OpenFileDescription, ScanOptions, SharingMap};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;

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
