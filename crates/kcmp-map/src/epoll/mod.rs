//! Epoll registrations resolved to the open file descriptions they watch.
//!
//! An epoll interest list holds open file *descriptions*, but
//! `/proc/PID/fdinfo/EPFD` shows only the fd *number* each one was registered
//! under (`tfd:` lines). A registration outlives the `close()` of that number
//! as long as the description is open anywhere, and several registrations can
//! share one number (register, `dup2` another file onto the number, register
//! again). `KCMP_EPOLL_TFD` names a registration by `(epfd, tfd, toff)` — toff
//! being its index among the registrations under `tfd`, in the kernel's order
//! — and compares its file with any fd of any process. This module uses it to
//! answer, for every registration: which `(pid, fd)` pairs hold the watched
//! description, and does the number `tfd` still refer to it (otherwise the
//! registration is *stale*: a classic source of ghost events).
//!
//! # The kernel's order
//! The kernel keeps registrations in a red-black tree ordered by (file, fd);
//! both the fdinfo lines and `KCMP_EPOLL_TFD`'s `toff` walk that tree from
//! its first node, so a registration's toff is its index among the fdinfo
//! lines with the same `tfd` (checked against the kernel by this crate's
//! tests).
//!
//! # Cost
//! The fds of the visible processes are listed (as a scan does), and only
//! the fds whose inode is a registration's inode are candidates: pipes and
//! sockets carry the inode in their link text; for other link texts the
//! inode comes from one holder's `/proc/PID/fdinfo/N` (`ino`, `mnt_id`,
//! the device from the mount table), once per distinct text, and only when
//! a registration is not found among pipes and sockets. No file is ever
//! `stat`ed or opened through `/proc/PID/fd/N`: a hung FUSE or NFS server
//! cannot block the inspection. Candidates with one link text are grouped
//! into descriptions by kcmp's ordering, and each registration is then
//! placed by binary search (`log2(descriptions)` calls).
//!
//! ```no_run
//! use kcmp::{FdNum, Pid};
//! use kcmp_map::epoll::epoll_targets;
//! let found = epoll_targets(Pid::new(1144)?, FdNum::new(5)?)?;
//! for t in found.targets.iter().filter(|t| t.stale) {
//!     println!("tfd {} (toff {}) is stale; held by {:?}", t.tfd, t.toff, t.holders);
//! }
//! # Ok::<(), kcmp::Error>(())
//! ```
//!
//! # Layout
//! The public types and functions are here; the steps live in submodules:
//! `registrations` (fdinfo's `tfd:` lines and their numbering), `inodes`
//! (bucket keys by inode), `index` (descriptions searchable by kcmp order),
//! `resolve` (one registration to its description, and staleness),
//! `targets` ([`epoll_targets`]) and `scan_section` ([`resolve_scan`]).

mod index;
mod inodes;
mod registrations;
mod resolve;
mod scan_section;
mod targets;

use crate::model::{FdRef, SharingMap, Skipped, SkippedFd};
use crate::procfs::EpollRegistration;
use kcmp::Result;
use kcmp::{EpollSlot, FdNum, Pid};
use serde::ser::{SerializeStruct, Serializer};
use serde::Serialize;

/// The link text of an epoll fd in /proc/PID/fd.
pub const EPOLL_LINK: &str = "anon_inode:[eventpoll]";

/// How many times [`epoll_targets`] inspects an epoll instance whose
/// registrations change while it is being inspected.
const ATTEMPTS: usize = 3;

/// One registration of an epoll instance: a `tfd:` line of its fdinfo with
/// its `toff`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The fd number the target was registered under.
    pub tfd: FdNum,
    /// Its index among the registrations under `tfd`, in the kernel's order.
    pub toff: u32,
    /// The event mask (the kernel adds `EPOLLERR | EPOLLHUP`).
    pub events: u32,
    /// The user data.
    pub data: u64,
    /// The target's file position when it was read.
    pub pos: i64,
    /// The target's inode number.
    pub ino: u64,
    /// The target's superblock device, in the kernel's encoding
    /// (major << 20 | minor).
    pub sdev: u32,
}

impl Registration {
    /// The `KCMP_EPOLL_TFD` slot naming this registration in epoll fd `epfd`.
    pub fn slot(&self, epfd: FdNum) -> EpollSlot {
        EpollSlot {
            epfd,
            tfd: self.tfd,
            toff: self.toff,
        }
    }
}

/// One registration resolved to the open file description it watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpollTarget {
    /// The fd number it was registered under.
    pub tfd: FdNum,
    /// Its index among the registrations under `tfd`.
    pub toff: u32,
    /// The event mask.
    pub events: u32,
    /// The user data.
    pub data: u64,
    /// The target's inode number.
    pub ino: u64,
    /// The target's superblock device (kernel encoding).
    pub sdev: u32,
    /// The watched description's link text (a path, `pipe:[ino]`, …), from
    /// one of its holders; `None` when no visible process holds it.
    pub target: Option<String>,
    /// True when `tfd` in the epoll's process no longer refers to the watched
    /// description: closed, or reused for another file.
    pub stale: bool,
    /// What `tfd` refers to now in the epoll's process (`None`: closed).
    pub tfd_now: Option<String>,
    /// Every visible (pid, fd) that refers to the watched description,
    /// sorted. Empty when none does (the description is kept open by
    /// something else: an in-flight `SCM_RIGHTS` message, a mapping, …).
    pub holders: Vec<FdRef>,
}

impl EpollTarget {
    /// Whether some visible (pid, fd) holds the watched description.
    pub fn held(&self) -> bool {
        !self.holders.is_empty()
    }
}

fn hex32(v: u32) -> String {
    format!("{v:#x}")
}

impl Serialize for EpollTarget {
    /// `{"tfd", "toff", "events": "0x…", "data": "0x…", "stale", "held",
    /// "holders": [{"pid", "fd"}], "target", "tfd_now", "ino", "sdev": "0x…"}`.
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("EpollTarget", 11)?;
        st.serialize_field("tfd", &self.tfd)?;
        st.serialize_field("toff", &self.toff)?;
        st.serialize_field("events", &hex32(self.events))?;
        st.serialize_field("data", &format!("{:#x}", self.data))?;
        st.serialize_field("stale", &self.stale)?;
        st.serialize_field("held", &self.held())?;
        st.serialize_field("holders", &self.holders)?;
        st.serialize_field("target", &self.target)?;
        st.serialize_field("tfd_now", &self.tfd_now)?;
        st.serialize_field("ino", &self.ino)?;
        st.serialize_field("sdev", &hex32(self.sdev))?;
        st.end()
    }
}

/// Every registration of one epoll instance, resolved (see [`epoll_targets`]).
#[derive(Debug, Clone, Serialize)]
pub struct EpollTargets {
    /// The process holding the epoll fd.
    pub pid: Pid,
    /// The epoll fd.
    pub epfd: FdNum,
    /// One entry per registration, in the kernel's order.
    pub targets: Vec<EpollTarget>,
    /// Processes whose fds could not be inspected (their holders may be
    /// missing), with the reason.
    pub skipped: Vec<Skipped>,
    /// Fds of inspected processes whose link could not be read (a path
    /// longer than `PATH_MAX`): each may be a holder that is missing.
    pub skipped_fds: Vec<SkippedFd>,
    /// kcmp(2) calls made.
    pub kcmp_calls: u64,
}

/// One epoll instance found by a scan (see [`resolve_scan`]).
#[derive(Debug, Clone, Serialize)]
pub struct EpollInstance {
    /// Its first holder's pid: registrations are read, and staleness
    /// judged, in this process's fd table.
    pub pid: Pid,
    /// The epoll fd in `pid`.
    pub epfd: FdNum,
    /// Every (pid, fd) of the scan holding this epoll description.
    pub holders: Vec<FdRef>,
    /// Its registrations, with holders among the scanned tasks.
    pub targets: Vec<EpollTarget>,
    /// Why the registrations could not be resolved (they changed during the
    /// inspection, or the epoll was closed), when they could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Numbers fdinfo's `tfd:` lines: each gets its index among the lines with
/// the same `tfd`, in the order given (the kernel's order).
///
/// ```
/// use kcmp_map::procfs::FdInfo;
/// let text = "tfd: 7 events: 19 data: 1 pos:0 ino:10 sdev:d\n\
///             tfd: 9 events: 19 data: 2 pos:0 ino:11 sdev:d\n\
///             tfd: 7 events: 19 data: 3 pos:0 ino:12 sdev:d\n";
/// let regs = kcmp_map::epoll::number_registrations(&FdInfo::parse(text).epoll_registrations);
/// let toffs: Vec<(i32, u32)> = regs.iter().map(|r| (r.tfd.get(), r.toff)).collect();
/// assert_eq!(toffs, [(7, 0), (9, 0), (7, 1)]);
/// ```
pub fn number_registrations(lines: &[EpollRegistration]) -> Vec<Registration> {
    registrations::number(lines)
}

/// Checks that `epfd` of `pid` is an open epoll fd: `ESRCH` when the
/// process does not exist, `EBADF` when the fd is not open, `EINVAL` when it
/// is not an epoll instance.
pub fn check_epoll_fd(pid: Pid, epfd: FdNum) -> Result<()> {
    registrations::check(pid, epfd)
}

/// The registrations of epoll fd `epfd` of `pid`, in the kernel's order,
/// numbered with their `toff`. Errors as [`check_epoll_fd`].
///
/// ```no_run
/// let regs = kcmp_map::epoll::registrations(kcmp::Pid::new(1144)?, kcmp::FdNum::new(5)?)?;
/// # Ok::<(), kcmp::Error>(())
/// ```
pub fn registrations(pid: Pid, epfd: FdNum) -> Result<Vec<Registration>> {
    registrations::read(pid, epfd)
}

/// Lists every registration of the epoll instance `epfd` of `pid` and
/// resolves each to the (pid, fd) pairs — in `pid` and in every other
/// visible process — that refer to the registered description, decided
/// with `KCMP_EPOLL_TFD`. The calling process is left out, unless it is
/// `pid`.
///
/// Errors: `ESRCH` (no such process), `EBADF` (`epfd` not open), `EINVAL`
/// ("fd N of process P is not an epoll instance"), `EPERM`/`EACCES`,
/// [`Error::Vanished`](kcmp::Error::Vanished) when `pid` exited meanwhile, `EAGAIN` when the
/// registrations changed during each of three attempts (freeze the process).
///
/// ```no_run
/// use kcmp::{FdNum, Pid};
/// use kcmp_map::epoll::epoll_targets;
/// let found = epoll_targets(Pid::new(1144)?, FdNum::new(5)?)?;
/// for t in &found.targets {
///     println!("tfd {} toff {} stale {} holders {:?}", t.tfd, t.toff, t.stale, t.holders);
/// }
/// # Ok::<(), kcmp::Error>(())
/// ```
pub fn epoll_targets(pid: Pid, epfd: FdNum) -> Result<EpollTargets> {
    targets::epoll_targets(pid, epfd)
}

/// The epoll section of a scan: every epoll instance among the scanned
/// tasks, each resolved like [`epoll_targets`] with holders restricted to
/// the scanned tasks.
///
/// An epoll description held by several (pid, fd) pairs (inherited by a
/// child, passed with `SCM_RIGHTS`) is one instance, listed once under its
/// first holder; staleness is judged in that holder's fd table. Instances
/// are in the scan's order of descriptions.
///
/// ```no_run
/// use kcmp_map::scan::{scan, ScanOptions};
/// let map = scan(&ScanOptions { trees: vec![kcmp::Pid::new(1144)?], ..Default::default() })?;
/// for e in kcmp_map::epoll::resolve_scan(&map) {
///     for t in e.targets.iter().filter(|t| t.stale) {
///         println!("{} epfd {}: tfd {} is stale", e.pid, e.epfd, t.tfd);
///     }
/// }
/// # Ok::<(), kcmp::Error>(())
/// ```
pub fn resolve_scan(map: &SharingMap) -> Vec<EpollInstance> {
    resolve_scan_counted(map).0
}

/// [`resolve_scan`], and the number of kcmp calls it made.
pub fn resolve_scan_counted(map: &SharingMap) -> (Vec<EpollInstance>, u64) {
    scan_section::resolve_scan_counted(map)
}
