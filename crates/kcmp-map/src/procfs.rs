//! Reading /proc: tasks, their state, their fds and what the fds point at.
//!
//! Everything here is plain text parsing of procfs; no kcmp calls.

use kcmp::{Error, Result};
use kcmp::{FdNum, Pid};
use rustix::fs::{openat, readlinkat, Dir, Mode, OFlags, CWD};
use std::fmt;
use std::os::fd::OwnedFd;

mod fdinfo;
pub(crate) use fdinfo::read_fdinfo_text;
pub use fdinfo::{read_fdinfo, EpollRegistration, FdInfo};

/// `PF_KTHREAD` in the `flags` field of /proc/PID/stat.
const PF_KTHREAD: u32 = 0x0020_0000;

/// The fields of /proc/PID/stat (or /proc/PID/task/TID/stat) that kcmp needs.
///
/// ```
/// let stat = kcmp_map::procfs::read_stat(kcmp::Pid::this()).unwrap();
/// assert_eq!(stat.state, 'R');
/// assert!(!stat.is_kernel_thread());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskStat {
    /// The pid (or tid).
    pub pid: Pid,
    /// The command name (`comm`), at most 15 bytes.
    pub comm: String,
    /// The state letter: R, S, D, T, t, Z, X, I, …
    pub state: char,
    /// The parent's pid (0 for the roots of the pid namespace).
    pub ppid: i32,
    /// The kernel's `task->flags`.
    pub flags: u32,
    /// Start time in clock ticks after boot: with the pid, it names one task
    /// for the life of the system.
    pub start_time: u64,
    /// The number of threads of its process.
    pub num_threads: u32,
}

impl TaskStat {
    /// Parses the text of a stat file.
    ///
    /// ```
    /// let line = "42 (my (odd) name) S 1 42 42 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 999 0 0";
    /// let s = kcmp_map::procfs::TaskStat::parse(line).unwrap();
    /// assert_eq!(s.comm, "my (odd) name");
    /// assert_eq!((s.state, s.ppid, s.start_time, s.num_threads), ('S', 1, 999, 1));
    /// ```
    pub fn parse(text: &str) -> Option<TaskStat> {
        let open = text.find('(')?;
        let close = text.rfind(')')?;
        let pid: i32 = text[..open].trim().parse().ok()?;
        let comm = text[open + 1..close].to_string();
        let mut rest = text[close + 1..].split_ascii_whitespace();
        let state = rest.next()?.chars().next()?;
        let ppid: i32 = rest.next()?.parse().ok()?;
        // Fields after ppid: pgrp(5) session(6) tty_nr(7) tpgid(8) flags(9) ... starttime(22).
        let mut rest = rest.skip(4);
        let flags: u32 = rest.next()?.parse().ok()?;
        let num_threads: u32 = rest.nth(10)?.parse().ok()?;
        let start_time: u64 = rest.nth(1)?.parse().ok()?;
        Some(TaskStat {
            pid: Pid::new(pid).ok()?,
            comm,
            state,
            ppid,
            flags,
            start_time,
            num_threads,
        })
    }

    /// A kernel thread (`PF_KTHREAD`): no mm, no fds of its own.
    pub fn is_kernel_thread(&self) -> bool {
        self.flags & PF_KTHREAD != 0
    }

    /// A zombie (exited, not yet reaped) or dead task.
    pub fn is_zombie(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }

    /// Stopped by a signal (`T`) or by a tracer (`t`).
    pub fn is_stopped(&self) -> bool {
        matches!(self.state, 'T' | 't')
    }
}

/// Reads a small /proc file with as few syscalls as possible: open, one
/// read into a stack buffer (more only for a longer file), close. std's
/// `read_to_string` stats the file and probes, six calls for a /proc stat.
pub(crate) fn read_to_string(path: &str) -> Result<String> {
    crate::freeze::step();
    let fd = openat(CWD, path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| Error::os(format!("open {path}"), e))?;
    let mut buf = [0u8; 1024];
    let mut out: Vec<u8> = Vec::new();
    loop {
        let n =
            rustix::io::read(&fd, &mut buf).map_err(|e| Error::os(format!("read {path}"), e))?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Reads /proc/PID/stat.
pub fn read_stat(pid: Pid) -> Result<TaskStat> {
    let path = format!("/proc/{pid}/stat");
    let text = read_to_string(&path)?;
    TaskStat::parse(&text)
        .ok_or_else(|| Error::os(format!("parse {path}"), rustix::io::Errno::INVAL))
}

/// Reads /proc/PID/stat of a process: [`Error::Vanished`] when `pid` names
/// a thread that is not its group's leader (a pid listed as a process and
/// reused by such a thread reads as well), told by its `exit_signal`
/// (field 38), -1 for those threads only (a leader never has it, even
/// after `exec` made another thread the leader).
pub(crate) fn read_process_stat(pid: Pid) -> Result<TaskStat> {
    let path = format!("/proc/{pid}/stat");
    let text = read_to_string(&path)?;
    let thread = text
        .rfind(')')
        .and_then(|close| text[close + 1..].split_ascii_whitespace().nth(35))
        .is_some_and(|exit_signal| exit_signal == "-1");
    if thread {
        return Err(Error::Vanished { pid: pid.get() });
    }
    TaskStat::parse(&text)
        .ok_or_else(|| Error::os(format!("parse {path}"), rustix::io::Errno::INVAL))
}

/// Reads /proc/PID/task/TID/stat.
pub fn read_task_stat(pid: Pid, tid: Pid) -> Result<TaskStat> {
    let path = format!("/proc/{pid}/task/{tid}/stat");
    let text = read_to_string(&path)?;
    TaskStat::parse(&text)
        .ok_or_else(|| Error::os(format!("parse {path}"), rustix::io::Errno::INVAL))
}

fn numeric_entries(path: &str) -> Result<Vec<i32>> {
    let dirfd = openat(
        CWD,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::os(format!("open {path}"), e))?;
    numeric_entries_of(dirfd, path)
}

fn numeric_entries_of(dirfd: OwnedFd, path: &str) -> Result<Vec<i32>> {
    crate::freeze::step();
    let mut dir = Dir::new(dirfd).map_err(|e| Error::os(format!("read {path}"), e))?;
    let mut out = Vec::new();
    while let Some(entry) = dir.read() {
        let entry = entry.map_err(|e| Error::os(format!("read {path}"), e))?;
        if let Some(n) = parse_decimal(entry.file_name().to_bytes()) {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

fn parse_decimal(bytes: &[u8]) -> Option<i32> {
    if bytes.is_empty() || bytes.len() > 10 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// Every process visible in /proc, ascending.
///
/// ```
/// let pids = kcmp_map::procfs::list_pids().unwrap();
/// assert!(pids.contains(&kcmp::Pid::this()));
/// ```
pub fn list_pids() -> Result<Vec<Pid>> {
    Ok(numeric_entries("/proc")?
        .into_iter()
        .filter_map(|n| Pid::new(n).ok())
        .collect())
}

/// The thread ids of a process, ascending (the leader's tid is its pid).
///
/// ```
/// let me = kcmp::Pid::this();
/// assert!(kcmp_map::procfs::list_tids(me).unwrap().contains(&me));
/// ```
pub fn list_tids(pid: Pid) -> Result<Vec<Pid>> {
    Ok(numeric_entries(&format!("/proc/{pid}/task"))?
        .into_iter()
        .filter_map(|n| Pid::new(n).ok())
        .collect())
}

/// What an fd refers to, classified from its /proc/PID/fd/N link text.
///
/// ```
/// use kcmp_map::procfs::FdTarget;
/// assert_eq!(FdTarget::parse("pipe:[1234]"), FdTarget::Pipe(1234));
/// assert_eq!(FdTarget::parse("socket:[77]"), FdTarget::Socket(77));
/// assert_eq!(FdTarget::parse("anon_inode:[eventfd]"), FdTarget::AnonInode("[eventfd]".into()));
/// assert_eq!(FdTarget::parse("/tmp/x (deleted)"), FdTarget::Path("/tmp/x (deleted)".into()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FdTarget {
    /// `socket:[ino]`: a socket inode has exactly one open file description.
    Socket(u64),
    /// `pipe:[ino]`: both ends of a pipe share the inode.
    Pipe(u64),
    /// `anon_inode:…`: eventfd, epoll, timerfd, signalfd, … share one inode.
    AnonInode(String),
    /// A path (possibly with ` (deleted)`).
    Path(String),
    /// Anything else (`net:[…]`, `mnt:[…]`, …), kept verbatim.
    Other(String),
}

impl FdTarget {
    /// Whether closing a file of this kind may call a filesystem's `flush`
    /// (FUSE, NFS: a server round trip). Pipes, sockets and anonymous
    /// inodes never do; paths and anything unknown may.
    ///
    /// ```
    /// use kcmp_map::procfs::FdTarget;
    /// assert!(!FdTarget::parse("pipe:[7]").may_flush());
    /// assert!(FdTarget::parse("/mnt/fuse/f").may_flush());
    /// ```
    pub fn may_flush(&self) -> bool {
        !matches!(
            self,
            FdTarget::Socket(_) | FdTarget::Pipe(_) | FdTarget::AnonInode(_)
        )
    }

    /// Classifies a link text.
    pub fn parse(link: &str) -> FdTarget {
        fn bracketed(s: &str, prefix: &str) -> Option<u64> {
            s.strip_prefix(prefix)?
                .strip_prefix('[')?
                .strip_suffix(']')?
                .parse()
                .ok()
        }
        if let Some(ino) = bracketed(link, "socket:") {
            FdTarget::Socket(ino)
        } else if let Some(ino) = bracketed(link, "pipe:") {
            FdTarget::Pipe(ino)
        } else if let Some(name) = link.strip_prefix("anon_inode:") {
            FdTarget::AnonInode(name.to_string())
        } else if link.starts_with('/') {
            FdTarget::Path(link.to_string())
        } else {
            FdTarget::Other(link.to_string())
        }
    }
}

impl fmt::Display for FdTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FdTarget::Socket(ino) => write!(f, "socket:[{ino}]"),
            FdTarget::Pipe(ino) => write!(f, "pipe:[{ino}]"),
            FdTarget::AnonInode(name) => write!(f, "anon_inode:{name}"),
            FdTarget::Path(p) | FdTarget::Other(p) => f.write_str(p),
        }
    }
}

/// A key that every fd of one open file description shares: the link text,
/// without a ` (deleted)` suffix (a file may be unlinked between two reads).
///
/// Equal keys do not prove one description (two `open()`s of one file have
/// the same key); different keys prove different descriptions, except for a
/// file renamed during the inspection.
///
/// ```
/// assert_eq!(kcmp_map::procfs::bucket_key("/tmp/a (deleted)"), "/tmp/a");
/// assert_eq!(kcmp_map::procfs::bucket_key("pipe:[5]"), "pipe:[5]");
/// ```
pub fn bucket_key(link: &str) -> &str {
    link.strip_suffix(" (deleted)").unwrap_or(link)
}

/// One open fd of a process and its link text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdEntry {
    /// The fd number.
    pub fd: FdNum,
    /// The /proc/PID/fd/N link text, lossy UTF-8 (U+FFFD for each invalid
    /// byte); [`FdEntry::target_bytes`] has the exact bytes.
    pub target: String,
    /// The link's bytes, kept only when they are not valid UTF-8.
    raw: Option<Box<[u8]>>,
}

impl FdEntry {
    /// An entry for fd `fd` whose link reads `link` (any bytes).
    ///
    /// ```
    /// use kcmp_map::procfs::FdEntry;
    /// let e = FdEntry::new(kcmp::FdNum::new(3).unwrap(), b"/tmp/a\xff".to_vec());
    /// assert_eq!(e.target, "/tmp/a\u{fffd}");
    /// assert_eq!(e.target_bytes(), b"/tmp/a\xff");
    /// assert!(!e.target_is_utf8());
    /// ```
    pub fn new(fd: FdNum, link: Vec<u8>) -> FdEntry {
        let (target, raw) = link_text(link);
        FdEntry { fd, target, raw }
    }

    /// The exact bytes of the link text (`target`'s bytes when it is valid
    /// UTF-8).
    pub fn target_bytes(&self) -> &[u8] {
        self.raw.as_deref().unwrap_or(self.target.as_bytes())
    }

    /// Whether the link text is valid UTF-8 (then `target` is exact).
    pub fn target_is_utf8(&self) -> bool {
        self.raw.is_none()
    }

    /// The entry's parts: fd, lossy text, exact bytes when not UTF-8.
    pub(crate) fn into_parts(self) -> (FdNum, String, Option<Box<[u8]>>) {
        (self.fd, self.target, self.raw)
    }
}

/// A link's text (lossy UTF-8) and its bytes when they are not valid UTF-8:
/// no copy, no allocation beyond the link's own when it is valid.
pub(crate) fn link_text(link: Vec<u8>) -> (String, Option<Box<[u8]>>) {
    match String::from_utf8(link) {
        Ok(text) => (text, None),
        Err(e) => {
            let raw = e.into_bytes();
            let text = String::from_utf8_lossy(&raw).into_owned();
            (text, Some(raw.into_boxed_slice()))
        }
    }
}

/// Lists the open fds of a process (or thread) with their link texts.
///
/// An fd closed between the directory read and its readlink is left out.
/// Needs ptrace read access to the process: `EACCES` otherwise.
///
/// ```
/// let fds = kcmp_map::procfs::list_fds(kcmp::Pid::this()).unwrap();
/// assert!(fds.iter().any(|e| e.fd.get() == 0));
/// ```
pub fn list_fds(pid: Pid) -> Result<Vec<FdEntry>> {
    list_fds_at(&format!("/proc/{pid}/fd"))
}

/// Like [`list_fds`] for one thread: /proc/PID/task/TID/fd.
pub fn list_task_fds(pid: Pid, tid: Pid) -> Result<Vec<FdEntry>> {
    list_fds_at(&format!("/proc/{pid}/task/{tid}/fd"))
}

/// An fd whose link could not be read, and why.
pub(crate) type UnreadableFd = (FdNum, Error);

/// Like [`list_fds`], but an fd whose link cannot be read (a path longer
/// than `PATH_MAX`: `ENAMETOOLONG`) is returned apart with its error,
/// never the whole process's failure: one such fd would hide a process.
pub(crate) fn list_fds_lenient(pid: Pid) -> Result<(Vec<FdEntry>, Vec<UnreadableFd>)> {
    let dir = FdDir::open(pid)?;
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for fd in dir.fds()? {
        match dir.entry(fd) {
            Ok(Some(entry)) => out.push(entry),
            Ok(None) => continue, // closed meanwhile
            Err(e) if e.is_gone() => return Err(e),
            Err(e) => bad.push((fd, e)),
        }
    }
    Ok((out, bad))
}

fn list_fds_at(path: &str) -> Result<Vec<FdEntry>> {
    let dir = FdDir::open_path(path)?;
    let mut out = Vec::new();
    for fd in dir.fds()? {
        match dir.entry(fd) {
            Ok(Some(entry)) => out.push(entry),
            Ok(None) => continue, // closed meanwhile
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// An open /proc/PID/fd (or /proc/PID/task/TID/fd) directory: the fd
/// numbers of a task, and what each refers to, read separately so that a
/// caller can skip the readlink of an fd it can identify otherwise.
///
/// ```
/// use kcmp_map::procfs::FdDir;
/// let dir = FdDir::open(kcmp::Pid::this()).unwrap();
/// let fds = dir.fds().unwrap();
/// assert!(fds.iter().any(|f| f.get() == 0));
/// assert!(dir.readlink(fds[0]).unwrap().is_some());
/// ```
#[derive(Debug)]
pub struct FdDir {
    fd: OwnedFd,
    path: String,
}

impl FdDir {
    /// Opens /proc/PID/fd. Needs ptrace read access (`EACCES` otherwise).
    pub fn open(pid: Pid) -> Result<Self> {
        Self::open_path(&format!("/proc/{pid}/fd"))
    }

    /// Opens /proc/PID/task/TID/fd.
    pub fn open_task(pid: Pid, tid: Pid) -> Result<Self> {
        Self::open_path(&format!("/proc/{pid}/task/{tid}/fd"))
    }

    fn open_path(path: &str) -> Result<Self> {
        let fd = openat(
            CWD,
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::os(format!("open {path}"), e))?;
        Ok(FdDir {
            fd,
            path: path.to_string(),
        })
    }

    /// The number of the directory's own fd in this process (a listing of
    /// this very process shows it).
    pub fn own_number(&self) -> FdNum {
        FdNum::new(std::os::fd::AsRawFd::as_raw_fd(&self.fd)).expect("an open fd is non-negative")
    }

    /// The open fd numbers, ascending.
    pub fn fds(&self) -> Result<Vec<FdNum>> {
        crate::freeze::step();
        let path = &self.path;
        let mut dir = Dir::read_from(&self.fd).map_err(|e| Error::os(format!("read {path}"), e))?;
        let mut out = Vec::new();
        while let Some(entry) = dir.read() {
            let entry = entry.map_err(|e| Error::os(format!("read {path}"), e))?;
            if let Some(n) = parse_decimal(entry.file_name().to_bytes()) {
                out.push(FdNum::new(n)?);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// The link text of one fd (lossy UTF-8), or `None` when it is no
    /// longer open. [`FdDir::entry`] keeps the exact bytes.
    pub fn readlink(&self, fd: FdNum) -> Result<Option<String>> {
        Ok(self.entry(fd)?.map(|e| e.target))
    }

    /// One fd and its link (text and exact bytes), or `None` when it is no
    /// longer open.
    pub fn entry(&self, fd: FdNum) -> Result<Option<FdEntry>> {
        crate::freeze::step();
        let mut name = fd.get().to_string();
        match readlinkat(&self.fd, name.as_str(), Vec::with_capacity(64)) {
            Ok(link) => Ok(Some(FdEntry::new(fd, link.into_bytes()))),
            Err(e) if e == rustix::io::Errno::NOENT => Ok(None),
            Err(e) => {
                name.insert(0, '/');
                Err(Error::os(format!("readlink {}{name}", self.path), e))
            }
        }
    }
}

/// What fd `fd` of `pid` refers to (its /proc/PID/fd/N link text), with
/// errors that say what they mean: `EBADF` when the fd is not open, `ESRCH`
/// when there is no such process, `EPERM` when access is refused.
///
/// ```
/// let me = kcmp::Pid::this();
/// assert!(kcmp_map::procfs::fd_target(me, kcmp::FdNum::new(0).unwrap()).is_ok());
/// let err = kcmp_map::procfs::fd_target(me, kcmp::FdNum::new(1_000_000).unwrap()).unwrap_err();
/// assert_eq!(err.errno_name(), Some("EBADF"));
/// ```
pub fn fd_target(pid: Pid, fd: FdNum) -> Result<String> {
    crate::freeze::step();
    let path = format!("/proc/{pid}/fd/{fd}");
    match std::fs::read_link(&path) {
        Ok(t) => Ok(t.to_string_lossy().into_owned()),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => match read_stat(pid) {
            Ok(_) => Err(Error::os(
                format!("fd {fd} is not open in process {pid}"),
                rustix::io::Errno::BADF,
            )),
            Err(_) => Err(Error::os(
                format!("no process {pid}"),
                rustix::io::Errno::SRCH,
            )),
        },
        Err(e) if e.raw_os_error() == Some(libc::EACCES) => Err(Error::os(
            format!("cannot read {path} (ptrace read access to process {pid} refused)"),
            rustix::io::Errno::ACCESS,
        )),
        Err(e) => Err(Error::io(format!("readlink {path}"), &e)),
    }
}

/// Reads one `/proc/PID/status` field (`"TracerPid"`, `"Seccomp"`, …).
///
/// ```
/// let v = kcmp_map::procfs::read_status_field(kcmp::Pid::this(), "Tgid").unwrap();
/// assert_eq!(v, Some(std::process::id().to_string()));
/// ```
pub fn read_status_field(pid: Pid, field: &str) -> Result<Option<String>> {
    let text = read_to_string(&format!("/proc/{pid}/status"))?;
    Ok(text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k == field).then(|| v.trim().to_string())
    }))
}
