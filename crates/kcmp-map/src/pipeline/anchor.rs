//! Anchors: the engine's own copies of the descriptions it groups.
//!
//! Every fd of a bucket is compared with a *representative* of each
//! description. A representative that is another process's fd may change
//! under the scan (`dup2`, close and reuse): members compared with it before
//! and after would land in one group although they hold two descriptions.
//! So a representative is, wherever possible, an anchor: a copy of the
//! description in this process, taken with `pidfd_getfd(2)`. Nothing but
//! the engine can change it, so each `kcmp(self, anchor, pid, fd) == 0`
//! proves that `(pid, fd)` held exactly that description at that moment, and
//! anchors compare among themselves without any other process involved.
//!
//! `pidfd_getfd` needs `PTRACE_MODE_ATTACH` (kcmp needs only `READ`) and an
//! fd slot. Where it is refused, or the fd budget ([`Budget`]) is spent, the
//! member itself serves as representative ([`Rep::Member`]), the guarantee
//! of the pre-anchor engine. Closing a copy of a file releases the POSIX
//! record locks this process holds on it, so a file whose inode this
//! process has locked is never copied ([`OwnLocks`]).
//!
//! Closing a copy calls the file's `flush`, which on FUSE, NFS or CIFS
//! waits for the server: a hung FUSE server (or one this scan froze) would
//! hang the engine. So a file is copied only when its mount (fdinfo
//! `mnt_id` in the holder's mount table) is a local filesystem
//! ([`crate::mounts::Mount::never_blocks`]) or one of the kernel's internal
//! mounts that never wait (memfds, anonymous inodes, pidfds, namespaces:
//! [`crate::mounts::internal_mount_ids`]); pipes and sockets have no such
//! `flush`. An fd can be switched onto another file between that check
//! and the copy, so each copy is checked again before it is kept
//! ([`Budget::copy`]); and a copy can become the last reference of its
//! file, whose close then runs its `release` (a lingering socket waits):
//! copies are closed on a thread of their own ([`super::closer`]). On a
//! host where no close can wait at all (no FUSE connection, no network
//! filesystem type: [`ServerFreeHost`]) both checks are skipped, so long as
//! that still holds once the copy is taken.

use super::closer::leave_open;
use super::mount_watch::MountTables;
pub(crate) use super::own_locks::OwnLocks;
use super::own_table::ThreadIds;
use crate::hostfs::ServerFreeHost;
use kcmp::{FdNum, Pid};
use rustix::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use rustix::io::Errno;
use std::sync::atomic::{AtomicI64, Ordering};

/// A description's representative.
#[derive(Debug)]
pub(crate) enum Rep {
    /// The engine's own copy of the description.
    Own(OwnedFd),
    /// A member (row index) standing in; it may change under the scan.
    Member(u32),
}

impl Rep {
    /// The (pid, fd) to hand to kcmp for this representative, given this
    /// process's pid (`me`: [`Budget::me`], not a `getpid` per comparison)
    /// and the (pid, fd) of each row.
    pub(crate) fn locate(&self, me: Pid, row: impl Fn(u32) -> (Pid, FdNum)) -> (Pid, FdNum) {
        match self {
            Rep::Own(fd) => (
                me,
                FdNum::new(fd.as_raw_fd()).expect("an open fd is non-negative"),
            ),
            Rep::Member(r) => row(*r),
        }
    }
}

/// How many anchors may be open at once: a share of the fd limit this
/// process found (the library never raises it), so that pinning and
/// /proc reads keep their slots.
#[derive(Debug)]
pub(crate) struct Budget {
    left: AtomicI64,
    /// This process's pid, read once.
    me: Pid,
    /// The tids of the threads that compare ([`Budget::me`]).
    threads: ThreadIds,
    /// Copies left open by this budget.
    left_open: std::sync::atomic::AtomicU64,
    /// The POSIX locks this process holds: their files are not copied.
    locks: OwnLocks,
    /// The mount tables of the holders' namespaces.
    mounts: MountTables,
    /// Set when no file of this host could wait on a server as the budget
    /// was made: copies need no mount check while it still holds.
    server_free: Option<ServerFreeHost>,
    /// Copies kept on its word.
    kept_server_free: std::sync::atomic::AtomicU64,
    /// Copies taken (`pidfd_getfd` succeeded), kept or not.
    taken: std::sync::atomic::AtomicU64,
}

impl Budget {
    /// A budget of half the fds still free under the soft `RLIMIT_NOFILE`
    /// (`open_now` is a fallback count of open fds when /proc/self/fd
    /// cannot be read), keeping at least 64 for everything else; with
    /// `all_free`, all of them but 256.
    pub(crate) fn new(open_now: usize, locks: OwnLocks, all_free: bool) -> Budget {
        let open_now = crate::procfs::FdDir::open(super::own_table::own_fds_task())
            .and_then(|d| d.fds())
            .map_or(open_now, |f| f.len());
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(1 << 20)
            .min(1 << 20) as i64;
        let free = limit - open_now as i64 - 64;
        let share = if all_free { free - 192 } else { free / 2 };
        // Learnt now, while fds are free: its probes need a few, and a list
        // learnt short would leave every copy of the missing kinds open.
        crate::mounts::internal_mount_ids();
        Budget {
            left: AtomicI64::new(share.max(0)),
            me: Pid::this(),
            threads: ThreadIds::new(),
            left_open: std::sync::atomic::AtomicU64::new(0),
            locks,
            mounts: MountTables::default(),
            server_free: ServerFreeHost::probe(),
            kept_server_free: std::sync::atomic::AtomicU64::new(0),
            taken: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// With `check`, every copy is checked, even on a server-free host.
    pub(crate) fn checking_every_copy(mut self, check: bool) -> Budget {
        if check {
            self.server_free = None;
        }
        self
    }

    /// How many copies were kept without a mount check
    /// ([`ServerFreeHost`]).
    pub(crate) fn kept_server_free(&self) -> u64 {
        self.kept_server_free.load(Ordering::Relaxed)
    }

    /// How many copies were taken (`pidfd_getfd`), kept or not.
    pub(crate) fn taken(&self) -> u64 {
        self.taken.load(Ordering::Relaxed)
    }

    /// Whether a copy of a file with a path needs its fdinfo read first
    /// (closing it could wait on a server), as [`copy`](Self::copy) last
    /// judged: the price the copy-first tactics weigh, never a safety
    /// answer.
    pub(crate) fn path_copies_checked(&self) -> bool {
        !self.server_free.as_ref().is_some_and(|h| h.held_last())
    }

    /// Whether no file of this host can wait on a server now.
    fn server_free_now(&self) -> bool {
        self.server_free.as_ref().is_some_and(|h| h.still_holds())
    }

    /// How many copies this budget left open ([`crate::exit`]).
    pub(crate) fn left_open(&self) -> u64 {
        self.left_open.load(Ordering::Relaxed)
    }

    /// The task to hand to kcmp with an anchor: the calling thread
    /// ([`ThreadIds`]).
    pub(crate) fn me(&self) -> Pid {
        self.threads.current().unwrap_or(self.me)
    }

    /// Takes a copy of `fd` of the task behind `pidfd` as an anchor, when
    /// the budget allows and the kernel agrees: `Ok(None)` when anchors are
    /// not available (no pidfd, refused, no fd slot), `Err` when the fd is
    /// gone (`EBADF`: closed meanwhile; `ESRCH`: the task exited).
    fn try_anchor(
        &self,
        pidfd: Option<BorrowedFd<'_>>,
        pid: Pid,
        fd: FdNum,
    ) -> Result<Option<OwnedFd>, Errno> {
        let Some(pidfd) = pidfd else {
            return Ok(None);
        };
        if !self.locks.may_copy(pid, fd)? {
            return Ok(None);
        }
        if self.left.fetch_sub(1, Ordering::Relaxed) <= 0 {
            self.left.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        match rustix::process::pidfd_getfd(
            pidfd.as_fd(),
            fd.get(),
            rustix::process::PidfdGetfdFlags::empty(),
        ) {
            Ok(own) => match self.count_taken(own) {
                Ok(own) => Ok(Some(own)),
                Err(locked) => {
                    leave_open(locked);
                    Ok(None)
                }
            },
            Err(e) => {
                self.left.fetch_add(1, Ordering::Relaxed);
                if e == Errno::BADF || e == Errno::SRCH {
                    Err(e)
                } else {
                    Ok(None)
                }
            }
        }
    }

    /// Counts a copy just taken, and keeps it unless its file holds one of
    /// this process's locks (`Err`: to be left open).
    fn count_taken(&self, own: OwnedFd) -> Result<OwnedFd, OwnedFd> {
        self.taken.fetch_add(1, Ordering::Relaxed);
        self.locks.keep_unless_locked(own)
    }

    /// The engine's copy of `fd` of `pid` (see [`try_anchor`](Self::try_anchor)),
    /// taken only when closing it cannot wait on a server.
    ///
    /// For a file with a path (`path`), the fd's mount must be known safe
    /// first ([`path_copy_is_safe`](Self::path_copy_is_safe)). Pipes, sockets
    /// and anonymous inodes need no such check. Either way the fd may have
    /// been switched (`dup2`) to another file between that check, or the
    /// link read that classified it, and `pidfd_getfd`: so the copy itself
    /// is checked before it is kept ([`closes_safely`](Self::closes_safely)).
    /// A copy that fails is left open for the rest of this process's life,
    /// since closing it is what could hang, and `Ok(None)` is returned.
    pub(crate) fn copy(
        &self,
        pidfd: Option<BorrowedFd<'_>>,
        pid: Pid,
        fd: FdNum,
        path: bool,
    ) -> Result<Option<OwnedFd>, Errno> {
        // On a host where no close can wait (no FUSE connection, no network
        // filesystem), neither check is needed, so long as that still
        // holds once the copy is taken (a FUSE file would keep its
        // connection alive): no fdinfo, no mount table. Whether to check
        // before the copy follows the last answer (one `fstat` a copy, not
        // two): when a FUSE connection appears, the copies already under
        // way go through the check after the copy, and may be left open.
        if path && self.path_copies_checked() && !self.path_copy_is_safe(pid, fd)? {
            return Ok(None);
        }
        let Some(copy) = self.try_anchor(pidfd, pid, fd)? else {
            return Ok(None);
        };
        if self.server_free_now() {
            self.kept_server_free.fetch_add(1, Ordering::Relaxed);
            return Ok(Some(copy));
        }
        if self.closes_safely(pid, copy.as_fd()) {
            return Ok(Some(copy));
        }
        leave_open(copy);
        self.left_open.fetch_add(1, Ordering::Relaxed);
        Ok(None)
    }

    /// Whether a copy of `fd` of `pid`, a file with a path, may be taken:
    /// only when closing the copy cannot wait on a server, i.e. the fd's
    /// mount is in `pid`'s mount table and is a local filesystem, or is an
    /// internal mount that never waits (memfds, nsfs). Reads fdinfo and
    /// mountinfo (again only when the namespace's mounts changed), never
    /// the file.
    ///
    /// `Err` when the fd is gone (`EBADF`: closed meanwhile) or its task
    /// (`ESRCH`), as [`try_anchor`](Self::try_anchor) says it.
    pub(crate) fn path_copy_is_safe(&self, pid: Pid, fd: FdNum) -> Result<bool, Errno> {
        let info = match crate::procfs::read_fdinfo(pid, fd) {
            Ok(info) => info,
            Err(e) if e.errno() == Some(Errno::NOENT) => return Err(Errno::BADF),
            Err(e) if e.errno() == Some(Errno::SRCH) => return Err(Errno::SRCH),
            Err(_) => return Ok(false),
        };
        // The table as last read: a stale answer is caught by the check of
        // the copy, which reads it again if mounts changed.
        Ok(self.mount_never_blocks(pid, info.mnt_id, false))
    }

    /// Whether closing `copy` (of an fd of `pid`) cannot wait on a server,
    /// from a `statx` of the copy with `AT_STATX_DONT_SYNC` (FUSE, NFS,
    /// CIFS and overlayfs answer it from their caches): a pipe or socket
    /// has no `flush`; any other file's mount must be a local filesystem in
    /// `pid`'s current mount table or an internal mount that never waits.
    /// The copy keeps its mount, so its mount id names that mount until
    /// the copy is closed, and the table is read again if the namespace's
    /// mounts changed since it was read.
    fn closes_safely(&self, pid: Pid, copy: BorrowedFd<'_>) -> bool {
        use rustix::fs::{statx, AtFlags, StatxFlags};
        let flags = AtFlags::EMPTY_PATH | AtFlags::STATX_DONT_SYNC;
        let (kind, mnt_id) = match statx(copy, "", flags, StatxFlags::TYPE | StatxFlags::MNT_ID) {
            Ok(st) => {
                let typed = st.stx_mask & StatxFlags::TYPE.bits() != 0;
                let with_mount = st.stx_mask & StatxFlags::MNT_ID.bits() != 0;
                let kind = typed.then_some(u32::from(st.stx_mode) & libc::S_IFMT);
                (kind, with_mount.then_some(st.stx_mnt_id))
            }
            Err(_) => (None, None),
        };
        if matches!(kind, Some(libc::S_IFIFO | libc::S_IFSOCK)) {
            return true;
        }
        // Linux before 5.8 has no STATX_MNT_ID: the copy's own fdinfo.
        let mnt_id = mnt_id.or_else(|| {
            let own = FdNum::new(copy.as_raw_fd()).ok()?;
            crate::procfs::read_fdinfo(super::own_table::own_fds_task(), own)
                .ok()
                .map(|i| i.mnt_id)
        });
        let Some(mnt_id) = mnt_id else {
            return false;
        };
        self.mount_never_blocks(pid, mnt_id, true)
    }

    /// Whether closing a file on mount `mnt_id` cannot wait: a local
    /// filesystem in `pid`'s mount table, or one of the kernel's internal
    /// mounts that never wait ([`crate::mounts::internal_mount_ids`]).
    /// With `current`, the table is read again first if the namespace's
    /// mounts changed since it was read.
    fn mount_never_blocks(&self, pid: Pid, mnt_id: u64, current: bool) -> bool {
        // The internal mounts live as long as the kernel, so their ids are
        // never given to another mount: no table (and no poll) is needed.
        if crate::mounts::internal_mount_ids().contains(&mnt_id) {
            return true;
        }
        let listed = self.mounts.table(pid, current);
        listed
            .as_ref()
            .and_then(|t| t.get(mnt_id))
            .is_some_and(|mount| mount.never_blocks())
    }

    /// A second copy of an anchor (for another worker), within the budget.
    pub(crate) fn dup(&self, fd: &OwnedFd) -> Option<OwnedFd> {
        if self.left.fetch_sub(1, Ordering::Relaxed) <= 0 {
            self.left.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        match rustix::io::fcntl_dupfd_cloexec(fd, 0) {
            Ok(d) => Some(d),
            Err(_) => {
                self.left.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Gives back the slot of an anchor, closed on the closer thread
    /// ([`super::closer`]).
    pub(crate) fn release(&self, rep: Rep) {
        if let Rep::Own(fd) = rep {
            super::closer::close_later(fd);
            self.left.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// `(mnt_id, ino)` of a representative from fdinfo (never touches the
/// file), or `None` when it cannot be read (the fd closed, a kernel
/// before 5.14 without `ino:`).
pub(crate) fn mount_and_inode(pid: Pid, fd: FdNum) -> Option<(u64, u64)> {
    let info = crate::procfs::read_fdinfo(pid, fd).ok()?;
    (info.ino != 0).then_some((info.mnt_id, info.ino))
}

/// [`mount_and_inode`] of the engine's own copy of a path description, and
/// its file type (`st_mode & S_IFMT`): a `statx` of the copy, which is safe
/// because copies of paths are taken only on local filesystems
/// ([`Budget::copy`]; their getattr never waits,
/// `AT_STATX_DONT_SYNC` guards it again) and gives what fdinfo gives there
/// (`mnt_id`, `i_ino`) for a fraction of the cost. Falls back to fdinfo
/// (no type) when the kernel reports no mount id.
pub(crate) fn own_mount_inode_type(fd: BorrowedFd<'_>) -> (Option<(u64, u64)>, Option<u32>) {
    use rustix::fs::{statx, AtFlags, StatxFlags};
    let flags = AtFlags::EMPTY_PATH | AtFlags::STATX_DONT_SYNC;
    let mask = StatxFlags::MNT_ID | StatxFlags::INO | StatxFlags::TYPE;
    match statx(fd, "", flags, mask) {
        Ok(st) if st.stx_mask & StatxFlags::MNT_ID.bits() != 0 && st.stx_ino != 0 => {
            let typed = st.stx_mask & StatxFlags::TYPE.bits() != 0;
            let kind = typed.then_some(u32::from(st.stx_mode) & libc::S_IFMT);
            (Some((st.stx_mnt_id, st.stx_ino)), kind)
        }
        _ => {
            let own = FdNum::new(fd.as_raw_fd()).ok();
            (
                own.and_then(|f| mount_and_inode(super::own_table::own_fds_task(), f)),
                None,
            )
        }
    }
}
