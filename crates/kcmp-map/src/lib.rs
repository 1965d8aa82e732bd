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

pub mod doctor;
pub mod epoll;
pub mod freeze;
pub mod holders;
pub mod model;
pub mod mounts;
mod parallel;
mod pipeline;
pub mod procfs;
pub mod scan;
pub mod sentinel;
mod sys;

pub use scan::{scan, FdRef, OpenFileDescription, ScanOptions, SharingMap};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
