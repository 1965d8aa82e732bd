//! What an open file description is, from its link text, its fdinfo flags
//! and (on local filesystems only) a `statx`.

use crate::procfs::FdTarget;

/// The kind of an open file description.
///
/// ```
/// use kcmp_map::audit::FileKind;
/// assert_eq!(FileKind::from_target("pipe:[7]", None, 0), FileKind::Pipe);
/// assert_eq!(FileKind::from_target("/memfd:x (deleted)", None, 0), FileKind::Memfd);
/// // Without a statx (a FUSE or NFS file), O_DIRECTORY still tells a directory.
/// assert_eq!(FileKind::from_target("/mnt/x", None, libc::O_DIRECTORY as u32), FileKind::Directory);
/// assert_eq!(FileKind::from_target("/mnt/x", None, 0), FileKind::Unknown);
/// assert_eq!(FileKind::Directory.name(), "dir");
/// assert!(FileKind::NAMES.contains(&FileKind::Unknown.name()));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// A directory.
    Directory,
    /// A regular file.
    File,
    /// A memfd (`/memfd:NAME (deleted)`).
    Memfd,
    /// A terminal (`/dev/pts/N`, `/dev/ttyN`, `/dev/console`).
    Terminal,
    /// Another character device (`/dev/null`, …).
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A named pipe opened by path.
    Fifo,
    /// A symbolic link (only with O_PATH).
    Symlink,
    /// A socket file opened by path (only with O_PATH).
    SocketFile,
    /// A pipe end (`pipe:[ino]`).
    Pipe,
    /// A socket (`socket:[ino]`).
    Socket,
    /// An anonymous inode (eventfd, epoll, timerfd, signalfd, …).
    AnonInode,
    /// Something else (`mnt:[…]`, `net:[…]`, …).
    Other,
    /// A path whose type could not be read without risking a block (a
    /// file on a FUSE, network or other non-local filesystem).
    Unknown,
}

impl FileKind {
    /// Every kind's [`FileKind::name`].
    pub const NAMES: [&'static str; 14] = [
        "dir",
        "file",
        "memfd",
        "terminal",
        "chardev",
        "blockdev",
        "fifo",
        "symlink",
        "socket-file",
        "pipe",
        "socket",
        "anon_inode",
        "other",
        "unknown",
    ];

    /// The name used in the output, in scan's vocabulary (`dir`, `file`,
    /// `memfd`, `chardev`, `blockdev`, `fifo`, `symlink`, `pipe`, `socket`,
    /// `anon_inode`, `other`) plus three finer kinds of audit's own:
    /// `terminal` (a chardev), `socket-file` (a socket's path opened with
    /// O_PATH) and `unknown` (scan's `path`: a type that could not be read
    /// without risking a block).
    pub fn name(self) -> &'static str {
        match self {
            FileKind::Directory => "dir",
            FileKind::File => "file",
            FileKind::Memfd => "memfd",
            FileKind::Terminal => "terminal",
            FileKind::CharDevice => "chardev",
            FileKind::BlockDevice => "blockdev",
            FileKind::Fifo => "fifo",
            FileKind::Symlink => "symlink",
            FileKind::SocketFile => "socket-file",
            FileKind::Pipe => "pipe",
            FileKind::Socket => "socket",
            FileKind::AnonInode => "anon_inode",
            FileKind::Other => "other",
            FileKind::Unknown => "unknown",
        }
    }

    /// Classifies a description by its link text, the file mode from a
    /// `statx` when one could be made (`st_mode`), and the fdinfo flags.
    pub fn from_target(target: &str, mode: Option<u32>, flags: u32) -> FileKind {
        let path = match FdTarget::parse(target) {
            FdTarget::Pipe(_) => return FileKind::Pipe,
            FdTarget::Socket(_) => return FileKind::Socket,
            FdTarget::AnonInode(_) => return FileKind::AnonInode,
            FdTarget::Other(_) => return FileKind::Other,
            FdTarget::Path(p) => p,
        };
        if path.starts_with("/memfd:") {
            return FileKind::Memfd;
        }
        let terminal = is_terminal_path(&path);
        match mode.map(|m| m & libc::S_IFMT) {
            Some(libc::S_IFDIR) => FileKind::Directory,
            Some(libc::S_IFREG) => FileKind::File,
            Some(libc::S_IFCHR) if terminal => FileKind::Terminal,
            Some(libc::S_IFCHR) => FileKind::CharDevice,
            Some(libc::S_IFBLK) => FileKind::BlockDevice,
            Some(libc::S_IFIFO) => FileKind::Fifo,
            Some(libc::S_IFLNK) => FileKind::Symlink,
            Some(libc::S_IFSOCK) => FileKind::SocketFile,
            _ if flags & libc::O_DIRECTORY as u32 != 0 => FileKind::Directory,
            _ if terminal => FileKind::Terminal,
            _ => FileKind::Unknown,
        }
    }
}

fn is_terminal_path(path: &str) -> bool {
    path.starts_with("/dev/pts/")
        || path.starts_with("/dev/tty")
        || path == "/dev/console"
        || path == "/dev/ptmx"
}

/// How a description is open, from its fdinfo flags: `path` (O_PATH),
/// `read`, `write` or `read-write`.
///
/// ```
/// assert_eq!(kcmp_map::audit::access_name(libc::O_WRONLY as u32), "write");
/// assert_eq!(kcmp_map::audit::access_name((libc::O_PATH | libc::O_CLOEXEC) as u32), "path");
/// ```
pub fn access_name(flags: u32) -> &'static str {
    if flags & libc::O_PATH as u32 != 0 {
        return "path";
    }
    match flags & libc::O_ACCMODE as u32 {
        0 => "read",
        1 => "write",
        _ => "read-write",
    }
}

/// Open for writing (and not O_PATH).
pub fn writable(flags: u32) -> bool {
    flags & libc::O_PATH as u32 == 0 && flags & libc::O_ACCMODE as u32 != 0
}

/// Opened with O_PATH.
pub fn is_opath(flags: u32) -> bool {
    flags & libc::O_PATH as u32 != 0
}

#[cfg(test)]
mod tests {
    use super::FileKind::{self, *};

    #[test]
    fn names_list_every_kind_once() {
        let all = [
            Directory,
            File,
            Memfd,
            Terminal,
            CharDevice,
            BlockDevice,
            Fifo,
            Symlink,
            SocketFile,
            Pipe,
            Socket,
            AnonInode,
            Other,
            Unknown,
        ];
        let names: Vec<&str> = all.iter().map(|k| k.name()).collect();
        assert_eq!(names, FileKind::NAMES);
    }

    #[test]
    fn classifies_by_mode_then_flags_then_path() {
        let dir = Some(libc::S_IFDIR | 0o755);
        assert_eq!(FileKind::from_target("/x", dir, 0), Directory);
        let chr = Some(libc::S_IFCHR);
        assert_eq!(FileKind::from_target("/dev/pts/3", chr, 0), Terminal);
        assert_eq!(FileKind::from_target("/dev/null", chr, 0), CharDevice);
        assert_eq!(FileKind::from_target("/dev/tty1", None, 0), Terminal);
        assert_eq!(
            FileKind::from_target("anon_inode:[eventfd]", None, 0),
            AnonInode
        );
        assert_eq!(FileKind::from_target("mnt:[4026531841]", None, 0), Other);
    }
}
