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
//! of the pre-anchor engine. Anchors are not used at all when this process
//! holds POSIX record locks: closing a copy of a file would release them.
//!
//! Closing a copy calls the file's `flush`, which on FUSE, NFS or CIFS
//! waits for the server: a hung FUSE server (or one this scan froze) would
//! hang the engine. So a file is copied only when its mount (fdinfo
//! `mnt_id` in the holder's mount table) is a local filesystem
//! ([`crate::mounts::Mount::never_blocks`]); pipes, sockets and anonymous
//! inodes have no such `flush` and are always copied.

use crate::mounts::MountTable;
use kcmp::{FdNum, Pid};
use rustix::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use rustix::io::Errno;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

/// A description's representative.
#[derive(Debug)]
pub(crate) enum Rep {
    /// The engine's own copy of the description.
    Own(OwnedFd),
    /// A member (row index) standing in; it may change under the scan.
    Member(u32),
}

impl Rep {
    /// The (pid, fd) to hand to kcmp for this representative, given the
    /// (pid, fd) of each row.
    pub(crate) fn locate(&self, row: impl Fn(u32) -> (Pid, FdNum)) -> (Pid, FdNum) {
        match self {
            Rep::Own(fd) => (
                Pid::this(),
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
    enabled: bool,
    /// Mount tables by mount namespace (the `/proc/PID/ns/mnt` link).
    mounts: Mutex<HashMap<String, Option<Arc<MountTable>>>>,
    /// Each task's mount namespace link, read once.
    ns_of: Mutex<HashMap<Pid, String>>,
}

impl Budget {
    /// A budget of half the fds still free under the soft `RLIMIT_NOFILE`
    /// (`open_now` is a fallback count of open fds when /proc/self/fd
    /// cannot be read), keeping at least 64 for everything else; disabled
    /// when this process holds POSIX locks.
    pub(crate) fn new(open_now: usize) -> Budget {
        let open_now = crate::procfs::FdDir::open(Pid::this())
            .and_then(|d| d.fds())
            .map_or(open_now, |f| f.len());
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(1 << 20)
            .min(1 << 20) as i64;
        let free = limit - open_now as i64 - 64;
        Budget {
            left: AtomicI64::new((free / 2).max(0)),
            enabled: !holds_posix_locks(),
            mounts: Mutex::new(HashMap::new()),
            ns_of: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a copy of `fd` of the task behind `pidfd` as an anchor, when
    /// the budget allows and the kernel agrees: `Ok(None)` when anchors are
    /// not available (no pidfd, refused, no fd slot), `Err` when the fd is
    /// gone (`EBADF`: closed meanwhile; `ESRCH`: the task exited).
    pub(crate) fn try_anchor(
        &self,
        pidfd: Option<BorrowedFd<'_>>,
        fd: FdNum,
    ) -> Result<Option<OwnedFd>, Errno> {
        let Some(pidfd) = pidfd.filter(|_| self.enabled) else {
            return Ok(None);
        };
        if self.left.fetch_sub(1, Ordering::Relaxed) <= 0 {
            self.left.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        match rustix::process::pidfd_getfd(
            pidfd.as_fd(),
            fd.get(),
            rustix::process::PidfdGetfdFlags::empty(),
        ) {
            Ok(own) => Ok(Some(own)),
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

    /// [`try_anchor`](Self::try_anchor), `None` on any failure.
    pub(crate) fn anchor(&self, pidfd: Option<BorrowedFd<'_>>, fd: FdNum) -> Option<OwnedFd> {
        self.try_anchor(pidfd, fd).ok().flatten()
    }

    /// Whether a copy of `fd` of `pid`, a file with a path, may be taken:
    /// only when closing the copy cannot wait on a server, i.e. the fd's
    /// mount is in `pid`'s mount table and is a local filesystem. Reads
    /// fdinfo and (once per mount namespace) mountinfo, never the file.
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
        let Some(table) = self.mount_table(pid) else {
            return Ok(false);
        };
        Ok(table.get(info.mnt_id).is_some_and(|m| m.never_blocks()))
    }

    /// The mount table of `pid`'s mount namespace, read once per namespace;
    /// which namespace a task is in is read once per task (a mount id names
    /// one mount on the whole host, so a task that changed namespace since
    /// finds its mounts, or none: unsafe).
    fn mount_table(&self, pid: Pid) -> Option<Arc<MountTable>> {
        let cached = self
            .ns_of
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&pid)
            .cloned();
        let ns = match cached {
            Some(ns) => ns,
            None => {
                let link = rustix::fs::readlink(format!("/proc/{pid}/ns/mnt"), Vec::new()).ok()?;
                let ns = link.to_string_lossy().into_owned();
                let mut of = self.ns_of.lock().unwrap_or_else(|e| e.into_inner());
                of.insert(pid, ns.clone());
                ns
            }
        };
        let mut cache = self.mounts.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .entry(ns)
            .or_insert_with(|| MountTable::read(pid).ok().map(Arc::new))
            .clone()
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

    /// Gives back the slot of a closed anchor.
    pub(crate) fn release(&self, rep: Rep) {
        if let Rep::Own(fd) = rep {
            drop(fd);
            self.left.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Whether this process holds a POSIX (fcntl, not OFD) record lock: then
/// closing a copy of any file could release it.
fn holds_posix_locks() -> bool {
    let me = Pid::this();
    let fds = match crate::procfs::FdDir::open(me).and_then(|d| d.fds()) {
        Ok(fds) if fds.len() <= OWN_FDS_READ => fds,
        _ => return posix_locks_in_proc_locks(),
    };
    // Each fd's fdinfo lists, in `lock:` lines, the locks this process holds
    // on its file; a POSIX lock needs an open fd on its file. Reading them
    // takes no global lock, unlike /proc/locks (whose reader waits for an
    // RCU grace period: about 10 ms here, a third of a small host's scan).
    fds.into_iter()
        .any(|fd| match crate::procfs::read_fdinfo_text(me, fd) {
            Ok(text) => text
                .lines()
                .any(|l| l.starts_with("lock:") && l.split_whitespace().any(|w| w == "POSIX")),
            // The fd closed since the listing (the listing's own directory fd).
            Err(e) if e.errno() == Some(Errno::NOENT) => false,
            Err(_) => true, // unknown: be careful
        })
}

/// Own fds whose fdinfo [`holds_posix_locks`] reads at most; with more it
/// reads /proc/locks once.
const OWN_FDS_READ: usize = 256;

/// [`holds_posix_locks`] from /proc/locks.
fn posix_locks_in_proc_locks() -> bool {
    let me = std::process::id().to_string();
    let Ok(text) = std::fs::read_to_string("/proc/locks") else {
        return true; // unknown: be careful
    };
    text.lines().any(|line| {
        let f: Vec<&str> = line.split_whitespace().filter(|w| *w != "->").collect();
        f.get(1) == Some(&"POSIX") && f.get(4) == Some(&me.as_str())
    })
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
/// ([`Budget::path_copy_is_safe`]; their getattr never waits,
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
            (own.and_then(|f| mount_and_inode(Pid::this(), f)), None)
        }
    }
}
