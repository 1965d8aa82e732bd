//! /proc/PID/fdinfo/FD: the kernel's own lines, and an epoll instance's
//! registrations.

use super::read_to_string;
use kcmp::{FdNum, Pid, Result};

/// The parsed text of /proc/PID/fdinfo/FD.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FdInfo {
    /// `pos:` the file offset.
    pub pos: u64,
    /// `flags:` the open flags (octal in the file), O_CLOEXEC included.
    pub flags: u32,
    /// `mnt_id:`.
    pub mnt_id: u64,
    /// `ino:` the inode number.
    pub ino: u64,
    /// The `tfd:` lines of an epoll fd, in the kernel's order.
    pub epoll_registrations: Vec<EpollRegistration>,
}

/// One `tfd:` line of an epoll fd's fdinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpollRegistration {
    /// The fd number the target was registered under.
    pub tfd: i32,
    /// The event mask.
    pub events: u32,
    /// The user data.
    pub data: u64,
    /// The target's file position.
    pub pos: i64,
    /// The target's inode number.
    pub ino: u64,
    /// The target's superblock device (the kernel's encoding).
    pub sdev: u32,
}

impl FdInfo {
    /// Parses fdinfo text. The kernel's own lines (`pos:`, `flags:`,
    /// `mnt_id:`, `ino:`) are read where it prints them, first and in
    /// that order, then the `lock:` lines of any file with locks; what the
    /// file's type shows after them is taken for an epoll instance's
    /// registrations only when every line is a well-formed `tfd:` line.
    /// Other types show other lines first, and some go on with text their
    /// user chose (a dma-buf's name may hold a newline and a line that
    /// looks like `tfd:`): such a text gives no registrations.
    ///
    /// ```
    /// let text = "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\n\
    ///     tfd:        5 events:       19 data:                5  pos:0 ino:1d5d sdev:d\n";
    /// let info = kcmp_map::procfs::FdInfo::parse(text);
    /// assert_eq!(info.flags, 0o2000002);
    /// assert_eq!(info.epoll_registrations[0].tfd, 5);
    /// assert_eq!(info.epoll_registrations[0].ino, 0x1d5d);
    /// ```
    pub fn parse(text: &str) -> FdInfo {
        let mut info = FdInfo::default();
        let mut lines = text.lines().peekable();
        // `ino:` since Linux 5.14: a key may be missing, never moved.
        for key in ["pos:", "flags:", "mnt_id:", "ino:"] {
            let Some(line) = lines.next_if(|l| l.starts_with(key)) else {
                continue;
            };
            let v = line[key.len()..].trim();
            match key {
                "pos:" => info.pos = v.parse().unwrap_or(0),
                "flags:" => info.flags = u32::from_str_radix(v, 8).unwrap_or(0),
                "mnt_id:" => info.mnt_id = v.parse().unwrap_or(0),
                _ => info.ino = v.parse().unwrap_or(0),
            }
        }
        // Then the locks on the file (any file's), then the type's lines.
        while lines.next_if(|l| l.starts_with("lock:")).is_some() {}
        let mut registrations = Vec::new();
        for line in lines {
            match parse_tfd_line(line) {
                Some(r) => registrations.push(r),
                None => return info, // not an epoll instance's text
            }
        }
        info.epoll_registrations = registrations;
        info
    }

    /// The access mode (`O_RDONLY`, `O_WRONLY` or `O_RDWR`).
    pub fn access_mode(&self) -> u32 {
        self.flags & libc::O_ACCMODE as u32
    }
}

/// One `tfd:` line, exactly as the kernel prints it:
/// `"tfd: %8d events: %8x data: %16llx  pos:%lli ino:%lx sdev:%x"`.
fn parse_tfd_line(line: &str) -> Option<EpollRegistration> {
    let mut it = line.split_ascii_whitespace();
    let mut field = |name: &str| (it.next()? == name).then(|| it.next()).flatten();
    let tfd = field("tfd:")?.parse().ok()?;
    let events = u32::from_str_radix(field("events:")?, 16).ok()?;
    let data = u64::from_str_radix(field("data:")?, 16).ok()?;
    let mut tagged = |tag: &str| it.next()?.strip_prefix(tag);
    let pos = tagged("pos:")?.parse().ok()?;
    let ino = u64::from_str_radix(tagged("ino:")?, 16).ok()?;
    let sdev = u32::from_str_radix(tagged("sdev:")?, 16).ok()?;
    it.next().is_none().then_some(EpollRegistration {
        tfd,
        events,
        data,
        pos,
        ino,
        sdev,
    })
}

/// Reads /proc/PID/fdinfo/FD.
///
/// ```
/// let info = kcmp_map::procfs::read_fdinfo(kcmp::Pid::this(), kcmp::FdNum::new(0).unwrap()).unwrap();
/// assert!(info.ino > 0);
/// ```
pub fn read_fdinfo(pid: Pid, fd: FdNum) -> Result<FdInfo> {
    let path = format!("/proc/{pid}/fdinfo/{fd}");
    Ok(FdInfo::parse(&read_to_string(&path)?))
}

/// The text of /proc/PID/fdinfo/FD.
pub(crate) fn read_fdinfo_text(pid: Pid, fd: FdNum) -> Result<String> {
    read_to_string(&format!("/proc/{pid}/fdinfo/{fd}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPOLL_LINE: &str =
        "tfd:        5 events:       19 data:                5  pos:0 ino:1d5d sdev:d";

    #[test]
    fn a_dma_buf_name_that_looks_like_a_registration_is_none() {
        // A dma-buf's fdinfo (drivers/dma-buf/dma-buf.c), its name set to
        // "x\ntfd: ..." and "x\nmnt_id: 1" by DMA_BUF_SET_NAME.
        let text = format!(
            "pos:\t0\nflags:\t02\nmnt_id:\t16\nino:\t1234\nsize:\t4096\ncount:\t1\n\
             exp_name:\tsystem\nname:\tx\n{EPOLL_LINE}\nmnt_id:\t1\n"
        );
        let info = FdInfo::parse(&text);
        assert!(info.epoll_registrations.is_empty());
        assert_eq!((info.mnt_id, info.ino), (16, 1234));
    }

    #[test]
    fn only_whole_tfd_lines_are_registrations() {
        let head = "pos:\t0\nflags:\t02\nmnt_id:\t15\nino:\t1057\n";
        let epoll = FdInfo::parse(&format!("{head}{EPOLL_LINE}\n{EPOLL_LINE}\n"));
        assert_eq!(epoll.epoll_registrations.len(), 2);
        for bad in [
            "tfd: 5",
            "tfd: 5 events: 19 data: 5 pos:0 ino:1d5d",
            "tfd: 5 events: 19 data: 5 pos:0 ino:1d5d sdev:d more",
            "tfd: 5 data: 5 events: 19 pos:0 ino:1d5d sdev:d",
        ] {
            let info = FdInfo::parse(&format!("{head}{EPOLL_LINE}\n{bad}\n"));
            assert!(info.epoll_registrations.is_empty(), "{bad}");
        }
    }

    /// The kernel prints a file's locks before its type's lines (seq_show
    /// in fs/proc/fd.c: show_fd_locks, then show_fdinfo); an epoll fd may
    /// be locked (flock, fcntl) like any file.
    #[test]
    fn lock_lines_come_before_the_registrations() {
        let lock = "lock:\t1: POSIX  ADVISORY  WRITE 42 00:0f:1057 0 EOF\n";
        let text = format!(
            "pos:\t0\nflags:\t02\nmnt_id:\t15\nino:\t1057\n{lock}{lock}{EPOLL_LINE}\n{EPOLL_LINE}\n"
        );
        assert_eq!(FdInfo::parse(&text).epoll_registrations.len(), 2);
        let text = format!("{text}{lock}");
        assert!(FdInfo::parse(&text).epoll_registrations.is_empty());
    }

    #[test]
    fn a_kernel_without_the_ino_line() {
        let info = FdInfo::parse("pos:\t7\nflags:\t0100002\nmnt_id:\t21\n");
        assert_eq!(
            (info.pos, info.flags, info.mnt_id, info.ino),
            (7, 0o100002, 21, 0)
        );
    }
}
