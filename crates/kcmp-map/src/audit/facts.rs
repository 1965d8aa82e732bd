//! Facts about holders, read lazily and cached, never by a call that can
//! block: procfs text, readlinks, and `statx` only through
//! [`statx_if_local`].

use super::kind::{self, FileKind};
use super::Holder;
use crate::mounts::{statx_if_local, Mount, MountTable};
use crate::procfs::{self, FdInfo};
use crate::scan::{FdRef, OpenFileDescription, SharingMap, Skipped};
use kcmp::Pid;
use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::rc::Rc;

/// Per-process facts.
#[derive(Debug, Clone, Default)]
pub(super) struct TaskFacts {
    pub uid: Option<u32>,
    pub exe: Option<String>,
    pub mnt_ns: Option<String>,
    pub user_ns: Option<String>,
    pub net_ns: Option<String>,
    pub root: Option<String>,
    pub comm_raw: Vec<u8>,
}

/// Per-fd facts: its fdinfo and its raw link text, read after checking
/// that the fd still names what the scan saw.
#[derive(Debug, Clone)]
pub(super) struct FdFacts {
    pub info: FdInfo,
    pub raw: Vec<u8>,
}

/// Facts of one description, from one live member.
#[derive(Debug, Clone)]
pub(super) struct DescFacts {
    pub flags: u32,
    pub kind: FileKind,
    pub raw: Vec<u8>,
    pub size: Option<u64>,
    pub nlink: Option<u32>,
    pub inode: Option<(u64, u64)>,
}

type MountKey = (Option<String>, Option<String>);

/// The cache.
pub(super) struct Facts<'m> {
    map: &'m SharingMap,
    tasks: HashMap<Pid, TaskFacts>,
    fds: HashMap<FdRef, Option<FdFacts>>,
    descs: HashMap<FdRef, Option<DescFacts>>,
    mounts: HashMap<MountKey, Option<Rc<MountTable>>>,
    table_of: HashMap<Pid, Option<Rc<MountTable>>>,
    elsewhere: HashMap<u64, Option<Mount>>,
    listening: HashMap<String, HashSet<u64>>,
    vanished: Vec<Skipped>,
}

fn readlink(path: &str) -> Option<Vec<u8>> {
    crate::freeze::step();
    std::fs::read_link(path)
        .ok()
        .map(|p| p.as_os_str().as_bytes().to_vec())
}

fn readlink_text(path: &str) -> Option<String> {
    readlink(path).map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// What an executable whose path is too long to show is called.
const EXE_TOO_LONG: &str = "(path longer than PATH_MAX)";

/// The target of /proc/PID/exe; an executable whose path is too long to
/// show (ENAMETOOLONG) is still one ([`EXE_TOO_LONG`]), so that it is
/// never left out of the comparison of executables.
fn exe_text(path: &str) -> Option<String> {
    crate::freeze::step();
    match std::fs::read_link(path) {
        Ok(p) => Some(p.to_string_lossy().into_owned()),
        Err(e) if e.raw_os_error() == Some(libc::ENAMETOOLONG) => Some(EXE_TOO_LONG.to_string()),
        Err(_) => None,
    }
}

impl<'m> Facts<'m> {
    pub fn new(map: &'m SharingMap) -> Self {
        Facts {
            map,
            tasks: HashMap::new(),
            fds: HashMap::new(),
            descs: HashMap::new(),
            mounts: HashMap::new(),
            table_of: HashMap::new(),
            elsewhere: HashMap::new(),
            listening: HashMap::new(),
            vanished: Vec::new(),
        }
    }

    /// Processes found gone while their facts were read.
    pub fn into_skipped(self) -> Vec<Skipped> {
        self.vanished
    }

    /// The facts of a process (empty fields where they could not be read).
    pub fn task(&mut self, pid: Pid) -> &TaskFacts {
        if !self.tasks.contains_key(&pid) {
            let facts = read_task(pid);
            if facts.comm_raw.is_empty() && facts.uid.is_none() {
                self.vanished.push(Skipped {
                    pid,
                    reason: "ESRCH".into(),
                    detail: "exited between the scan and the audit".into(),
                });
            }
            self.tasks.insert(pid, facts);
        }
        &self.tasks[&pid]
    }

    /// The facts of a process already read by [`Facts::task`].
    pub fn task_cached(&self, pid: Pid) -> Option<&TaskFacts> {
        self.tasks.get(&pid)
    }

    /// The fd's facts, or `None` when it is closed, now names another file
    /// than `target` (the scan's link text), or cannot be read.
    pub fn fd(&mut self, r: FdRef, target: &str) -> Option<&FdFacts> {
        self.fds
            .entry(r)
            .or_insert_with(|| read_fd(r, target))
            .as_ref()
    }

    /// The `mnt_id` of an fd from its fdinfo alone, without checking that
    /// the fd still names what the scan saw (a cheap first pass: callers
    /// verify with [`Facts::fd`] before reporting).
    pub fn mnt_id_unchecked(&mut self, r: FdRef) -> Option<u64> {
        if let Some(Some(f)) = self.fds.get(&r) {
            return Some(f.info.mnt_id);
        }
        procfs::read_fdinfo(r.pid, r.fd).ok().map(|i| i.mnt_id)
    }

    /// Whether this fd has O_CLOEXEC (`None`: unreadable).
    pub fn cloexec(&mut self, r: FdRef, target: &str) -> Option<bool> {
        self.fd(r, target)
            .map(|f| f.info.flags & libc::O_CLOEXEC as u32 != 0)
    }

    /// The facts of a description, from its first member that is still
    /// what the scan saw.
    pub fn desc(&mut self, d: &OpenFileDescription) -> Option<DescFacts> {
        let first = *d.members.first()?;
        if let Some(cached) = self.descs.get(&first) {
            return cached.clone();
        }
        let out = d.members.iter().find_map(|&m| self.desc_from(m, &d.target));
        self.descs.insert(first, out.clone());
        out
    }

    fn desc_from(&mut self, m: FdRef, target: &str) -> Option<DescFacts> {
        let f = self.fd(m, target)?.clone();
        let st = if matches!(procfs::FdTarget::parse(target), procfs::FdTarget::Path(_)) {
            self.mount_for(m.pid, f.info.mnt_id)
                .and_then(|mount| statx_if_local(m.pid, m.fd, &mount))
        } else {
            None
        };
        let mode = st.as_ref().map(|s| u32::from(s.stx_mode));
        Some(DescFacts {
            flags: f.info.flags,
            kind: FileKind::from_target(target, mode, f.info.flags),
            raw: f.raw,
            size: st.as_ref().map(|s| s.stx_size),
            nlink: st.as_ref().map(|s| s.stx_nlink),
            inode: st.as_ref().map(|s| {
                let dev = libc::makedev(s.stx_dev_major, s.stx_dev_minor);
                (dev, s.stx_ino)
            }),
        })
    }

    /// The mount table of `pid`'s mount namespace as seen from its root
    /// (read once per namespace and root).
    pub fn table(&mut self, pid: Pid) -> Option<Rc<MountTable>> {
        if let Some(t) = self.table_of.get(&pid) {
            return t.clone();
        }
        let t = self.task(pid);
        let key = (t.mnt_ns.clone(), t.root.clone());
        let table = self
            .mounts
            .entry(key)
            .or_insert_with(|| MountTable::read(pid).ok().map(Rc::new))
            .clone();
        self.table_of.insert(pid, table.clone());
        table
    }

    /// The mount with id `mnt_id`: in `pid`'s own table, else in the table
    /// of any scanned process, else in ours. `None` when no table has it
    /// (a detached mount): then nothing on it is stat-ed.
    pub fn mount_for(&mut self, pid: Pid, mnt_id: u64) -> Option<Mount> {
        if let Some(m) = self.table(pid).and_then(|t| t.get(mnt_id).cloned()) {
            return Some(m);
        }
        if let Some(found) = self.elsewhere.get(&mnt_id) {
            return found.clone();
        }
        let pids: Vec<Pid> = self.map.tasks.iter().map(|t| t.pid).collect();
        let mut seen: HashSet<MountKey> = HashSet::new();
        let mut found = None;
        for p in pids.into_iter().chain([Pid::this()]) {
            let t = self.task(p);
            if !seen.insert((t.mnt_ns.clone(), t.root.clone())) {
                continue;
            }
            if let Some(m) = self.table(p).and_then(|t| t.get(mnt_id).cloned()) {
                found = Some(m);
                break;
            }
        }
        self.elsewhere.insert(mnt_id, found.clone());
        found
    }

    /// Whether socket inode `ino` held by `pid` is listening (TCP LISTEN,
    /// or a unix socket with `__SO_ACCEPTCON`), from `/proc/PID/net/*` of
    /// its network namespace.
    pub fn is_listening(&mut self, pid: Pid, ino: u64) -> bool {
        let Some(ns) = self.task(pid).net_ns.clone() else {
            return false;
        };
        self.listening
            .entry(ns)
            .or_insert_with(|| listening_inodes(pid))
            .contains(&ino)
    }

    /// A [`Holder`] with the facts of `pid` and of this fd.
    pub fn holder(&mut self, r: FdRef, target: &str) -> Holder {
        let fd = self.fd(r, target).map(|f| f.info.flags);
        let t = self.task(r.pid).clone();
        let comm = if t.comm_raw.is_empty() {
            self.map.comm(r.pid).unwrap_or("?").to_string()
        } else {
            String::from_utf8_lossy(&t.comm_raw).into_owned()
        };
        Holder {
            pid: r.pid,
            fd: r.fd,
            comm_raw: if t.comm_raw.is_empty() {
                comm.as_bytes().to_vec()
            } else {
                t.comm_raw
            },
            comm,
            uid: t.uid,
            exe: t.exe,
            mnt_ns: t.mnt_ns,
            user_ns: t.user_ns,
            cloexec: fd.map(|f| f & libc::O_CLOEXEC as u32 != 0),
            access: fd.map(kind::access_name),
        }
    }
}

fn read_task(pid: Pid) -> TaskFacts {
    let base = format!("/proc/{pid}");
    let uid = procfs::read_status_field(pid, "Uid")
        .ok()
        .flatten()
        .and_then(|v| v.split_whitespace().nth(1).and_then(|u| u.parse().ok()));
    let mut comm_raw = std::fs::read(format!("{base}/comm")).unwrap_or_default();
    if comm_raw.last() == Some(&b'\n') {
        comm_raw.pop();
    }
    TaskFacts {
        uid,
        exe: exe_text(&format!("{base}/exe")),
        mnt_ns: readlink_text(&format!("{base}/ns/mnt")),
        user_ns: readlink_text(&format!("{base}/ns/user")),
        net_ns: readlink_text(&format!("{base}/ns/net")),
        root: readlink_text(&format!("{base}/root")),
        comm_raw,
    }
}

fn read_fd(r: FdRef, target: &str) -> Option<FdFacts> {
    let raw = readlink(&format!("/proc/{}/fd/{}", r.pid, r.fd))?;
    let now = String::from_utf8_lossy(&raw);
    if procfs::bucket_key(&now) != procfs::bucket_key(target) {
        return None;
    }
    let info = procfs::read_fdinfo(r.pid, r.fd).ok()?;
    Some(FdFacts { info, raw })
}

/// Inodes of listening sockets in the network namespace of `pid`.
fn listening_inodes(pid: Pid) -> HashSet<u64> {
    crate::freeze::step();
    let mut out = HashSet::new();
    for proto in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{proto}")).unwrap_or_default();
        // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.get(3) == Some(&"0A") {
                if let Some(ino) = f.get(9).and_then(|s| s.parse().ok()) {
                    out.insert(ino);
                }
            }
        }
    }
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/unix")).unwrap_or_default();
    // Num RefCount Protocol Flags Type St Inode [Path]; Flags 00010000 = __SO_ACCEPTCON.
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let flags = f.get(3).and_then(|s| u32::from_str_radix(s, 16).ok());
        if flags.is_some_and(|fl| fl & 0x0001_0000 != 0) {
            if let Some(ino) = f.get(6).and_then(|s| s.parse().ok()) {
                out.insert(ino);
            }
        }
    }
    out
}
