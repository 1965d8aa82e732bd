//! Selecting descriptions (`--comm`, `--user`, `--kind`, `--path`,
//! `--min-holders`) and telling their kind (file, dir, fifo, pipe, socket,
//! …). Filters select what is *shown*, never what is scanned: a description
//! is shown when one of its holders matches `--comm`/`--user` (the same
//! holder for both), its kind is one of `--kind`, its name begins with
//! `--path`, and it has at least `--min-holders` (pid, fd) pairs.
//!
//! Reusable by any report over a [`SharingMap`].

use kcmp::{FdNum, Pid};
use kcmp_map::mounts::MountTable;
use kcmp_map::scan::{FdRef, OpenFileDescription, SharingMap};
use std::cell::RefCell;
use std::collections::HashMap;

/// The kinds `--kind` accepts, as [`Facts::kind`] names them.
pub const KINDS: &[&str] = &[
    "file",
    "dir",
    "fifo",
    "chardev",
    "blockdev",
    "symlink",
    "path",
    "pipe",
    "socket",
    "anon_inode",
    "memfd",
    "other",
];

/// What to show (empty fields select everything).
#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// Command names (comm, exact); any of them.
    pub comms: Vec<String>,
    /// Real uids; any of them.
    pub uids: Vec<u32>,
    /// Kinds (see [`KINDS`]); any of them.
    pub kinds: Vec<String>,
    /// A prefix of the name (`/var/log/`, `socket:`).
    pub path: Option<String>,
    /// The least number of (pid, fd) holders.
    pub min_holders: usize,
}

impl Filters {
    /// Whether a filter on holders (`--comm`, `--user`) is set.
    pub fn on_holders(&self) -> bool {
        !self.comms.is_empty() || !self.uids.is_empty()
    }

    /// Whether any filter is set.
    pub fn any(&self) -> bool {
        self.on_holders() || !self.kinds.is_empty() || self.path.is_some() || self.min_holders > 0
    }

    /// Whether one task matches `--comm` and `--user` (true when neither is set).
    pub fn task_matches(&self, facts: &Facts<'_>, pid: Pid) -> bool {
        let comm_ok = self.comms.is_empty()
            || self
                .comms
                .iter()
                .any(|c| Some(c.as_str()) == facts.comm(pid));
        comm_ok && (self.uids.is_empty() || facts.uid(pid).is_some_and(|u| self.uids.contains(&u)))
    }

    /// Whether description `d` is shown.
    pub fn matches(&self, facts: &Facts<'_>, d: &OpenFileDescription) -> bool {
        if d.members.len() < self.min_holders {
            return false;
        }
        if let Some(p) = &self.path {
            if !d.target.starts_with(p.as_str()) {
                return false;
            }
        }
        if self.on_holders() && !d.members.iter().any(|m| self.task_matches(facts, m.pid)) {
            return false;
        }
        self.kinds.is_empty() || self.kinds.iter().any(|k| k == facts.kind(d))
    }

    /// Whether an epoll instance is shown: filtered as the description
    /// `anon_inode:[eventpoll]` of kind `anon_inode` held by its holders.
    pub fn epoll_matches(&self, facts: &Facts<'_>, e: &kcmp_map::epoll::EpollInstance) -> bool {
        let target = kcmp_map::epoll::EPOLL_LINK;
        e.holders.len() >= self.min_holders
            && self.path.as_deref().is_none_or(|p| target.starts_with(p))
            && (self.kinds.is_empty() || self.kinds.iter().any(|k| k == "anon_inode"))
            && (!self.on_holders() || e.holders.iter().any(|h| self.task_matches(facts, h.pid)))
    }

    /// Whether a process-level group (of pids) is shown: one member
    /// matches `--comm`/`--user`.
    pub fn group_matches(&self, facts: &Facts<'_>, group: &[Pid]) -> bool {
        !self.on_holders() || group.iter().any(|&p| self.task_matches(facts, p))
    }
}

/// Facts about the scanned tasks read on demand and cached: comm, real
/// uid, the kind of a description, the bytes of a non-UTF-8 name.
pub struct Facts<'a> {
    map: &'a SharingMap,
    uids: RefCell<HashMap<Pid, Option<u32>>>,
    mounts: RefCell<HashMap<String, Option<MountTable>>>,
    mount_ns: RefCell<HashMap<Pid, Option<String>>>,
    /// Kinds of path descriptions, by the description's address in the map.
    kinds: RefCell<HashMap<usize, &'static str>>,
}

impl<'a> Facts<'a> {
    /// Facts about the tasks of `map`.
    pub fn new(map: &'a SharingMap) -> Self {
        Facts {
            map,
            uids: Default::default(),
            mounts: Default::default(),
            mount_ns: Default::default(),
            kinds: Default::default(),
        }
    }

    /// The command name of a scanned task.
    pub fn comm(&self, pid: Pid) -> Option<&'a str> {
        self.map.comm(pid)
    }

    /// The real uid of a task (`Uid:` in /proc/PID/status), if readable.
    pub fn uid(&self, pid: Pid) -> Option<u32> {
        *self.uids.borrow_mut().entry(pid).or_insert_with(|| {
            let line = kcmp_map::procfs::read_status_field(pid, "Uid").ok()??;
            line.split_ascii_whitespace().next()?.parse().ok()
        })
    }

    /// The kind of a description (one of [`KINDS`]), from its name, and
    /// for a path from a `statx` of its first holder's fd when the file is
    /// on a local filesystem (`path` when that cannot be done safely).
    pub fn kind(&self, d: &OpenFileDescription) -> &'static str {
        if let Some(k) = kind_of_target(&d.target) {
            return k;
        }
        if let Some(mode) = d.file_type() {
            return kind_of_mode(mode); // the scan's own copy told it
        }
        let key = d as *const OpenFileDescription as usize;
        if let Some(k) = self.kinds.borrow().get(&key) {
            return k;
        }
        // The first holder may be in a mount namespace that lacks the
        // file's mount (an fd inherited across unshare): try one holder
        // per mount namespace until one can tell.
        let mut tried: Vec<Option<String>> = Vec::new();
        let mut k = "path";
        for m in &d.members {
            let ns = self.mount_ns_of(m.pid);
            if tried.contains(&ns) {
                continue;
            }
            tried.push(ns);
            k = self.path_kind(*m);
            if k != "path" {
                break;
            }
        }
        self.kinds.borrow_mut().insert(key, k);
        k
    }

    fn mount_ns_of(&self, pid: Pid) -> Option<String> {
        self.mount_ns
            .borrow_mut()
            .entry(pid)
            .or_insert_with(|| {
                std::fs::read_link(format!("/proc/{pid}/ns/mnt"))
                    .ok()
                    .map(|l| l.to_string_lossy().into_owned())
            })
            .clone()
    }

    fn path_kind(&self, m: FdRef) -> &'static str {
        match self.stat_mode(m.pid, m.fd) {
            Some(mode) => kind_of_mode(mode),
            None => "path",
        }
    }

    /// `st_mode` of fd `fd` of `pid`, only through [`kcmp_map::mounts::statx_if_local`].
    pub fn stat_mode(&self, pid: Pid, fd: FdNum) -> Option<u32> {
        let info = kcmp_map::procfs::read_fdinfo(pid, fd).ok()?;
        let ns = self.mount_ns_of(pid)?;
        let mut mounts = self.mounts.borrow_mut();
        let table = mounts
            .entry(ns)
            .or_insert_with(|| MountTable::read(pid).ok());
        let mount = table.as_ref()?.get(info.mnt_id)?;
        let st = kcmp_map::mounts::statx_if_local(pid, fd, mount)?;
        Some(u32::from(st.stx_mode))
    }
}

/// The kind of a file type (`st_mode`'s `S_IFMT` bits).
fn kind_of_mode(mode: u32) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFREG => "file",
        libc::S_IFDIR => "dir",
        libc::S_IFIFO => "fifo",
        libc::S_IFCHR => "chardev",
        libc::S_IFBLK => "blockdev",
        libc::S_IFLNK => "symlink",
        libc::S_IFSOCK => "socket",
        _ => "path",
    }
}

/// The kind told by a link text alone, or `None` for a path that needs a
/// `statx` (see [`Facts::kind`]).
///
/// ```
/// use kcmp_cli::output::filter::kind_of_target;
/// assert_eq!(kind_of_target("socket:[5]"), Some("socket"));
/// assert_eq!(kind_of_target("/memfd:cache (deleted)"), Some("memfd"));
/// assert_eq!(kind_of_target("/etc/passwd"), None);
/// ```
pub fn kind_of_target(target: &str) -> Option<&'static str> {
    if target.starts_with("socket:[") {
        Some("socket")
    } else if target.starts_with("pipe:[") {
        Some("pipe")
    } else if target.starts_with("anon_inode:") {
        Some("anon_inode")
    } else if target.starts_with("/memfd:") {
        Some("memfd")
    } else if target.starts_with('/') {
        None
    } else {
        Some("other")
    }
}

/// A `--user` value: a number, or a name from /etc/passwd.
pub fn parse_user(s: &str) -> Result<u32, String> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<u32>()
            .map_err(|_| format!("user {s} is out of range (0..={})", u32::MAX));
    }
    let passwd = std::fs::read_to_string("/etc/passwd")
        .map_err(|e| format!("cannot read /etc/passwd to look up user {s:?}: {e}"))?;
    passwd
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            Some((f.next()?, f.nth(1)?))
        })
        .find(|(name, _)| *name == s)
        .and_then(|(_, uid)| uid.parse().ok())
        .ok_or_else(|| format!("no user {s:?} in /etc/passwd"))
}

/// A `--kind` value: one of [`KINDS`].
pub fn parse_kind(s: &str) -> Result<String, String> {
    if KINDS.contains(&s) {
        Ok(s.to_string())
    } else {
        Err(format!("unknown kind {s:?} (one of {})", KINDS.join(", ")))
    }
}
