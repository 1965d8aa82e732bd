//! # kcmp — do these two processes share this kernel resource?
//!
//! A complete, safe binding for Linux's `kcmp(2)` and, built on it, an exact
//! map of what the processes of a host share.
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
//! compare *equal*, and so do zombies and kernel threads on `KCMP_VM`.
//! [`compare_process`] reports what the kernel says; the scanner tells
//! "none" from "shared" with sentinel tasks.
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
#![warn(missing_docs)]

pub mod compare;
pub mod error;
pub mod fallback;
pub mod grouping;
pub mod kind;
pub mod ordering;
mod proc_stat;
pub mod process;
mod sys;

pub use compare::{
    compare, compare_epoll_target, compare_files, compare_own_fds, compare_process, same_open_file,
    EpollSlot, FdNum, Pid,
};
pub use error::{errno_name, Error, KcmpCall, KcmpError, Result};
pub use kind::{KcmpType, ProcessResource, UnknownKcmpType};
pub use ordering::KcmpOrdering;
pub use process::ProcessHandle;

/// The 0.1 name of [`FdNum`].
#[deprecated(
    since = "0.2.0",
    note = "renamed to `FdNum`: an fd number, possibly in another process"
)]
pub type Fd = FdNum;
