//! Whether any file on this host can make a close wait on a server.
//!
//! Closing a copy of a file calls its `flush`, which on FUSE waits for the
//! FUSE server and on NFS, CIFS or 9p for the network. The engine checks
//! each copy's mount for that ([`crate::pipeline::anchor`]): a read of the
//! holder's fdinfo (about 8 µs, a fifth of a scan where most descriptions
//! are new) and a look at its mount table. A host may instead say at once
//! that *no* file of *any* mount can wait, in any mount namespace, detached
//! or not: when every filesystem type the kernel has (`/proc/filesystems`)
//! is a local one or FUSE, and no FUSE connection exists. FUSE connections
//! are the subdirectories of the fusectl mount (`/sys/fs/fuse/connections`,
//! mounted at boot by systemd, or else a mount of this process's own that
//! is attached nowhere); its root's link count is 2 plus their number, and
//! a connection lives as long as its superblock, so as long as any file of
//! it is open (a copy included).
//!
//! Not covered: CUSE devices (character devices served through `/dev/cuse`)
//! are FUSE connections fusectl never lists; their files have no `flush`,
//! and only the last close of one waits for its server (a RELEASE), as for
//! a device file on the checked path. And the types are read once: a type
//! registered during the scan (a module loaded: `nfs`, or `fuse` itself
//! when it was not loaded at the probe) goes unseen until the next scan.

use rustix::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};

/// fusectl's `f_type`.
const FUSECTL_MAGIC: u64 = 0x6573_5543;

/// The inode number of fusectl's root (`simple_fill_super` numbers it 1;
/// each connection's directory gets a number of `get_next_ino`).
const FUSECTL_ROOT_INO: u64 = 1;

/// Filesystem types whose files never wait on close, besides
/// [`crate::mounts::Mount::never_blocks`]'s: read-only images, automount
/// points, control filesystems. Overlayfs forwards `flush` to its layers,
/// whose types are in this list too when it is used.
const ALSO_LOCAL: &[&str] = &[
    "cpuset", "squashfs", "erofs", "iso9660", "udf", "autofs", "fusectl", "overlay", "msdos",
    "ntfs3", "nsfs", "pidfs",
];

/// A host on which closing any file cannot wait on a server, as long as
/// [`still_holds`](Self::still_holds) says so.
#[derive(Debug)]
pub(crate) struct ServerFreeHost {
    /// The fusectl root (`O_PATH`), when the kernel has FUSE.
    fusectl: Option<OwnedFd>,
    /// What [`still_holds`](Self::still_holds) answered last.
    last: AtomicBool,
}

impl ServerFreeHost {
    /// The host as it is now: `None` when a filesystem type that may wait
    /// (NFS, CIFS, 9p, Ceph, virtiofs, any type not known here) is
    /// registered, or FUSE is and its connections cannot be counted
    /// (fusectl neither mounted nor mountable by this process) or exist.
    pub(crate) fn probe() -> Option<ServerFreeHost> {
        Self::probe_explained().ok().map(|(host, _)| host)
    }

    /// [`probe`](Self::probe), with what it found in words: how FUSE
    /// connections are counted, or why the host is not server-free.
    pub(crate) fn probe_explained() -> Result<(ServerFreeHost, &'static str), String> {
        let types = std::fs::read_to_string("/proc/filesystems")
            .map_err(|e| format!("/proc/filesystems cannot be read ({e})"))?;
        let mut fuse = false;
        for fstype in types.lines().filter_map(|l| l.split_whitespace().last()) {
            match fstype {
                "fuse" | "fuseblk" => fuse = true,
                t if crate::mounts::is_local_type(t) || ALSO_LOCAL.contains(&t) => {}
                t => return Err(format!("a filesystem type that may wait on a server ({t})")),
            }
        }
        let (fusectl, how) = match fuse {
            false => (None, "FUSE is not in this kernel"),
            true => match mounted_fusectl() {
                Some(root) => (Some(root), "FUSE connections counted on fusectl's mount"),
                None => match detached_fusectl() {
                    Some(root) => (
                        Some(root),
                        "FUSE connections counted on fusectl mounted by kcmp, attached nowhere",
                    ),
                    None => {
                        return Err("FUSE connections cannot be counted (fusectl is not \
                                    mounted, and mounting it needs CAP_SYS_ADMIN)"
                            .into())
                    }
                },
            },
        };
        let host = ServerFreeHost {
            fusectl,
            last: AtomicBool::new(true),
        };
        match host.still_holds() {
            true => Ok((host, how)),
            false => Err("a FUSE filesystem is mounted (a FUSE connection exists)".into()),
        }
    }

    /// Whether no FUSE connection exists now (one `fstat`). Asked after a
    /// copy was taken, a yes covers the copy: a FUSE file keeps its
    /// connection alive.
    pub(crate) fn still_holds(&self) -> bool {
        let holds = match &self.fusectl {
            None => true,
            Some(root) => rustix::fs::fstat(root).is_ok_and(|st| st.st_nlink == 2),
        };
        self.last.store(holds, Ordering::Relaxed);
        holds
    }

    /// What [`still_holds`](Self::still_holds) answered last (no syscall):
    /// a guess, good enough to choose whether to check an fd before its
    /// copy is taken, never to keep the copy.
    pub(crate) fn held_last(&self) -> bool {
        self.last.load(Ordering::Relaxed)
    }
}

/// `/sys/fs/fuse/connections`, when fusectl's root is mounted there. A
/// connection's own directory (bind-mounted there) has fusectl's `f_type`
/// and a link count of 2 too, whatever the connections: it is not taken.
fn mounted_fusectl() -> Option<OwnedFd> {
    use rustix::fs::{open, Mode, OFlags};
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let root = open("/sys/fs/fuse/connections", flags, Mode::empty()).ok()?;
    is_fusectl_root(&root).then_some(root)
}

/// fusectl's root from a mount made with the new mount API (`fsopen`,
/// `fsmount`) and never attached to any mount namespace: no mount table
/// changes, and closing the fd ends it. fusectl has one superblock on the
/// whole host, so this root counts every FUSE connection as systemd's
/// mount does. Needs `CAP_SYS_ADMIN` (Linux 5.2+): `None` otherwise.
fn detached_fusectl() -> Option<OwnedFd> {
    use rustix::mount::MountAttrFlags;
    use rustix::mount::{fsconfig_create, fsmount, fsopen, FsMountFlags, FsOpenFlags};
    let context = fsopen("fusectl", FsOpenFlags::FSOPEN_CLOEXEC).ok()?;
    fsconfig_create(&context).ok()?;
    let attrs = MountAttrFlags::MOUNT_ATTR_RDONLY
        | MountAttrFlags::MOUNT_ATTR_NOSUID
        | MountAttrFlags::MOUNT_ATTR_NODEV
        | MountAttrFlags::MOUNT_ATTR_NOEXEC;
    let root = fsmount(&context, FsMountFlags::FSMOUNT_CLOEXEC, attrs).ok()?;
    is_fusectl_root(&root).then_some(root)
}

/// Whether `fd` is the root directory of a fusectl superblock.
fn is_fusectl_root(fd: &OwnedFd) -> bool {
    use rustix::fs::{fstat, fstatfs};
    let fusectl = fstatfs(fd).is_ok_and(|fs| fs.f_type as u64 == FUSECTL_MAGIC);
    fusectl && fstat(fd).is_ok_and(|st| st.st_ino == FUSECTL_ROOT_INO)
}

/// Whether copies skip their mount checks on this host now, and why:
/// for `kcmp doctor`.
pub(crate) fn server_free_now() -> (bool, String) {
    match ServerFreeHost::probe_explained() {
        Ok((_, how)) => (
            true,
            format!("no FUSE connection, no network filesystem type ({how}): copies need no mount check"),
        ),
        Err(why) => (false, format!("{why}: every copy's mount is checked")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_free_answer_matches_the_host() {
        let probed = ServerFreeHost::probe();
        if kcmp_testkit::process::network_filesystem_registered() {
            assert!(probed.is_none());
        }
        let fuse_conns = std::fs::read_dir("/sys/fs/fuse/connections")
            .map(|d| d.count())
            .unwrap_or(0);
        if fuse_conns > 0 {
            assert!(probed.is_none(), "{fuse_conns} FUSE connections");
        }
        if let Some(host) = probed {
            assert!(host.still_holds());
        }
    }
}
