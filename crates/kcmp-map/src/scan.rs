//! The sharing map: which (pid, fd) pairs are one open file description, and
//! which tasks share vm, files, fs, sighand, io and sysvsem.
//!
//! # How it stays exact and fast
//! 1. Tasks are enumerated from /proc and pinned ([`ProcessHandle`]).
//! 2. Every task's fds are listed with their link text, on all cores.
//! 3. Fds are bucketed by a key that every fd of one description shares
//!    ([`procfs::bucket_key`]). A socket inode has exactly one description,
//!    so socket buckets need no kcmp at all.
//! 4. Within a bucket, descriptions are told apart by kcmp's ordering
//!    ([`OrderedGroups`]): about one call per fd when the bucket is one
//!    description, `log2(descriptions)` otherwise. Never pairwise.
//! 5. The six process-level kinds are grouped the same way, with sentinel
//!    tasks ([`crate::sentinel`]) to tell "none" from "shared".
//! 6. Tasks that exited during the scan, or whose pid was reused, are
//!    dropped from every answer and reported as skipped.

pub use crate::model::{
    FdRef, OpenFileDescription, ScanProgress, ScanStats, SharingMap, Skipped, TaskRecord,
};
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
}

/// Scans the selected tasks. See the module documentation.
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
