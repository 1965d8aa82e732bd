//! Mounts as a process sees them (`/proc/PID/mountinfo`), and the one rule
//! that keeps kcmp from blocking on another process's files.
//!
//! `/proc/PID/fdinfo/N` names the mount of every fd (`mnt_id`) and its inode
//! (`ino`, Linux 5.14+). With the mount table, `mnt_id` gives the device
//! (what an epoll registration's `sdev` and a `stat` would give) and the
//! filesystem type, without touching the file. Anything more (the file
//! type, the size) needs a `statx` through `/proc/PID/fd/N`, and that call
//! waits for the filesystem: for FUSE, NFS or CIFS it can wait forever.
//! [`Mount::never_blocks`] allows it only on local filesystems of a fixed
//! list; everything else is reported as unknown.

use kcmp::{Error, FdNum, Pid, Result};
use std::collections::HashMap;

/// Filesystem types whose `getattr` and close never wait for another
/// process or the network ([`kcmp::fallback::LOCAL_FILESYSTEMS`]).
use kcmp::fallback::LOCAL_FILESYSTEMS;

/// Whether `fstype` is one of the local filesystem types of
/// [`Mount::never_blocks`].
pub(crate) fn is_local_type(fstype: &str) -> bool {
    LOCAL_FILESYSTEMS.contains(&fstype)
}

/// Mount ids of the kernel's internal mounts whose files never wait on
/// close or `getattr`: shmem and hugetlbfs (memfds), anon_inodefs (eventfd,
/// epoll, timerfd, signalfd, inotify, io_uring, bpf, …), pidfs (pidfds)
/// and nsfs (`/proc/PID/ns/*`). They are in no mount table: a memfd's
/// fdinfo `mnt_id` (0 on Linux 6.x, whose first mount is shmem's) names a
/// mount nobody can look up. This process learns them, once, from files of
/// its own of each kind (memfds of the default and 2 MiB and 1 GiB huge
/// page sizes, where the kernel has them; an eventfd; a pidfd of itself;
/// its network namespace) and their fdinfo. A mount id names one live
/// mount on the whole host and these mounts live as long as the kernel, so
/// an fd with one of these ids is a file of that kind. Pipes and sockets
/// are told by their file type instead.
pub(crate) fn internal_mount_ids() -> &'static [u64] {
    static IDS: std::sync::OnceLock<Vec<u64>> = std::sync::OnceLock::new();
    IDS.get_or_init(|| {
        use rustix::fs::{memfd_create, MemfdFlags};
        let kinds = [
            MemfdFlags::empty(),
            MemfdFlags::HUGETLB,
            MemfdFlags::HUGETLB | MemfdFlags::HUGE_2MB,
            MemfdFlags::HUGETLB | MemfdFlags::HUGE_1GB,
        ];
        let mut probes = Vec::new();
        for kind in kinds {
            // `vm.memfd_noexec = 2` refuses a memfd that is not sealed
            // against exec; Linux before 6.3 does not know the flag.
            let memfd =
                memfd_create("kcmp-mount-probe", MemfdFlags::CLOEXEC | kind).or_else(|_| {
                    let sealed = MemfdFlags::CLOEXEC | MemfdFlags::NOEXEC_SEAL | kind;
                    memfd_create("kcmp-mount-probe", sealed)
                });
            probes.extend(memfd.ok());
        }
        let flags = rustix::event::EventfdFlags::CLOEXEC;
        probes.extend(rustix::event::eventfd(0, flags).ok());
        let me = rustix::process::getpid();
        let pidfd_flags = rustix::process::PidfdFlags::empty();
        probes.extend(rustix::process::pidfd_open(me, pidfd_flags).ok());
        let ns_flags = rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC;
        let ns = rustix::fs::open("/proc/self/ns/net", ns_flags, rustix::fs::Mode::empty());
        probes.extend(ns.ok());
        let mut ids = Vec::new();
        for probe in &probes {
            let Ok(own) = FdNum::new(std::os::fd::AsRawFd::as_raw_fd(probe)) else {
                continue;
            };
            // A kernel without `mnt_id:` in fdinfo (before 3.15) has no id to learn.
            let Ok(text) = crate::procfs::read_fdinfo_text(Pid::this(), own) else {
                continue;
            };
            let info = crate::procfs::FdInfo::parse(&text);
            if text.contains("\nmnt_id:") && !ids.contains(&info.mnt_id) {
                ids.push(info.mnt_id);
            }
        }
        ids
    })
}

/// One line of `/proc/PID/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The mount id (`mnt_id` in fdinfo).
    pub mnt_id: u64,
    /// The parent mount's id.
    pub parent_id: u64,
    /// The device's major number.
    pub major: u32,
    /// The device's minor number.
    pub minor: u32,
    /// The root of the mount within its filesystem, unescaped bytes.
    pub root: Vec<u8>,
    /// The mount point, relative to the reading process's root, unescaped.
    pub mount_point: Vec<u8>,
    /// The filesystem type (`ext4`, `fuse.sshfs`, `nfs4`, …).
    pub fstype: String,
    /// The mount source (`/dev/vda1`, `server:/export`, …).
    pub source: String,
}

impl Mount {
    /// The device in the kernel's internal encoding (`MKDEV`: major << 20 |
    /// minor), as epoll's fdinfo prints it in `sdev:`.
    ///
    /// ```
    /// let m = kcmp_map::mounts::Mount::parse_line(
    ///     "36 35 98:3 / /mnt rw - ext4 /dev/vda3 rw").unwrap();
    /// assert_eq!(m.kernel_dev(), (98 << 20) | 3);
    /// ```
    pub fn kernel_dev(&self) -> u32 {
        (self.major << 20) | self.minor
    }

    /// The device as `stat` reports it in `st_dev` (glibc's `makedev`).
    pub fn user_dev(&self) -> u64 {
        libc::makedev(self.major, self.minor)
    }

    /// True when a `statx` of a file on this mount cannot wait on another
    /// process or the network: a local filesystem type of a fixed list.
    /// FUSE (`fuse`, `fuse.*`, `fuseblk`), NFS, CIFS, overlayfs and every
    /// unknown type give false.
    ///
    /// ```
    /// use kcmp_map::mounts::Mount;
    /// let ext4 = Mount::parse_line("1 0 8:1 / / rw - ext4 /dev/sda1 rw").unwrap();
    /// let fuse = Mount::parse_line("2 1 0:50 / /m rw - fuse.sshfs h:/ rw").unwrap();
    /// assert!(ext4.never_blocks() && !fuse.never_blocks());
    /// ```
    pub fn never_blocks(&self) -> bool {
        LOCAL_FILESYSTEMS.contains(&self.fstype.as_str())
    }

    /// Parses one mountinfo line:
    /// `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS`.
    pub fn parse_line(line: &str) -> Option<Mount> {
        let (left, right) = line.split_once(" - ")?;
        let mut l = left.split(' ');
        let mnt_id = l.next()?.parse().ok()?;
        let parent_id = l.next()?.parse().ok()?;
        let (major, minor) = l.next()?.split_once(':')?;
        let root = unescape(l.next()?);
        let mount_point = unescape(l.next()?);
        let mut r = right.split(' ');
        let fstype = r.next()?.to_string();
        let source = String::from_utf8_lossy(&unescape(r.next().unwrap_or(""))).into_owned();
        Some(Mount {
            mnt_id,
            parent_id,
            major: major.parse().ok()?,
            minor: minor.parse().ok()?,
            root,
            mount_point,
            fstype,
            source,
        })
    }
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> Vec<u8> {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// The mounts of one process's mount namespace, by mount id.
///
/// ```
/// use kcmp_map::mounts::MountTable;
/// let t = MountTable::read(kcmp::Pid::this()).unwrap();
/// let fd0 = kcmp_map::procfs::read_fdinfo(kcmp::Pid::this(), kcmp::FdNum::new(0).unwrap());
/// if let Ok(info) = fd0 {
///     // Every fd's mount is in its holder's table.
///     assert!(t.get(info.mnt_id).is_some() || info.mnt_id == 0);
/// }
/// ```
#[derive(Debug, Clone, Default)]
pub struct MountTable {
    by_id: HashMap<u64, Mount>,
}

impl MountTable {
    /// Reads `/proc/PID/mountinfo` (PID's mount namespace, seen from PID's
    /// root).
    pub fn read(pid: Pid) -> Result<MountTable> {
        let path = format!("/proc/{pid}/mountinfo");
        let text = std::fs::read(&path).map_err(|e| Error::io(format!("read {path}"), &e))?;
        Ok(MountTable::parse(&String::from_utf8_lossy(&text)))
    }

    /// Parses the text of a mountinfo file (unparsable lines are skipped).
    pub fn parse(text: &str) -> MountTable {
        let by_id = text
            .lines()
            .filter_map(Mount::parse_line)
            .map(|m| (m.mnt_id, m))
            .collect();
        MountTable { by_id }
    }

    /// The mount with this id, if it is in the table.
    pub fn get(&self, mnt_id: u64) -> Option<&Mount> {
        self.by_id.get(&mnt_id)
    }

    /// Whether the table has this mount id.
    pub fn contains(&self, mnt_id: u64) -> bool {
        self.by_id.contains_key(&mnt_id)
    }

    /// The number of mounts.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// True for an empty table.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// `statx` of fd `fd` of `pid` through `/proc/PID/fd/N`, made only when the
/// fd's mount is on a local filesystem ([`Mount::never_blocks`]); `None`
/// otherwise or on any error (the fd closed, no permission). Uses
/// `AT_STATX_DONT_SYNC` as a second guard.
pub fn statx_if_local(pid: Pid, fd: FdNum, mount: &Mount) -> Option<rustix::fs::Statx> {
    if !mount.never_blocks() {
        return None;
    }
    use rustix::fs::{AtFlags, StatxFlags, CWD};
    rustix::fs::statx(
        CWD,
        format!("/proc/{pid}/fd/{fd}"),
        AtFlags::STATX_DONT_SYNC,
        StatxFlags::TYPE
            | StatxFlags::MODE
            | StatxFlags::SIZE
            | StatxFlags::INO
            | StatxFlags::NLINK,
    )
    .ok()
}

/// The inode and device of another process's fd without touching the file:
/// `ino` and `mnt_id` from /proc/PID/fdinfo, the device from the mount
/// table of the holder's mount namespace (read once per namespace). Before
/// Linux 5.14 fdinfo has no `ino`: then a `statx` is made only on the
/// local filesystems of [`Mount::never_blocks`], and fds on
/// FUSE, NFS, CIFS or unknown filesystems stay unknown.
#[derive(Debug, Default)]
pub struct FdInodes {
    /// mount namespace link (`mnt:[…]`) -> its table.
    tables: HashMap<String, Option<MountTable>>,
}

impl FdInodes {
    /// The inode of fd `fd` of `pid` and its device (major, minor) when its
    /// mount is in the holder's mount table; `None` when unknown.
    pub fn inode_of(&mut self, pid: Pid, fd: FdNum) -> Option<(u64, Option<(u32, u32)>)> {
        let info = crate::procfs::read_fdinfo(pid, fd).ok()?;
        let ns = std::fs::read_link(format!("/proc/{pid}/ns/mnt"))
            .map(|l| l.to_string_lossy().into_owned())
            .unwrap_or_else(|_| format!("pid:{pid}"));
        let table = self
            .tables
            .entry(ns)
            .or_insert_with(|| MountTable::read(pid).ok())
            .as_ref();
        let mount = table.and_then(|t| t.get(info.mnt_id));
        let dev = mount.map(|m| (m.major, m.minor));
        if info.ino != 0 {
            return Some((info.ino, dev));
        }
        let st = statx_if_local(pid, fd, mount?)?;
        Some((st.stx_ino, dev))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_escaped_mount_points_and_optional_fields() {
        let m = Mount::parse_line(
            "29 1 0:26 / /a\\040b rw,nosuid shared:7 master:1 - fuse.sshfs u@h:/x\\040y rw",
        )
        .unwrap();
        assert_eq!(m.mount_point, b"/a b");
        assert_eq!(m.fstype, "fuse.sshfs");
        assert_eq!(m.source, "u@h:/x y");
        assert!(!m.never_blocks());
    }

    #[test]
    fn our_own_mounts_include_proc() {
        let t = MountTable::read(Pid::this()).unwrap();
        assert!(!t.is_empty());
        let info = crate::procfs::read_fdinfo(Pid::this(), FdNum::new(0).unwrap());
        if let Ok(info) = info {
            if info.mnt_id != 0 {
                assert!(t.contains(info.mnt_id));
            }
        }
    }
}
