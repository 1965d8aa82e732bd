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

use crate::model::{FdRef, SharingMap, Skipped};
use crate::procfs::{self, EpollRegistration, FdTarget};
use kcmp::grouping::OrderedGroups;
use kcmp::KcmpOrdering;
use kcmp::ProcessHandle;
use kcmp::{compare_epoll_target, compare_files, EpollSlot, FdNum, Pid};
use kcmp::{Error, Result};
use rustix::io::Errno;
use serde::ser::{SerializeStruct, Serializer};
use serde::Serialize;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap, HashSet};

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

    /// The same registration, ignoring the position (which moves by itself).
    fn same_as(&self, other: &Registration) -> bool {
        (
            self.tfd,
            self.toff,
            self.events,
            self.data,
            self.ino,
            self.sdev,
        ) == (
            other.tfd,
            other.toff,
            other.events,
            other.data,
            other.ino,
            other.sdev,
        )
    }
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
    let mut seen: HashMap<i32, u32> = HashMap::new();
    lines
        .iter()
        .filter_map(|l| {
            let tfd = FdNum::new(l.tfd).ok()?;
            let n = seen.entry(l.tfd).or_insert(0);
            let toff = *n;
            *n += 1;
            Some(Registration {
                tfd,
                toff,
                events: l.events,
                data: l.data,
                pos: l.pos,
                ino: l.ino,
                sdev: l.sdev,
            })
        })
        .collect()
}

fn not_open(pid: Pid, fd: FdNum) -> Error {
    Error::os(format!("fd {fd} of process {pid} is not open"), Errno::BADF)
}

/// Checks that `epfd` of `pid` is an open epoll fd: `ESRCH` when the
/// process does not exist, `EBADF` when the fd is not open, `EINVAL` when it
/// is not an epoll instance.
pub fn check_epoll_fd(pid: Pid, epfd: FdNum) -> Result<()> {
    let link = procfs::fd_target(pid, epfd)?;
    if link == EPOLL_LINK {
        Ok(())
    } else {
        Err(Error::os(
            format!("fd {epfd} of process {pid} is not an epoll instance (it is {link})"),
            Errno::INVAL,
        ))
    }
}

/// The registrations of epoll fd `epfd` of `pid`, in the kernel's order,
/// numbered with their `toff`. Errors as [`check_epoll_fd`].
///
/// ```no_run
/// let regs = kcmp_map::epoll::registrations(kcmp::Pid::new(1144)?, kcmp::FdNum::new(5)?)?;
/// # Ok::<(), kcmp::Error>(())
/// ```
pub fn registrations(pid: Pid, epfd: FdNum) -> Result<Vec<Registration>> {
    check_epoll_fd(pid, epfd)?;
    let info = procfs::read_fdinfo(pid, epfd).map_err(|e| {
        if e.errno() == Some(Errno::NOENT) {
            not_open(pid, epfd)
        } else {
            e
        }
    })?;
    Ok(number_registrations(&info.epoll_registrations))
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

/// `Less` <-> `Greater`: the kernel answers how pid1's file orders against
/// the registered one; searches need the other way round.
fn reversed(o: KcmpOrdering) -> KcmpOrdering {
    match o {
        KcmpOrdering::Less => KcmpOrdering::Greater,
        KcmpOrdering::Greater => KcmpOrdering::Less,
        other => other,
    }
}

fn kernel_dev(sdev: u32) -> (u32, u32) {
    (sdev >> 20, sdev & 0xf_ffff)
}

/// Where candidates for a registration come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Phase {
    /// Pipes and sockets: the inode is in the link text.
    LinkText,
    /// `anon_inode:…`: fdinfo of one holder (few distinct texts).
    Anon,
    /// Paths and the rest: fdinfo of one holder per text.
    Path,
}

/// A bucket key (by index) with this inode, and its device (major, minor)
/// when it was learnt from the holder's mount table.
type KeyInode = (usize, Option<(u32, u32)>);

/// Descriptions of one bucket key in kcmp order, and whether the order held.
type Grouped = (Vec<Vec<FdRef>>, bool);

/// Bucket keys by inode, learnt lazily from fdinfo.
struct InoIndex {
    /// (key, its holders (read in turn until one is still open), phase)
    keys: Vec<(String, Vec<FdRef>, Phase)>,
    /// inode -> (key index, device (major, minor) when known)
    by_ino: HashMap<u64, Vec<KeyInode>>,
    statted: HashSet<Phase>,
    mounts: crate::mounts::FdInodes,
}

impl InoIndex {
    fn new(keys: Vec<(String, Vec<FdRef>)>) -> Self {
        let mut index = InoIndex {
            keys: Vec::with_capacity(keys.len()),
            by_ino: HashMap::new(),
            statted: HashSet::new(),
            mounts: crate::mounts::FdInodes::default(),
        };
        for (key, samples) in keys {
            let phase = match FdTarget::parse(&key) {
                FdTarget::Pipe(ino) | FdTarget::Socket(ino) => {
                    index
                        .by_ino
                        .entry(ino)
                        .or_default()
                        .push((index.keys.len(), None));
                    Phase::LinkText
                }
                FdTarget::AnonInode(_) => Phase::Anon,
                _ => Phase::Path,
            };
            index.keys.push((key, samples, phase));
        }
        index.keys.shrink_to_fit();
        index
    }

    fn stat_phase(&mut self, phase: Phase) {
        if !self.statted.insert(phase) {
            return;
        }
        for i in 0..self.keys.len() {
            let (key, samples, p) = &self.keys[i];
            if *p != phase {
                continue;
            }
            // The first holder whose fd still shows this key after its
            // fdinfo was read (an fd closed, or reused for another file, is
            // passed over).
            for m in samples {
                let Some((ino, dev)) = self.mounts.inode_of(m.pid, m.fd) else {
                    continue;
                };
                let still = procfs::fd_target(m.pid, m.fd)
                    .is_ok_and(|l| procfs::bucket_key(&l) == key.as_str());
                if still {
                    self.by_ino.entry(ino).or_default().push((i, dev));
                    break;
                }
            }
        }
    }

    /// The keys of `phase` whose inode (and device, when known) is the
    /// registration's.
    fn candidates(&mut self, reg: &Registration, phase: Phase) -> Vec<&str> {
        if phase != Phase::LinkText {
            self.stat_phase(phase);
        }
        let dev = kernel_dev(reg.sdev);
        let Some(entries) = self.by_ino.get(&reg.ino) else {
            return Vec::new();
        };
        let mut out: Vec<&str> = entries
            .iter()
            .filter(|(i, d)| self.keys[*i].2 == phase && d.is_none_or(|d| d == dev))
            .map(|(i, _)| self.keys[*i].0.as_str())
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// A set of open file descriptions that can be searched by kcmp order.
trait Descriptions {
    /// Finds the description whose members order equal to the probe;
    /// `cmp(member)` says how the probe orders against the member. Returns
    /// its link text and members.
    fn find(
        &self,
        key: &str,
        cmp: &mut dyn FnMut(&FdRef) -> Result<KcmpOrdering>,
    ) -> Result<Option<(String, Vec<FdRef>)>>;
}

/// Binary search over groups in kcmp order; a group whose every member
/// fails to compare (closed meanwhile) is skipped by a linear search.
fn search_groups(
    groups: &[Vec<FdRef>],
    ordered: bool,
    cmp: &mut dyn FnMut(&FdRef) -> Result<KcmpOrdering>,
) -> Option<usize> {
    let mut probe = |g: &[FdRef]| -> Option<KcmpOrdering> { g.iter().find_map(|m| cmp(m).ok()) };
    if ordered {
        let (mut lo, mut hi) = (0usize, groups.len());
        let mut clean = true;
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match probe(&groups[mid]) {
                Some(KcmpOrdering::Equal) => return Some(mid),
                Some(KcmpOrdering::Less) => hi = mid,
                Some(KcmpOrdering::Greater) => lo = mid + 1,
                _ => {
                    clean = false;
                    break;
                }
            }
        }
        if clean {
            return None;
        }
    }
    (0..groups.len()).find(|&i| probe(&groups[i]) == Some(KcmpOrdering::Equal))
}

/// Candidate fds of the whole host, grouped into descriptions on demand.
struct HostIndex<'a> {
    rows: HashMap<String, Vec<(FdRef, String)>>,
    groups: RefCell<HashMap<String, Grouped>>,
    calls: &'a Cell<u64>,
}

impl HostIndex<'_> {
    fn grouped(&self, key: &str) -> Grouped {
        if let Some(g) = self.groups.borrow().get(key) {
            return g.clone();
        }
        let rows = self.rows.get(key).map(Vec::as_slice).unwrap_or_default();
        let result = if rows.is_empty() {
            (Vec::new(), true)
        } else if matches!(FdTarget::parse(key), FdTarget::Socket(_)) || rows.len() <= 1 {
            // A socket inode has exactly one description.
            let members: Vec<FdRef> = rows.iter().map(|r| r.0).collect();
            (vec![members], true)
        } else {
            let mut groups = OrderedGroups::new();
            let mut cmp = |a: FdRef, b: FdRef| {
                self.calls.set(self.calls.get() + 1);
                compare_files(a.pid, a.fd, b.pid, b.fd)
            };
            for r in rows {
                // An fd closed meanwhile is left out.
                let _ = groups.insert(r.0, &mut cmp);
            }
            let ordered = groups.is_ordered();
            (groups.into_groups(), ordered)
        };
        self.groups
            .borrow_mut()
            .insert(key.to_string(), result.clone());
        result
    }
}

impl Descriptions for HostIndex<'_> {
    fn find(
        &self,
        key: &str,
        cmp: &mut dyn FnMut(&FdRef) -> Result<KcmpOrdering>,
    ) -> Result<Option<(String, Vec<FdRef>)>> {
        let (groups, ordered) = self.grouped(key);
        Ok(search_groups(&groups, ordered, cmp).map(|i| {
            let mut members = groups[i].clone();
            members.sort_unstable();
            let target = self.rows[key]
                .iter()
                .find(|r| r.0 == members[0])
                .map(|r| r.1.clone())
                .unwrap_or_else(|| key.to_string());
            (target, members)
        }))
    }
}

/// A scan's descriptions, by bucket key.
struct ScanIndex<'m> {
    map: &'m SharingMap,
    by_key: HashMap<&'m str, Vec<usize>>,
}

impl<'m> ScanIndex<'m> {
    fn new(map: &'m SharingMap) -> Self {
        let mut by_key: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, d) in map.open_files.iter().enumerate() {
            by_key
                .entry(procfs::bucket_key(&d.target))
                .or_default()
                .push(i);
        }
        ScanIndex { map, by_key }
    }

    fn keys(&self) -> Vec<(String, Vec<FdRef>)> {
        let mut keys: Vec<(String, Vec<FdRef>)> = self
            .by_key
            .iter()
            .map(|(k, ds)| {
                let samples = ds
                    .iter()
                    .flat_map(|&d| self.map.open_files[d].members.iter())
                    .copied()
                    .collect();
                (k.to_string(), samples)
            })
            .collect();
        keys.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        keys
    }
}

impl Descriptions for ScanIndex<'_> {
    fn find(
        &self,
        key: &str,
        cmp: &mut dyn FnMut(&FdRef) -> Result<KcmpOrdering>,
    ) -> Result<Option<(String, Vec<FdRef>)>> {
        let found = match self.map.find_description(key, &mut *cmp) {
            Ok(d) => d,
            Err(_) => {
                // A description whose holders all closed their fds: search
                // linearly, passing over it.
                let ds = self.by_key.get(key).map(Vec::as_slice).unwrap_or_default();
                let groups: Vec<Vec<FdRef>> = ds
                    .iter()
                    .map(|&d| self.map.open_files[d].members.clone())
                    .collect();
                search_groups(&groups, false, cmp).map(|i| &self.map.open_files[ds[i]])
            }
        };
        Ok(found.map(|d| (d.target.clone(), d.members.clone())))
    }
}

/// Whether `tfd` in `pid` refers to the registration's description now,
/// and what it refers to. Errors: the registration or the epoll vanished.
///
/// `tfd_now` is what `tfd` refers to (`None`: closed). When the watched
/// description's holders are known, `KCMP_FILE` against one of them decides
/// (cheaper than `KCMP_EPOLL_TFD`, which walks the interest list).
fn staleness(
    pid: Pid,
    slot: EpollSlot,
    tfd_now: Option<String>,
    holders: &[FdRef],
    calls: &Cell<u64>,
) -> Result<(bool, Option<String>)> {
    if tfd_now.is_none() {
        return Ok((true, None));
    }
    let me = FdRef { pid, fd: slot.tfd };
    if holders.binary_search(&me).is_ok() {
        return Ok((false, tfd_now));
    }
    for h in holders {
        calls.set(calls.get() + 1);
        match compare_files(pid, slot.tfd, h.pid, h.fd) {
            Ok(o) => return Ok((!o.is_equal(), tfd_now)),
            Err(e) if e.errno() == Some(Errno::BADF) => {
                // Either side closed meanwhile: is it ours?
                if procfs::fd_target(pid, slot.tfd).is_err() {
                    return Ok((true, None));
                }
            }
            Err(e) => return Err(e),
        }
    }
    calls.set(calls.get() + 1);
    match compare_epoll_target(pid, slot.tfd, pid, slot) {
        Ok(o) => Ok((!o.is_equal(), tfd_now)),
        // tfd closed between the readlink and kcmp (checked before the epoll fd).
        Err(e) if e.errno() == Some(Errno::BADF) && check_slot(pid, slot, calls).is_ok() => {
            Ok((true, None))
        }
        Err(e) => Err(e),
    }
}

/// Is the registration still there? (The epoll fd compared with the
/// registration: only the epoll side can fail.)
fn check_slot(pid: Pid, slot: EpollSlot, calls: &Cell<u64>) -> Result<()> {
    calls.set(calls.get() + 1);
    compare_epoll_target(pid, slot.epfd, pid, slot).map(|_| ())
}

/// Resolves every registration of `epfd` of `pid` against `index`.
fn resolve(
    index: &dyn Descriptions,
    inos: &mut InoIndex,
    pid: Pid,
    epfd: FdNum,
    regs: &[Registration],
    calls: &Cell<u64>,
) -> Result<Vec<EpollTarget>> {
    let mut out = Vec::with_capacity(regs.len());
    // What each registered number refers to now (many registrations may
    // share one number).
    let mut now: HashMap<FdNum, Option<String>> = HashMap::new();
    for reg in regs {
        crate::freeze::step();
        let slot = reg.slot(epfd);
        let mut found = None;
        let mut cmp = |m: &FdRef| {
            crate::freeze::step();
            calls.set(calls.get() + 1);
            compare_epoll_target(m.pid, m.fd, pid, slot).map(reversed)
        };
        'phases: for phase in [Phase::LinkText, Phase::Anon, Phase::Path] {
            for key in inos.candidates(reg, phase) {
                if let Some(d) = index.find(key, &mut cmp)? {
                    found = Some(d);
                    break 'phases;
                }
            }
        }
        if found.is_none() {
            // Not held by any visible fd, or the registration itself is gone.
            check_slot(pid, slot, calls)?;
        }
        let (target, holders) = match found {
            Some((t, h)) => (Some(t), h),
            None => (None, Vec::new()),
        };
        let tfd_now = now
            .entry(reg.tfd)
            .or_insert_with(|| procfs::fd_target(pid, reg.tfd).ok())
            .clone();
        let (stale, tfd_now) = staleness(pid, slot, tfd_now, &holders, calls)?;
        let (target, holders) = if holders.is_empty() && !stale {
            // KCMP_EPOLL_TFD proved that tfd holds it although the listing
            // did not show it (opened after the listing): one holder at least.
            (tfd_now.clone(), vec![FdRef { pid, fd: reg.tfd }])
        } else {
            (target, holders)
        };
        out.push(EpollTarget {
            tfd: reg.tfd,
            toff: reg.toff,
            events: reg.events,
            data: reg.data,
            ino: reg.ino,
            sdev: reg.sdev,
            target,
            stale,
            tfd_now,
            holders,
        });
    }
    Ok(out)
}

fn skipped(pid: Pid, err: &Error) -> Skipped {
    let reason = if err.is_permission() {
        "EPERM"
    } else if err.is_gone() {
        "ESRCH"
    } else {
        err.errno_name().unwrap_or("E?")
    };
    Skipped {
        pid,
        reason: reason.to_string(),
        detail: format!("list fds: {err}"),
    }
}

/// Lists every registration of the epoll instance `epfd` of `pid` and
/// resolves each to the (pid, fd) pairs — in `pid` and in every other
/// visible process — that refer to the registered description, decided
/// with `KCMP_EPOLL_TFD`. The calling process is left out, unless it is
/// `pid`.
///
/// Errors: `ESRCH` (no such process), `EBADF` (`epfd` not open), `EINVAL`
/// ("fd N of process P is not an epoll instance"), `EPERM`/`EACCES`,
/// [`Error::Vanished`] when `pid` exited meanwhile, `EAGAIN` when the
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
    crate::pidns::check()?;
    check_epoll_fd(pid, epfd)?;
    let handle = ProcessHandle::open(pid)?;
    let me = Pid::this();
    let calls = Cell::new(0u64);
    for _ in 0..ATTEMPTS {
        let regs = registrations(pid, epfd)?;
        let needed: HashSet<u64> = regs.iter().map(|r| r.ino).collect();
        // List the fds of every visible process.
        let mut pids: Vec<Pid> = procfs::list_pids()?
            .into_iter()
            .filter(|&p| p != me || p == pid)
            .collect();
        if !pids.contains(&pid) {
            pids.push(pid); // a thread (its own fd table when it has one)
        }
        let pids: &[Pid] = if regs.is_empty() { &[] } else { &pids };
        // The start time (read before the fds) names the process for good:
        // holders whose pid names another process at the end are discarded.
        let listed = crate::parallel::parallel_map(pids.len(), crate::parallel::workers(0), |i| {
            let stat = procfs::read_stat(pids[i])?;
            if stat.ppid == me.get() && stat.comm == crate::freeze::FREEZER_COMM {
                // Our own freezer is no holder of anything inspected.
                return Err(Error::os("kcmp's own freezer", Errno::SRCH));
            }
            let start = stat.start_time;
            procfs::list_fds(pids[i]).map(|fds| (start, fds))
        });
        let mut rows: HashMap<String, Vec<(FdRef, String)>> = HashMap::new();
        let mut skipped_pids = Vec::new();
        let mut start_times: HashMap<Pid, u64> = HashMap::new();
        for (&p, r) in pids.iter().zip(listed) {
            let entries = match r {
                Ok((start, e)) => {
                    start_times.insert(p, start);
                    e
                }
                // Exited, or a kernel thread / zombie without an fd table.
                Err(e) if e.errno() == Some(Errno::NOENT) || e.errno() == Some(Errno::SRCH) => {
                    continue
                }
                Err(e) => {
                    skipped_pids.push(skipped(p, &e));
                    continue;
                }
            };
            for e in entries {
                let key = procfs::bucket_key(&e.target);
                let wanted = match FdTarget::parse(key) {
                    FdTarget::Pipe(ino) | FdTarget::Socket(ino) => needed.contains(&ino),
                    _ => true,
                };
                if wanted {
                    rows.entry(key.to_string())
                        .or_default()
                        .push((FdRef { pid: p, fd: e.fd }, e.target));
                }
            }
        }
        let keys: Vec<(String, Vec<FdRef>)> = rows
            .iter()
            .map(|(k, v)| (k.clone(), v.iter().map(|r| r.0).collect()))
            .collect();
        let mut inos = InoIndex::new(keys);
        let index = HostIndex {
            rows,
            groups: RefCell::new(HashMap::new()),
            calls: &calls,
        };
        let resolved = resolve(&index, &mut inos, pid, epfd, &regs, &calls);
        handle.verify()?;
        let mut targets = match resolved {
            Ok(t) => t,
            // The registration vanished (ENOENT) or the epoll fd was closed.
            Err(e) if matches!(e.errno(), Some(Errno::NOENT)) => continue,
            Err(e) if e.errno() == Some(Errno::BADF) => {
                check_epoll_fd(pid, epfd)?;
                continue;
            }
            Err(e) => return Err(e),
        };
        let after = registrations(pid, epfd)?;
        if after.len() != regs.len() || after.iter().zip(&regs).any(|(a, b)| !a.same_as(b)) {
            continue;
        }
        let gone: BTreeSet<Pid> = targets
            .iter()
            .flat_map(|t| t.holders.iter().map(|h| h.pid))
            .filter(|p| {
                procfs::read_stat(*p).map(|s| s.start_time).ok() != start_times.get(p).copied()
            })
            .collect();
        for t in &mut targets {
            t.holders.retain(|h| !gone.contains(&h.pid));
        }
        for p in gone {
            skipped_pids.push(Skipped {
                pid: p,
                reason: "ESRCH".into(),
                detail: "exited during the inspection; its answers were discarded".into(),
            });
        }
        skipped_pids.sort_unstable_by_key(|s| s.pid);
        return Ok(EpollTargets {
            pid,
            epfd,
            targets,
            skipped: skipped_pids,
            kcmp_calls: calls.get(),
        });
    }
    Err(Error::os(
        format!(
            "the registrations of epoll fd {epfd} of process {pid} changed during each of \
             {ATTEMPTS} inspections (stop the process, e.g. with --freeze)"
        ),
        Errno::AGAIN,
    ))
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
    let epolls: Vec<&crate::model::OpenFileDescription> = map
        .open_files
        .iter()
        .filter(|d| procfs::bucket_key(&d.target) == EPOLL_LINK)
        .collect();
    if epolls.is_empty() {
        return (Vec::new(), 0);
    }
    let index = ScanIndex::new(map);
    // Instances are independent: resolve them on all cores, each worker with
    // its own inode cache.
    let workers = crate::parallel::workers(0);
    let chunk = epolls.len().div_ceil(workers).max(1);
    let parts = crate::parallel::parallel_map(epolls.len().div_ceil(chunk), workers, |c| {
        let mut inos = InoIndex::new(index.keys());
        let calls = Cell::new(0u64);
        let mut out = Vec::with_capacity(chunk);
        for d in &epolls[c * chunk..((c + 1) * chunk).min(epolls.len())] {
            let first = d.members[0];
            let mut instance = EpollInstance {
                pid: first.pid,
                epfd: first.fd,
                holders: d.members.clone(),
                targets: Vec::new(),
                error: None,
            };
            let mut last_err = None;
            for _ in 0..ATTEMPTS {
                let attempt = registrations(first.pid, first.fd).and_then(|regs| {
                    let t = resolve(&index, &mut inos, first.pid, first.fd, &regs, &calls)?;
                    let after = registrations(first.pid, first.fd)?;
                    if after.len() != regs.len()
                        || after.iter().zip(&regs).any(|(a, b)| !a.same_as(b))
                    {
                        return Err(Error::os("the registrations changed", Errno::AGAIN));
                    }
                    Ok(t)
                });
                match attempt {
                    Ok(t) => {
                        instance.targets = t;
                        last_err = None;
                        break;
                    }
                    Err(e) => last_err = Some(e),
                }
            }
            instance.error = last_err.map(|e| e.to_string());
            out.push(instance);
        }
        (out, calls.get())
    });
    let calls = parts.iter().map(|(_, c)| c).sum();
    (parts.into_iter().flat_map(|(out, _)| out).collect(), calls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toffs_count_per_tfd_in_line_order() {
        let line = |tfd, data| EpollRegistration {
            tfd,
            events: 0x19,
            data,
            pos: 0,
            ino: 1,
            sdev: 0xd,
        };
        let regs = number_registrations(&[line(5, 1), line(5, 2), line(6, 3), line(5, 4)]);
        let got: Vec<(i32, u32, u64)> =
            regs.iter().map(|r| (r.tfd.get(), r.toff, r.data)).collect();
        assert_eq!(got, [(5, 0, 1), (5, 1, 2), (6, 0, 3), (5, 2, 4)]);
    }

    #[test]
    fn kernel_dev_splits_major_minor() {
        assert_eq!(kernel_dev(0x0080_0003), (8, 3));
        assert_eq!(kernel_dev(0xd), (0, 13));
    }

    #[test]
    fn reversed_swaps_less_and_greater() {
        assert_eq!(reversed(KcmpOrdering::Less), KcmpOrdering::Greater);
        assert_eq!(reversed(KcmpOrdering::Greater), KcmpOrdering::Less);
        assert_eq!(reversed(KcmpOrdering::Equal), KcmpOrdering::Equal);
    }
}
