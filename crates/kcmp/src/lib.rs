//! # kcmp — do these two processes share this kernel resource?
//!
//! A complete, safe binding for Linux's `kcmp(2)`, with exact fallbacks
//! where kcmp is missing or blocked. The exact map of what the processes of
//! a host share, built on it, is the `kcmp-map` crate.
//!
//! ## Ordering, not just equality
//! kcmp(2) returns an *ordering* of two kernel objects (0 equal, 1 less,
//! 2 greater, 3 unordered). The kernel obfuscates the object pointers with
//! per-boot, per-type cookies, so the order is stable within a boot,
//! antisymmetric and transitive: large numbers of fds can be sorted and
//! grouped with a binary search instead of compared pairwise
//! ([`KcmpOrdering`], [`grouping`]).
//!
//! ## Absent objects compare equal
//! The kernel compares pointers even when there is no object: two tasks
//! without an I/O context (`KCMP_IO`) or SysV undo list (`KCMP_SYSVSEM`)
//! compare *equal*, and so do two zombies (no mm, fd table, fs struct, I/O
//! context or undo list left) and two kernel threads on `KCMP_VM`.
//! [`compare_process`] reports what the kernel says; `kcmp-map` tells
//! "none" from "shared" with sentinel tasks (`kcmp_map::absent`).
//!
//! ## Permissions
//! Both pids need ptrace access in mode `PTRACE_MODE_READ_REALCREDS`: same
//! user and dumpable, or `CAP_SYS_PTRACE`; Yama's `ptrace_scope` may restrict
//! further. `EPERM` for a process against itself means a seccomp filter or a
//! sandbox, and the message says so.
//!
//! ## Staleness
//! Answers about running processes can be stale by the time you read them;
//! the man page advises stopping the processes first.
//!
//! ```
//! use kcmp::{compare_files, FdNum, Pid};
//! let me = Pid::this();
//! let fd = FdNum::new(1).unwrap();
//! assert!(compare_files(me, fd, me, fd).unwrap().is_equal());
//! ```
//!
//! ## The API
//! - comparisons: [`compare_files`], [`compare_process`],
//!   [`compare_epoll_target`], [`compare`]; for the caller's own fds
//!   [`same_open_file`] (works wherever an exact method does) and
//!   [`compare_own_fds`] (kcmp's ordering);
//! - types: [`Pid`], [`FdNum`] (an fd *number*, possibly in another
//!   process), [`EpollSlot`], [`KcmpType`], [`ProcessResource`],
//!   [`KcmpOrdering`];
//! - errors: [`Error`] (with an errno, convertible into
//!   [`std::io::Error`]), [`Errno`], [`errno_name`];
//! - [`ProcessHandle`]: a task pinned against pid reuse;
//! - [`grouping`]: grouping by kcmp's order with binary search;
//! - [`fallback`]: exact answers when kcmp is missing or blocked.
//!
//! With the `serde` feature, [`Pid`], [`FdNum`] and the fallback answers
//! implement `serde::Serialize`.
#![deny(missing_docs)]
// `unsafe` lives only in the private `sys` module; every other module
// forbids it (`#![forbid(unsafe_code)]` at its top).
#![deny(unsafe_code)]

#[path = "compare.rs"]
mod calls;
mod copy_guard;
mod deprecated;
#[path = "error.rs"]
mod errors;
pub mod fallback;
pub mod grouping;
#[path = "process.rs"]
mod handle;
#[path = "kind.rs"]
mod kinds;
#[path = "ordering.rs"]
mod order;
mod proc_stat;
#[allow(unsafe_code)]
mod sys;

pub use calls::{
    compare, compare_epoll_target, compare_files, compare_own_fds, compare_process, same_open_file,
    EpollSlot, FdNum, Pid,
};
// 0.1's module paths, as hidden deprecated aliases (docs/MIGRATION-0.2.md).
pub use deprecated::{compare, error, kind, ordering, process};
pub use errors::{errno_name, Error, InvalidArgument, KcmpCall, KcmpError, Result};
pub use handle::{PendingPin, ProcessHandle};
pub use kinds::{KcmpType, ProcessResource, UnknownKcmpType};
pub use order::KcmpOrdering;
/// The errno type of [`Error::errno`] and [`errno_name`] (rustix's, re-exported
/// so that callers need no rustix dependency of their own).
pub use rustix::io::Errno;

/// The 0.1 name of [`FdNum`].
#[deprecated(
    since = "0.2.0",
    note = "renamed to `FdNum`: an fd number, possibly in another process"
)]
pub type Fd = FdNum;
