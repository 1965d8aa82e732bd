//! The types every step of the engine shares: a task, an fd, a description,
//! the finished [`SharingMap`]. They live apart from the pipeline so that the
//! steps (and [`crate::epoll`], [`crate::holders`]) use them without
//! importing each other.

use crate::procfs;
use kcmp::KcmpOrdering;
use kcmp::{Error, FdNum, Pid, Result};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// One inspected task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskRecord {
    /// The pid (the tid when threads are tasks).
    pub pid: Pid,
    /// The process (thread group) it belongs to.
    pub tgid: Pid,
    /// The parent process.
    pub ppid: i32,
    /// The command name.
    pub comm: String,
    /// The state letter when it was read.
    pub state: char,
    /// A kernel thread.
    pub kernel_thread: bool,
}

impl TaskRecord {
    /// A zombie when it was read.
    pub fn is_zombie(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// A task that could not be inspected, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The pid (or tid).
    pub pid: Pid,
    /// The errno name: `EPERM` (no permission), `ESRCH` (vanished), …
    pub reason: String,
    /// What happened, in words.
    pub detail: String,
}

/// One fd of an inspected task left out of the map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedFd {
    /// The pid (or tid).
    pub pid: Pid,
    /// The fd.
    pub fd: FdNum,
    /// The errno name: `ENAMETOOLONG`, `EACCES`, `EBADF` (closed meanwhile), …
    pub reason: String,
}

/// One (pid, fd) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct FdRef {
    /// The pid (or tid).
    pub pid: Pid,
    /// The fd.
    pub fd: FdNum,
}

/// One open file description and every (pid, fd) that refers to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenFileDescription {
    /// What it is open on: a path, `pipe:[ino]`, `socket:[ino]`, `anon_inode:…`;
    /// lossy UTF-8 (U+FFFD for each invalid byte), see [`Self::target_bytes`].
    pub target: String,
    /// The link text's exact bytes (as its first member's link read them
    /// during the scan), kept only when they are not valid UTF-8; in JSON
    /// `target_bytes`, an array of numbers, only then.
    #[serde(rename = "target_bytes", skip_serializing_if = "Option::is_none")]
    raw: Option<Box<[u8]>>,
    /// Its holders, sorted by (pid, fd).
    pub members: Vec<FdRef>,
    /// `st_mode & S_IFMT` of a path description's file, when the scan
    /// learnt it without touching another process's file (see
    /// [`Self::file_type`]).
    #[serde(skip)]
    pub(crate) file_type: Option<u32>,
    /// See [`Self::without_anchor`]; in JSON only when true.
    #[serde(rename = "without_anchor", skip_serializing_if = "std::ops::Not::not")]
    pub(crate) without_anchor: bool,
}

impl OpenFileDescription {
    /// A description open on `target` (its link text) with these holders.
    pub(crate) fn new(target: String, raw: Option<Box<[u8]>>, members: Vec<FdRef>) -> Self {
        OpenFileDescription {
            target,
            raw,
            members,
            file_type: None,
            without_anchor: false,
        }
    }

    /// True when the scan compared this description's holders with one of
    /// them standing in as representative, not with its own copy of the
    /// description (see `stats.descriptions_without_anchor` in
    /// [`crate::model::ScanStats`]): then its members are exact only if
    /// they held still during the scan (a frozen scan, a quiet process).
    ///
    /// ```no_run
    /// let map = kcmp_map::scan(&kcmp_map::ScanOptions::default()).unwrap();
    /// for d in map.open_files.iter().filter(|d| d.without_anchor()) {
    ///     println!("compared through a member: {}", d.target);
    /// }
    /// ```
    pub fn without_anchor(&self) -> bool {
        self.without_anchor
    }

    /// The file type bits (`st_mode & S_IFMT`, e.g. `libc::S_IFREG`) of a
    /// path description, when the scan learnt them from its own copy of the
    /// description (a `statx` on a local filesystem); `None` for other
    /// descriptions, or when it did not (a description held once, a file on
    /// FUSE or NFS). Never read through another process's fd.
    ///
    /// ```no_run
    /// let map = kcmp_map::scan(&kcmp_map::ScanOptions::default()).unwrap();
    /// let dirs = map
    ///     .open_files
    ///     .iter()
    ///     .filter(|d| d.file_type() == Some(libc::S_IFDIR))
    ///     .count();
    /// println!("{dirs} shared directory descriptions");
    /// ```
    pub fn file_type(&self) -> Option<u32> {
        self.file_type
    }

    /// The exact bytes of the link text, as read when the scan listed the
    /// description's first member: `target`'s bytes when they are valid
    /// UTF-8, the original bytes (which `target` shows with U+FFFD) when
    /// not. Two names that differ only in invalid bytes differ here.
    pub fn target_bytes(&self) -> &[u8] {
        self.raw.as_deref().unwrap_or(self.target.as_bytes())
    }

    /// Whether the link text is valid UTF-8 (then `target` is exact).
    pub fn target_is_utf8(&self) -> bool {
        self.raw.is_none()
    }
}

/// Counters of one scan.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ScanStats {
    /// kcmp(2) calls made.
    pub kcmp_calls: u64,
    /// Wall time of the scan.
    pub elapsed_ms: f64,
    /// Buckets of fds that needed kcmp to split.
    pub buckets_compared: u64,
    /// Buckets large enough to be grouped in parts on all workers and merged.
    pub buckets_split: u64,
    /// Fds alone in their bucket (one fd: its own description, no kcmp).
    pub fds_decided_by_key: u64,
    /// Fds that joined their description by one kcmp against the
    /// description their parent's fd of the same number joined (an
    /// inheritance hint).
    pub fds_joined_by_hint: u64,
    /// Fds closed while the scan ran (left out).
    pub fds_vanished: u64,
    /// Process-level kind groupings whose sorted representatives turned out
    /// inconsistent — a task exec'd or exited under the scan — and were
    /// rebuilt (`kcmp::grouping::OrderedGroups::check_and_repair`). Fd
    /// buckets need no repair: their representatives are anchors.
    pub groupings_repaired: u64,
    /// kcmp(2) calls per phase: `files` (grouping, inheritance hints,
    /// anchors, re-verification), `kinds` (process-level kinds), `epoll`.
    pub kcmp_calls_by_phase: BTreeMap<String, u64>,
    /// Descriptions found under two names (a file renamed during the
    /// scan, or hard links) and joined by kcmp.
    pub descriptions_joined_across_names: u64,
    /// Descriptions whose representative was one of their members rather
    /// than the engine's own copy (`pidfd_getfd` refused, the fd budget
    /// spent, a FUSE, NFS or overlayfs mount, a file this process holds a
    /// POSIX lock on). A member can change under the scan, so these are
    /// exact only if their holders held still: with `--freeze`, or on a
    /// quiet host. 0 when every compared description had an anchor.
    pub descriptions_without_anchor: u64,
    /// Copies of fds that the scan left open rather than closed: the fd
    /// was switched onto a file whose close could wait on a FUSE or
    /// network server between the engine's check and its copy. Exit
    /// through [`crate::exit`] so that no exit waits on that server.
    pub copies_left_open: u64,
    /// Copies kept without a look at their mount (fdinfo, mount table):
    /// the host had no FUSE connection and no network filesystem type
    /// while each was taken, so no close could wait on a server.
    pub copies_on_server_free_host: u64,
    /// The engine's copies of fds (`pidfd_getfd`) taken while grouping:
    /// one anchors each description found, the rest were taken first and
    /// turned out to be of a description already found (the price of the
    /// copy-first tactics).
    pub copies_taken: u64,
    /// How equality was decided: `"kcmp"` (ordered) or a fallback.
    pub method: String,
    /// Wall time of each phase, in milliseconds: `sentinels`, `select`,
    /// `pin`, `list_fds`, `group_fds`, `process_kinds`, `verify`,
    /// `assemble` (the map built from the groups) and `epoll_thaw` (the
    /// epoll section, and thawing after `--freeze`).
    pub phase_ms: BTreeMap<String, f64>,
}

/// The result of a scan: what the selected tasks share.
///
/// ```no_run
/// use kcmp_map::scan::{scan, ScanOptions};
/// let map = scan(&ScanOptions { trees: vec![kcmp::Pid::this()], ..Default::default() })?;
/// for d in map.open_files.iter().filter(|d| d.members.len() > 1) {
///     println!("{} held by {} fds", d.target, d.members.len());
/// }
/// # Ok::<(), kcmp::Error>(())
/// ```
#[derive(Debug, Clone, Default, Serialize)]
pub struct SharingMap {
    /// Tasks inspected (not skipped), sorted by pid.
    pub tasks: Vec<TaskRecord>,
    /// Tasks skipped, with the reason.
    pub skipped: Vec<Skipped>,
    /// Every open file description of the inspected tasks (shared or not),
    /// sorted by first member.
    pub open_files: Vec<OpenFileDescription>,
    /// Groups of two or more tasks sharing each process-level kind that
    /// could be computed; pids ascending, groups sorted by first member.
    pub shared: BTreeMap<String, Vec<Vec<Pid>>>,
    /// Kinds that could not be computed exactly, with the reason.
    pub unavailable: BTreeMap<String, String>,
    /// Counters.
    pub stats: ScanStats,
    /// Whether the tasks were frozen during the scan.
    pub frozen: bool,
    /// Processes that could not be frozen, with the reason.
    pub not_frozen: Vec<crate::freeze::NotFrozen>,
    /// Why the freeze ended before the scan did (then `frozen` is false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub freeze_released: Option<crate::freeze::Release>,
    /// Every epoll instance of the scanned tasks, its registrations resolved
    /// to the descriptions they watch (see [`crate::epoll::resolve_scan`]).
    pub epoll: Vec<crate::epoll::EpollInstance>,
    /// Fds left out of an inspected task, with the reason (an unreadable
    /// link such as `ENAMETOOLONG`, or `EBADF`: closed during the scan).
    pub skipped_fds: Vec<SkippedFd>,
    /// Fds seen changing while they were placed: the engine's copy of one
    /// was a description its search had not found it in (reported in no
    /// description).
    pub changed_fds: Vec<FdRef>,
    /// Threads with their own fd table (`unshare(CLONE_FILES)`), inspected
    /// as tasks of their own although threads were not asked for.
    pub own_fd_tables: Vec<Pid>,
    /// For each bucket key, the indices into `open_files` in kcmp order.
    #[serde(skip)]
    pub(crate) order: HashMap<String, Vec<usize>>,
    /// Whether `order` is a kcmp order (false with the equality-only fallbacks).
    #[serde(skip)]
    pub(crate) ordered: bool,
    /// Keys whose descriptions are not in kcmp order (joined across names).
    #[serde(skip)]
    pub(crate) unordered_keys: std::collections::HashSet<String>,
}

impl SharingMap {
    /// The number of (pid, fd) pairs inspected.
    pub fn fd_count(&self) -> usize {
        self.open_files.iter().map(|d| d.members.len()).sum()
    }

    /// The description that (pid, fd) belongs to.
    pub fn description_of(&self, pid: Pid, fd: FdNum) -> Option<&OpenFileDescription> {
        let key = FdRef { pid, fd };
        self.open_files
            .iter()
            .find(|d| d.members.binary_search(&key).is_ok())
    }

    /// Finds the description that `cmp` says is equal to some probe, among
    /// the descriptions whose fds have bucket key `key` (see
    /// [`procfs::bucket_key`]): a binary search in kcmp order, so about
    /// `log2(descriptions in the bucket)` calls. `cmp(member)` must answer
    /// how the *probe* orders against that member's description (for
    /// example [`kcmp::compare_epoll_target`] with the member as pid1/fd1,
    /// reversed). A member whose comparison fails (its fd closed) is passed
    /// over for the next member of the same description.
    pub fn find_description<F>(&self, key: &str, mut cmp: F) -> Result<Option<&OpenFileDescription>>
    where
        F: FnMut(&FdRef) -> Result<KcmpOrdering>,
    {
        let Some(order) = self.order.get(procfs::bucket_key(key)) else {
            return Ok(None);
        };
        let mut probe = |d: &OpenFileDescription| -> Result<KcmpOrdering> {
            let mut last = None;
            for m in &d.members {
                match cmp(m) {
                    Ok(o) => return Ok(o),
                    Err(e) => last = Some(e),
                }
            }
            Err(last.unwrap_or_else(|| Error::InvalidArgument("empty description".into())))
        };
        if self.ordered && !self.unordered_keys.contains(procfs::bucket_key(key)) {
            let (mut lo, mut hi) = (0usize, order.len());
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                let d = &self.open_files[order[mid]];
                match probe(d)? {
                    KcmpOrdering::Equal => return Ok(Some(d)),
                    KcmpOrdering::Less => hi = mid,
                    KcmpOrdering::Greater => lo = mid + 1,
                    KcmpOrdering::Unordered(_) => break,
                }
            }
            if lo >= hi {
                return Ok(None);
            }
        }
        for &i in order {
            let d = &self.open_files[i];
            if probe(d)?.is_equal() {
                return Ok(Some(d));
            }
        }
        Ok(None)
    }

    /// The bucket keys of the scan (one per distinct link text).
    pub fn bucket_keys(&self) -> impl Iterator<Item = &str> {
        self.order.keys().map(String::as_str)
    }

    /// The command name of an inspected task.
    pub fn comm(&self, pid: Pid) -> Option<&str> {
        self.tasks
            .binary_search_by_key(&pid, |t| t.pid)
            .ok()
            .map(|i| self.tasks[i].comm.as_str())
    }
}

/// Progress of a running scan, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanProgress {
    /// The phase: 0 listing fds, 1 grouping descriptions, 2 process kinds.
    pub phase: u8,
    /// Units done in this phase.
    pub done: u64,
    /// Units in this phase.
    pub total: u64,
}
