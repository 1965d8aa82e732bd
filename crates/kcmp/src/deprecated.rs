//! The 0.1 module paths (`kcmp::compare::Pid`, `kcmp::error::Error`, …),
//! kept as deprecated aliases of the crate-root items for 0.1 users. Hidden
//! from the docs; docs/MIGRATION-0.2.md lists every move.
#![forbid(unsafe_code)]

/// 0.1's `kcmp::compare`: the items are at the crate root now.
#[doc(hidden)]
pub mod compare {
    use crate::{FdNum, KcmpOrdering, KcmpType, ProcessResource, Result};
    use std::os::fd::AsFd;

    /// Moved to [`crate::Pid`].
    #[deprecated(since = "0.2.0", note = "use `kcmp::Pid`")]
    pub type Pid = crate::Pid;
    /// Moved to [`crate::FdNum`] (renamed).
    #[deprecated(since = "0.2.0", note = "use `kcmp::FdNum`")]
    pub type Fd = crate::FdNum;
    /// Moved to [`crate::EpollSlot`].
    #[deprecated(since = "0.2.0", note = "use `kcmp::EpollSlot`")]
    pub type EpollSlot = crate::EpollSlot;

    /// Moved to [`crate::compare_files`].
    #[deprecated(since = "0.2.0", note = "use `kcmp::compare_files`")]
    pub fn compare_files(
        pid1: crate::Pid,
        fd1: FdNum,
        pid2: crate::Pid,
        fd2: FdNum,
    ) -> Result<KcmpOrdering> {
        crate::compare_files(pid1, fd1, pid2, fd2)
    }
    /// Moved to [`crate::compare_process`].
    #[deprecated(since = "0.2.0", note = "use `kcmp::compare_process`")]
    pub fn compare_process(
        r: ProcessResource,
        pid1: crate::Pid,
        pid2: crate::Pid,
    ) -> Result<KcmpOrdering> {
        crate::compare_process(r, pid1, pid2)
    }
    /// Moved to [`crate::compare_epoll_target`].
    #[deprecated(since = "0.2.0", note = "use `kcmp::compare_epoll_target`")]
    pub fn compare_epoll_target(
        pid1: crate::Pid,
        fd1: FdNum,
        pid2: crate::Pid,
        slot: crate::EpollSlot,
    ) -> Result<KcmpOrdering> {
        crate::compare_epoll_target(pid1, fd1, pid2, slot)
    }
    /// Moved to [`crate::compare()`].
    #[deprecated(since = "0.2.0", note = "use `kcmp::compare`")]
    pub fn compare(
        ty: KcmpType,
        pid1: crate::Pid,
        pid2: crate::Pid,
        idx1: i64,
        idx2: i64,
    ) -> Result<KcmpOrdering> {
        crate::compare(ty, pid1, pid2, idx1, idx2)
    }
    /// Moved to [`crate::compare_own_fds`].
    #[deprecated(since = "0.2.0", note = "use `kcmp::compare_own_fds`")]
    pub fn compare_own_fds(a: impl AsFd, b: impl AsFd) -> Result<KcmpOrdering> {
        crate::compare_own_fds(a, b)
    }
    /// Moved to [`crate::same_open_file`].
    #[deprecated(since = "0.2.0", note = "use `kcmp::same_open_file`")]
    pub fn same_open_file(a: impl AsFd, b: impl AsFd) -> Result<bool> {
        crate::same_open_file(a, b)
    }
}

/// 0.1's `kcmp::error`: the items are at the crate root now.
#[doc(hidden)]
pub mod error {
    /// Moved to [`crate::Error`].
    #[deprecated(since = "0.2.0", note = "use `kcmp::Error`")]
    pub type Error = crate::Error;
    /// Moved to [`crate::KcmpError`].
    #[deprecated(since = "0.2.0", note = "use `kcmp::KcmpError`")]
    pub type KcmpError = crate::KcmpError;
    /// Moved to [`crate::KcmpCall`].
    #[deprecated(since = "0.2.0", note = "use `kcmp::KcmpCall`")]
    pub type KcmpCall = crate::KcmpCall;
    /// Moved to [`crate::Result`].
    #[deprecated(since = "0.2.0", note = "use `kcmp::Result`")]
    pub type Result<T, E = crate::Error> = std::result::Result<T, E>;
    /// Moved to [`crate::errno_name`].
    #[deprecated(since = "0.2.0", note = "use `kcmp::errno_name`")]
    pub fn errno_name(errno: crate::Errno) -> &'static str {
        crate::errno_name(errno)
    }
}

/// 0.1's `kcmp::kind`: the items are at the crate root now.
#[doc(hidden)]
pub mod kind {
    /// Moved to [`crate::KcmpType`].
    #[deprecated(since = "0.2.0", note = "use `kcmp::KcmpType`")]
    pub type KcmpType = crate::KcmpType;
    /// Moved to [`crate::ProcessResource`].
    #[deprecated(since = "0.2.0", note = "use `kcmp::ProcessResource`")]
    pub type ProcessResource = crate::ProcessResource;
    /// Moved to [`crate::UnknownKcmpType`].
    #[deprecated(since = "0.2.0", note = "use `kcmp::UnknownKcmpType`")]
    pub type UnknownKcmpType = crate::UnknownKcmpType;
}

/// 0.1's `kcmp::ordering`: the item is at the crate root now.
#[doc(hidden)]
pub mod ordering {
    /// Moved to [`crate::KcmpOrdering`].
    #[deprecated(since = "0.2.0", note = "use `kcmp::KcmpOrdering`")]
    pub type KcmpOrdering = crate::KcmpOrdering;
}

/// 0.1's `kcmp::process`: the item is at the crate root now.
#[doc(hidden)]
pub mod process {
    /// Moved to [`crate::ProcessHandle`].
    #[deprecated(since = "0.2.0", note = "use `kcmp::ProcessHandle`")]
    pub type ProcessHandle = crate::ProcessHandle;
}
