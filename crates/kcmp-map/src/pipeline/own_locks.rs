//! The POSIX record locks this process holds: closing any fd of a locked
//! file, one of the engine's copies included, releases them, so such files
//! are never copied (and a copy switched onto one is never closed).

use kcmp::{FdNum, Pid};
use rustix::fd::{AsRawFd, BorrowedFd, OwnedFd};
use rustix::io::Errno;
use std::collections::HashSet;

/// The POSIX (fcntl, not OFD) record locks this process holds, by inode:
/// closing any fd of a locked file, a copy included, releases them.
#[derive(Debug)]
pub(crate) enum OwnLocks {
    /// None: every file may be copied.
    None,
    /// The inode numbers of the locked files. The device is left out: a
    /// file of another device with the same number is merely not copied.
    On(HashSet<u64>),
    /// They could not be read: nothing is copied.
    Unknown,
}

impl OwnLocks {
    /// This process's locks, read once per scan: from the fdinfo of each of
    /// its fds (`lock:` lines list the locks this process holds on that
    /// fd's file; a POSIX lock needs an open fd on its file), which takes no
    /// global lock, unlike /proc/locks (whose reader waits for an RCU grace
    /// period: about 10 ms here, a third of a small host's scan).
    pub(crate) fn read() -> OwnLocks {
        match crate::procfs::FdDir::open(super::own_table::own_fds_task()).and_then(|d| d.fds()) {
            Ok(fds) => Self::read_among(fds),
            Err(_) => Self::from_proc_locks(),
        }
    }

    /// [`read`](Self::read), given this process's fds: those it had before
    /// the scan opened any (its pidfds hold no locks).
    pub(crate) fn read_among(fds: Vec<FdNum>) -> OwnLocks {
        if fds.len() > OWN_FDS_READ {
            return Self::from_proc_locks();
        }
        let me = Pid::this();
        let mut inodes = HashSet::new();
        for fd in fds {
            match crate::procfs::read_fdinfo_text(me, fd) {
                Ok(text) => {
                    let locks = text.lines().filter_map(|l| l.strip_prefix("lock:"));
                    inodes.extend(locks.filter_map(posix_lock_inode));
                }
                // The fd closed since the listing (the listing's own directory fd).
                Err(e) if e.errno() == Some(Errno::NOENT) => {}
                Err(_) => return OwnLocks::Unknown,
            }
        }
        Self::of(inodes)
    }

    /// [`read`](Self::read) from /proc/locks, for a process with many fds.
    fn from_proc_locks() -> OwnLocks {
        let me = std::process::id().to_string();
        let Ok(text) = std::fs::read_to_string("/proc/locks") else {
            return OwnLocks::Unknown;
        };
        let inodes = text.lines().filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().filter(|w| *w != "->").collect();
            (f.get(4) == Some(&me.as_str())).then(|| posix_lock_inode(line))?
        });
        Self::of(inodes.collect())
    }

    /// Whether `copy`'s file (by its inode, from this process's fdinfo) is
    /// one of these; true when unknown.
    pub(crate) fn covers(&self, copy: BorrowedFd<'_>) -> bool {
        match self {
            OwnLocks::None => false,
            OwnLocks::Unknown => true,
            OwnLocks::On(inodes) => {
                let own = FdNum::new(copy.as_raw_fd()).ok();
                match own
                    .map(|own| crate::procfs::read_fdinfo(super::own_table::own_fds_task(), own))
                {
                    Some(Ok(info)) => info.ino == 0 || inodes.contains(&info.ino),
                    _ => true,
                }
            }
        }
    }

    fn of(inodes: HashSet<u64>) -> OwnLocks {
        match inodes.is_empty() {
            true => OwnLocks::None,
            false => OwnLocks::On(inodes),
        }
    }

    /// Whether `fd` of `pid` may be copied: its inode (from fdinfo) is not
    /// one this process has locked. `Err` when the fd or task is gone.
    pub(crate) fn may_copy(&self, pid: Pid, fd: FdNum) -> Result<bool, Errno> {
        match self {
            OwnLocks::None => Ok(true),
            OwnLocks::Unknown => Ok(false),
            OwnLocks::On(inodes) => match crate::procfs::read_fdinfo(pid, fd) {
                Ok(info) => Ok(info.ino != 0 && !inodes.contains(&info.ino)),
                Err(e) if e.errno() == Some(Errno::NOENT) => Err(Errno::BADF),
                Err(e) if e.errno() == Some(Errno::SRCH) => Err(Errno::SRCH),
                Err(_) => Ok(false),
            },
        }
    }

    /// `Ok(copy)`, unless `fd` was switched to a locked file between
    /// [`may_copy`](Self::may_copy) and the copy: then `Err(copy)`, a copy
    /// that must stay open for the rest of this process's life (closing it
    /// would release the lock).
    pub(crate) fn keep_unless_locked(&self, copy: OwnedFd) -> Result<OwnedFd, OwnedFd> {
        let OwnLocks::On(inodes) = self else {
            return Ok(copy);
        };
        let own = FdNum::new(copy.as_raw_fd()).ok();
        match own.map(|own| crate::procfs::read_fdinfo(super::own_table::own_fds_task(), own)) {
            Some(Ok(info)) if info.ino != 0 && !inodes.contains(&info.ino) => Ok(copy),
            _ => Err(copy),
        }
    }
}

/// The inode of a POSIX lock line (`1: POSIX  ADVISORY  WRITE 1234
/// 00:2a:3482 0 EOF`, as in /proc/locks and after fdinfo's `lock:`);
/// `None` for other kinds (FLOCK, OFDLCK, LEASE).
fn posix_lock_inode(line: &str) -> Option<u64> {
    let f: Vec<&str> = line.split_whitespace().filter(|w| *w != "->").collect();
    if f.get(1) != Some(&"POSIX") {
        return None;
    }
    f.get(5)?.rsplit(':').next()?.parse().ok()
}

/// Own fds whose fdinfo [`OwnLocks::read`] reads at most; with more it
/// reads /proc/locks once.
const OWN_FDS_READ: usize = 256;

#[cfg(test)]
mod tests {
    use super::posix_lock_inode;

    #[test]
    fn lock_lines_give_the_inode_of_posix_locks_only() {
        let posix = " 1: POSIX  ADVISORY  WRITE 3290 00:2a:3482 0 EOF";
        assert_eq!(posix_lock_inode(posix), Some(3482));
        let waiter = "1: -> POSIX  ADVISORY  WRITE 3291 fd:01:77 0 EOF";
        assert_eq!(posix_lock_inode(waiter), Some(77));
        assert_eq!(
            posix_lock_inode("2: FLOCK  ADVISORY  WRITE 3290 00:2a:9 0 EOF"),
            None
        );
        assert_eq!(
            posix_lock_inode("3: OFDLCK ADVISORY  READ  -1 00:2a:9 0 EOF"),
            None
        );
        assert_eq!(posix_lock_inode("4: POSIX"), None);
    }
}
