//! The sharing map: which (pid, fd) pairs are one open file description, and
//! which tasks share vm, files, fs, sighand, io and sysvsem.
//!
//! # How it stays exact and fast
//! The scan is a pipeline, one step per module of `pipeline/` (private):
//! select → pin → list fds → group files → process kinds → epoll → the
//! [`SharingMap`]. In short:
//! 1. Processes are selected from one parallel read of /proc/PID/stat and
//!    pinned (a pidfd while the fd limit allows, else the start time).
//! 2. Every task's fds are listed with their link texts, on all cores; an
//!    unreadable link is one skipped fd, never the whole task.
//! 3. Fds are bucketed by link text ([`procfs::bucket_key`]); every bucket
//!    of two or more fds is split into descriptions by kcmp's order, each
//!    fd compared with an *anchor* — the engine's own `pidfd_getfd` copy of
//!    a description, which nothing else can change — by binary search, after
//!    one try against its parent's same-numbered fd's description.
//! 4. Descriptions of one (mount, inode) under two link texts (a rename
//!    during the scan) are grouped again together.
//! 5. The six process-level kinds are grouped the same way, with sentinel
//!    tasks ([`crate::sentinel`]) to tell "none" from "shared".
//! 6. Tasks that exited during the scan, or whose pid was reused, are
//!    dropped from every answer and reported as skipped.
//!
//! The README's "How it stays exact" says why each step keeps the answer
//! exact.

pub use crate::model::{
    FdRef, OpenFileDescription, ScanProgress, ScanStats, SharingMap, Skipped, TaskRecord,
};
#[allow(unused_imports)] // for the links above
use crate::procfs;
use kcmp::{Pid, Result};

/// Which tasks to scan, and how.
///
/// ```
/// use kcmp_map::scan::ScanOptions;
/// let opts = ScanOptions { trees: vec![kcmp::Pid::this()], ..ScanOptions::default() };
/// assert!(!opts.threads);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// Scan exactly these processes. With `trees` empty too: every process
    /// (but the scanning process itself, which is scanned only when named
    /// here or as a tree's root).
    pub pids: Vec<Pid>,
    /// Scan these processes and all their descendants.
    pub trees: Vec<Pid>,
    /// Inspect every thread as its own task (pids are tids then).
    pub threads: bool,
    /// Stop the inspected processes for the duration (see [`crate::freeze`]).
    pub freeze: bool,
    /// Worker threads; 0 means one per CPU.
    pub workers: usize,
    /// Leave out the epoll section ([`SharingMap::epoll`]).
    pub skip_epoll: bool,
    /// Let the scan hold as many fds as are free under the soft
    /// `RLIMIT_NOFILE` but a reserve of 256, for its own copies of the
    /// descriptions it compares (its anchors: see README, "How it stays
    /// exact"). By default it takes half of the free fds, leaving the
    /// caller's other threads room to open files meanwhile. A program that
    /// owns its fd table (the `kcmp` CLI) sets this, so that big buckets of
    /// distinct descriptions (thousands of separate `open()`s of one file)
    /// keep an anchor each; descriptions left without one are counted in
    /// `stats.descriptions_without_anchor`.
    pub all_free_fds: bool,
    /// Check the mount of every file the scan copies, before and after the
    /// copy, even on a host where no close can wait on a server (no FUSE
    /// connection, no network filesystem type: see README, "A server-free
    /// host needs no check per copy"), where those checks are skipped.
    /// Slower; for tests of the checked path, and the cautious.
    ///
    /// ```
    /// let options = kcmp_map::scan::ScanOptions {
    ///     pids: vec![kcmp::Pid::this()],
    ///     check_every_copy: true,
    ///     ..Default::default()
    /// };
    /// let map = kcmp_map::scan::scan(&options).unwrap();
    /// assert_eq!(map.stats.copies_on_server_free_host, 0);
    /// ```
    pub check_every_copy: bool,
}

/// Scans the selected tasks. See the module documentation.
///
/// Call it from a process whose threads share one fd table: while a thread
/// has a table of its own (`unshare(CLONE_FILES)`), the caller or another,
/// it fails with `EINVAL` (the engine's copies of other processes' fds go
/// to the caller's table, while its closer thread closes them in its own
/// and it reads /proc/PID/fd in the main thread's).
pub fn scan(options: &ScanOptions) -> Result<SharingMap> {
    scan_with_progress(options, &|_| {})
}

/// [`scan`] reporting progress to a callback (called from worker threads).
pub fn scan_with_progress(
    options: &ScanOptions,
    progress: &(dyn Fn(ScanProgress) + Sync),
) -> Result<SharingMap> {
    crate::pipeline::run(options, progress)
}
