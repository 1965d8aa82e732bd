//! The sharing map: which (pid, fd) pairs are one open file description, and
//! which tasks share vm, files, fs, sighand, io and sysvsem.
//!
//! # How it stays exact and fast
//! 1. Tasks are enumerated from /proc and pinned ([`ProcessHandle`]).
//! 2. Every task's fds are listed with their link text, on all cores.
//! 3. Fds are bucketed by a key that every fd of one description shares
//!    ([`procfs::bucket_key`]). A socket inode has exactly one description,
//!    so socket buckets need no kcmp at all.
//! 4. Within a bucket, descriptions are told apart by kcmp's ordering
//!    ([`OrderedGroups`]): about one call per fd when the bucket is one
//!    description, `log2(descriptions)` otherwise. Never pairwise.
//! 5. The six process-level kinds are grouped the same way, with sentinel
//!    tasks ([`crate::sentinel`]) to tell "none" from "shared".
//! 6. Tasks that exited during the scan, or whose pid was reused, are
//!    dropped from every answer and reported as skipped.

use crate::procfs::{self, FdTarget, TaskStat};
use crate::sentinel::Sentinels;
use kcmp::grouping::OrderedGroups;
use kcmp::KcmpOrdering;
use kcmp::ProcessHandle;
use kcmp::ProcessResource;
use kcmp::{compare_files, compare_process, FdNum, Pid};
use kcmp::{Error, Result};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::Mutex;
use std::time::Instant;

/// Which tasks to scan, and how.
///
/// ```
/// use kcmp_map::scan::ScanOptions;
/// let opts = ScanOptions { trees: vec![kcmp::Pid::this()], ..ScanOptions::default() };
/// assert!(!opts.threads);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// Scan exactly these processes. With `trees` empty too: every process
    /// (but the scanning process itself, which is scanned only when named
    /// here or as a tree's root).
    pub pids: Vec<Pid>,
    /// Scan these processes and all their descendants.
    pub trees: Vec<Pid>,
    /// Inspect every thread as its own task (pids are tids then).
    pub threads: bool,
    /// Stop the inspected processes for the duration (see [`crate::freeze`]).
    pub freeze: bool,
    /// Worker threads; 0 means one per CPU.
    pub workers: usize,
    /// Leave out the epoll section ([`SharingMap::epoll`]).
    pub skip_epoll: bool,
}

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
    /// What it is open on: a path, `pipe:[ino]`, `socket:[ino]`, `anon_inode:…`.
    pub target: String,
    /// Its holders, sorted by (pid, fd).
    pub members: Vec<FdRef>,
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
    /// Fds whose description was proven by key alone (sockets, single fds).
    pub fds_decided_by_key: u64,
    /// Fds closed while the scan ran (left out).
    pub fds_vanished: u64,
    /// Groupings (fd buckets or process-level kinds) whose sorted
    /// representatives turned out inconsistent — something changed under
    /// the scan — and were rebuilt ([`OrderedGroups::check_and_repair`]).
    pub groupings_repaired: u64,
    /// How equality was decided: `"kcmp"` (ordered) or a fallback.
    pub method: String,
    /// Wall time of each phase, in milliseconds: `select`, `pin`,
    /// `list_fds`, `group_fds`, `process_kinds`, `verify`.
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
    /// For each bucket key, the indices into `open_files` in kcmp order.
    #[serde(skip)]
    order: HashMap<String, Vec<usize>>,
    /// Whether `order` is a kcmp order (false with the equality-only fallbacks).
    #[serde(skip)]
    ordered: bool,
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
        if self.ordered {
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

/// A task selected for inspection, with its handle.
pub(crate) struct SelectedTask {
    pub record: TaskRecord,
    pub handle: ProcessHandle,
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

pub(crate) fn workers(requested: usize) -> usize {
    if requested > 0 {
        requested
    } else {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    }
}

/// Runs `work(i)` for every i in 0..n on `workers` threads; results in order.
pub(crate) fn parallel_map<R: Send>(
    n: usize,
    workers: usize,
    work: impl Fn(usize) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<R>>> = (0..n).map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..workers.min(n.max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, AtomicOrdering::Relaxed);
                if i >= n {
                    break;
                }
                let r = work(i);
                *slots[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
            });
        }
    });
    slots
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .expect("every slot filled")
        })
        .collect()
}

pub(crate) fn skipped_from(pid: Pid, err: &Error, what: &str) -> Skipped {
    let reason = if err.is_permission() {
        "EPERM".to_string()
    } else if err.is_gone() {
        "ESRCH".to_string()
    } else {
        err.errno_name().unwrap_or("E?").to_string()
    };
    let detail = if err.is_permission() {
        format!("{what}: permission denied ({err})")
    } else if err.is_gone() {
        format!("{what}: the task exited ({err})")
    } else {
        format!("{what}: {err}")
    };
    Skipped {
        pid,
        reason,
        detail,
    }
}

/// Every process's stat, for selection (ppid links) and records.
fn all_stats(workers: usize) -> Result<HashMap<Pid, TaskStat>> {
    let pids = procfs::list_pids()?;
    let chunk = pids.len().div_ceil(workers * 4).max(1);
    let parts = parallel_map(pids.len().div_ceil(chunk), workers, |c| {
        pids[c * chunk..((c + 1) * chunk).min(pids.len())]
            .iter()
            .filter_map(|&p| procfs::read_stat(p).ok().map(|s| (p, s)))
            .collect::<Vec<_>>()
    });
    Ok(parts.into_iter().flatten().collect())
}

/// The processes (thread-group leaders) selected by `options`, excluding
/// `exclude` and this process (unless it was named explicitly). Unknown
/// explicit pids are reported.
pub(crate) fn select_processes(
    options: &ScanOptions,
    exclude: &HashSet<Pid>,
    skipped: &mut Vec<Skipped>,
) -> Result<Vec<TaskStat>> {
    let me = Pid::this();
    let stats = all_stats(workers(options.workers))?;
    let mut chosen: BTreeSet<Pid> = BTreeSet::new();
    if options.pids.is_empty() && options.trees.is_empty() {
        chosen.extend(stats.keys().copied());
    } else {
        let mut children: HashMap<i32, Vec<Pid>> = HashMap::new();
        for (pid, st) in &stats {
            children.entry(st.ppid).or_default().push(*pid);
        }
        for &p in options.pids.iter().chain(&options.trees) {
            if !stats.contains_key(&p) {
                // Maybe a thread id, or a process we could not stat.
                match procfs::read_stat(p) {
                    Ok(_) => {}
                    Err(e) => skipped.push(skipped_from(p, &e, "read /proc")),
                }
            }
        }
        for &p in &options.pids {
            if stats.contains_key(&p) {
                chosen.insert(p);
            }
        }
        for &root in &options.trees {
            if !stats.contains_key(&root) {
                continue;
            }
            let mut stack = vec![root];
            while let Some(p) = stack.pop() {
                if chosen.insert(p) {
                    if let Some(kids) = children.get(&p.get()) {
                        stack.extend(kids.iter().copied());
                    }
                }
            }
        }
    }
    // This process is left out (its own /proc reading and pidfds are noise),
    // unless it was named explicitly as a pid or a tree's root.
    if !options.pids.contains(&me) && !options.trees.contains(&me) {
        chosen.remove(&me);
    }
    Ok(chosen
        .into_iter()
        .filter(|p| !exclude.contains(p))
        .filter_map(|p| stats.get(&p).cloned())
        .collect())
}

/// Expands processes into tasks (threads when `threads`) and pins each.
pub(crate) fn pin_tasks(
    procs: &[TaskStat],
    threads: bool,
    workers: usize,
) -> (Vec<SelectedTask>, Vec<Skipped>) {
    let results = parallel_map(procs.len(), workers, |i| {
        let st = &procs[i];
        let mut out: Vec<std::result::Result<SelectedTask, Skipped>> = Vec::new();
        let tids = if threads && !st.is_zombie() {
            procfs::list_tids(st.pid).unwrap_or_else(|_| vec![st.pid])
        } else {
            vec![st.pid]
        };
        for tid in tids {
            let stat = if tid == st.pid {
                Ok(st.clone())
            } else {
                procfs::read_task_stat(st.pid, tid)
            };
            let pinned =
                stat.and_then(|stat| ProcessHandle::pin(tid, stat.start_time).map(|h| (stat, h)));
            out.push(match pinned {
                Ok((stat, handle)) => Ok(SelectedTask {
                    record: TaskRecord {
                        pid: tid,
                        tgid: st.pid,
                        ppid: stat.ppid,
                        comm: stat.comm.clone(),
                        state: stat.state,
                        kernel_thread: stat.is_kernel_thread(),
                    },
                    handle,
                }),
                Err(e) => Err(skipped_from(tid, &e, "pin")),
            });
        }
        out
    });
    let mut tasks = Vec::new();
    let mut skipped = Vec::new();
    for r in results.into_iter().flatten() {
        match r {
            Ok(t) => tasks.push(t),
            Err(s) => skipped.push(s),
        }
    }
    (tasks, skipped)
}

/// The fds of each process (none for zombies and kernel threads), on all
/// workers: the plain listing, for callers that do not need
/// [`list_fds_inheriting`].
pub(crate) fn list_all_fds(
    tasks: &[SelectedTask],
    workers: usize,
) -> Vec<Result<Vec<procfs::FdEntry>>> {
    parallel_map(tasks.len(), workers, |i| {
        let r = &tasks[i].record;
        if r.kernel_thread || r.is_zombie() {
            Ok(Vec::new())
        } else {
            procfs::list_fds(r.pid)
        }
    })
}

/// The tasks' family: each task's parent among the selected tasks (the
/// thread-group leader for a thread when threads are tasks, the parent
/// process otherwise), and the tasks by depth, parents before children.
pub(crate) struct Family {
    parent: Vec<Option<u32>>,
    levels: Vec<Vec<u32>>,
}

impl Family {
    fn new(tasks: &[SelectedTask], threads: bool) -> Family {
        let mut task_of_pid: HashMap<Pid, u32> = HashMap::with_capacity(tasks.len());
        for (i, t) in tasks.iter().enumerate() {
            task_of_pid.insert(t.record.pid, i as u32);
        }
        let parent: Vec<Option<u32>> = tasks
            .iter()
            .map(|t| {
                let rec = &t.record;
                let p = if threads && rec.pid != rec.tgid {
                    rec.tgid
                } else {
                    Pid::new(rec.ppid).ok()?
                };
                task_of_pid.get(&p).copied()
            })
            .collect();
        let mut depth: Vec<Option<u32>> = vec![None; tasks.len()];
        let mut levels: Vec<Vec<u32>> = Vec::new();
        for t in 0..tasks.len() as u32 {
            // Walk up to a task of known depth (or a root), then assign.
            let mut chain = vec![t];
            let mut d = loop {
                let top = *chain.last().expect("non-empty");
                if let Some(d) = depth[top as usize] {
                    chain.pop(); // known already: only the ones below it get a depth
                    break d;
                }
                match parent[top as usize] {
                    Some(p) if !chain.contains(&p) => chain.push(p),
                    _ => {
                        depth[top as usize] = Some(0);
                        chain.pop();
                        if levels.is_empty() {
                            levels.push(Vec::new());
                        }
                        levels[0].push(top);
                        break 0;
                    }
                }
            };
            while let Some(x) = chain.pop() {
                d += 1;
                depth[x as usize] = Some(d);
                if levels.len() <= d as usize {
                    levels.resize(d as usize + 1, Vec::new());
                }
                levels[d as usize].push(x);
            }
        }
        Family { parent, levels }
    }
}

/// One task's listing: its fds, and those proven to be its parent's.
type Listing = (Result<Vec<procfs::FdEntry>>, Vec<FdNum>);

/// Lists every task's fds, parents before children. An fd number N that the
/// parent has too is first compared with the parent's N (one kcmp, about
/// half the cost of a readlink): when they are one description, the child's
/// fd takes the parent's link text without a readlink, and the pair is a
/// proven inheritance hint. Otherwise the fd is read as usual.
fn list_fds_inheriting(
    tasks: &[SelectedTask],
    family: &Family,
    threads: bool,
    cmp: &FileComparator<'_>,
    workers: usize,
    progress: &(dyn Fn(ScanProgress) + Sync),
) -> Vec<Listing> {
    let done = AtomicU64::new(0);
    let total = tasks.len() as u64;
    let mut listings: Vec<Option<Listing>> = (0..tasks.len()).map(|_| None).collect();
    for level in &family.levels {
        let results = parallel_map(level.len(), workers, |x| {
            let t = level[x] as usize;
            let r = &tasks[t].record;
            let mut hinted = Vec::new();
            let listing = if r.kernel_thread || r.is_zombie() {
                Ok(Vec::new())
            } else {
                let parent = family.parent[t].and_then(|p| match &listings[p as usize] {
                    Some((Ok(entries), _)) => {
                        Some((entries.as_slice(), tasks[p as usize].record.pid))
                    }
                    _ => None,
                });
                let dir = if threads && r.pid != r.tgid {
                    procfs::FdDir::open_task(r.tgid, r.pid)
                } else {
                    procfs::FdDir::open(r.pid)
                };
                dir.and_then(|dir| {
                    let mut entries = Vec::new();
                    for fd in dir.fds()? {
                        if let Some((pe, ppid)) = parent {
                            if let Ok(k) = pe.binary_search_by_key(&fd, |e| e.fd) {
                                if let Ok(KcmpOrdering::Equal) = cmp(r.pid, fd, ppid, fd) {
                                    entries.push(procfs::FdEntry {
                                        fd,
                                        target: pe[k].target.clone(),
                                    });
                                    hinted.push(fd);
                                    continue;
                                }
                            }
                        }
                        if let Some(target) = dir.readlink(fd)? {
                            entries.push(procfs::FdEntry { fd, target });
                        }
                    }
                    Ok(entries)
                })
            };
            let d = done.fetch_add(1, AtomicOrdering::Relaxed) + 1;
            if d % 64 == 0 || d == total {
                progress(ScanProgress {
                    phase: 0,
                    done: d,
                    total,
                });
            }
            (listing, hinted)
        });
        for (x, result) in results.into_iter().enumerate() {
            listings[level[x] as usize] = Some(result);
        }
    }
    listings
        .into_iter()
        .map(|l| l.expect("every task is on a level"))
        .collect()
}

/// A call counter that threads can bump without sharing a cache line: each
/// thread adds to its own padded slot, and [`CallCounter::total`] sums them.
#[derive(Default)]
pub(crate) struct CallCounter {
    slots: [PaddedCounter; COUNTER_SLOTS],
}

const COUNTER_SLOTS: usize = 16;

#[derive(Default)]
#[repr(align(128))]
struct PaddedCounter(AtomicU64);

thread_local! {
    static COUNTER_SLOT: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, AtomicOrdering::Relaxed) % COUNTER_SLOTS
    };
}

impl CallCounter {
    /// Counts one call.
    pub(crate) fn add(&self) {
        let slot = COUNTER_SLOT.with(|s| *s);
        self.slots[slot].0.fetch_add(1, AtomicOrdering::Relaxed);
    }

    /// All calls counted so far.
    pub(crate) fn total(&self) -> u64 {
        self.slots
            .iter()
            .map(|s| s.0.load(AtomicOrdering::Relaxed))
            .sum()
    }
}

/// Makes room for `extra` more open fds: raises the soft `RLIMIT_NOFILE`
/// toward the hard limit when it is too low (a host with thousands of
/// processes needs a pidfd for each), and grows the fd table once.
pub(crate) fn reserve_fds(extra: usize) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let want = (extra + 256) as u64;
    let limit = getrlimit(Resource::Nofile);
    let mut usable = limit.current.unwrap_or(u64::MAX);
    if usable < want {
        let raised = limit.maximum.map_or(want, |max| max.min(want));
        if raised > usable
            && setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: Some(raised),
                    maximum: limit.maximum,
                },
            )
            .is_ok()
        {
            usable = raised;
        }
    }
    // Growing the table: duplicate any fd to the highest number needed.
    let target = want.min(usable).saturating_sub(1).min(i32::MAX as u64) as i32;
    if let Ok(dir) = rustix::fs::openat(
        rustix::fs::CWD,
        "/proc/self",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) {
        let _ = rustix::io::fcntl_dupfd_cloexec(&dir, target);
    }
}

/// How two (pid, fd) pairs are compared.
pub(crate) type FileComparator<'a> =
    dyn Fn(Pid, FdNum, Pid, FdNum) -> Result<KcmpOrdering> + Sync + 'a;

/// kcmp when it works; otherwise the fallbacks of [`kcmp::fallback`], which
/// know equality but no order ("unordered" makes the grouping exact but
/// linear per bucket).
pub(crate) fn file_comparator(use_kcmp: bool, calls: &CallCounter) -> Box<FileComparator<'_>> {
    if use_kcmp {
        Box::new(move |p1, f1, p2, f2| {
            calls.add();
            compare_files(p1, f1, p2, f2)
        })
    } else {
        Box::new(move |p1, f1, p2, f2| {
            calls.add();
            let same = kcmp::fallback::same_description_without_kcmp(p1, f1, p2, f2)?;
            Ok(if same.same {
                KcmpOrdering::Equal
            } else {
                KcmpOrdering::Unordered(3)
            })
        })
    }
}

/// An fd in the flat table: (task index, fd, target).
struct FdRow {
    task: u32,
    fd: FdNum,
    target: String,
}

/// Scans the selected tasks. See the module documentation.
pub fn scan(options: &ScanOptions) -> Result<SharingMap> {
    scan_with_progress(options, &|_| {})
}

/// [`scan`] reporting progress to a callback (called from worker threads).
pub fn scan_with_progress(
    options: &ScanOptions,
    progress: &(dyn Fn(ScanProgress) + Sync),
) -> Result<SharingMap> {
    crate::pidns::check()?;
    let started = Instant::now();
    let workers = workers(options.workers);
    let calls = CallCounter::default();
    let availability = kcmp::fallback::kcmp_available();
    let cmp = file_comparator(availability.is_available(), &calls);
    let mut map = SharingMap::default();

    // Sentinels first, so that they can be excluded from the selection.
    let mut sentinels = Sentinels::spawn();
    let sentinel_pids: HashSet<Pid> = sentinels
        .as_ref()
        .map(|s| s.pids().into_iter().collect())
        .unwrap_or_default();

    let mut phases: BTreeMap<String, f64> = BTreeMap::new();
    let mut lap = Instant::now();
    let mut mark = |name: &str| {
        phases.insert(name.to_string(), lap.elapsed().as_secs_f64() * 1000.0);
        lap = Instant::now();
    };
    mark("sentinels");
    let mut skipped = Vec::new();
    let procs = select_processes(options, &sentinel_pids, &mut skipped)?;
    mark("select");
    if procs.is_empty() && skipped.is_empty() {
        return Err(Error::InvalidArgument(
            "no process matches the selection".into(),
        ));
    }

    // One pidfd per task will be open at once: make room now, while this
    // thread may still be the only one (growing a shared fd table later
    // waits for an RCU grace period each time it doubles).
    reserve_fds(procs.len() * if options.threads { 4 } else { 1 });

    let freeze_guard = if options.freeze {
        let pids: Vec<Pid> = procs
            .iter()
            .filter(|s| !s.is_kernel_thread() && !s.is_zombie())
            .map(|s| s.pid)
            .collect();
        let set = crate::freeze::freeze(&pids)?;
        map.frozen = set.is_held();
        map.freeze_released = set.released_early();
        map.not_frozen = set.not_frozen().to_vec();
        Some(set)
    } else {
        None
    };

    let (tasks, pin_skipped) = pin_tasks(&procs, options.threads, workers);
    skipped.extend(pin_skipped);
    mark("pin");

    // 1. List fds.
    let family = Family::new(&tasks, options.threads);
    let listed = list_fds_inheriting(&tasks, &family, options.threads, &*cmp, workers, progress);
    mark("list_fds");
    let mut rows: Vec<FdRow> = Vec::new();
    let mut failed: HashMap<u32, Skipped> = HashMap::new();
    let mut hinted_fds: Vec<Vec<FdNum>> = Vec::with_capacity(listed.len());
    for (i, (r, hinted)) in listed.into_iter().enumerate() {
        hinted_fds.push(hinted);
        match r {
            Ok(entries) => rows.extend(entries.into_iter().map(|e| FdRow {
                task: i as u32,
                fd: e.fd,
                target: e.target,
            })),
            Err(e) => {
                failed.insert(i as u32, skipped_from(tasks[i].record.pid, &e, "list fds"));
            }
        }
    }

    // 2. Inheritance hints: fork keeps fd numbers, so (task, N) is usually
    //    the description of (parent, N). One kcmp per such pair, in parallel;
    //    hits are joined, and only one fd per joined cluster is grouped below.
    let clusters = inheritance_clusters(&rows, &tasks, &family, &hinted_fds, &*cmp, workers);
    mark("hints");

    // 3. Bucket the cluster roots by key.
    let mut buckets: HashMap<&str, Vec<u32>> = HashMap::new();
    for (i, row) in rows.iter().enumerate() {
        if clusters.root[i] == i as u32 {
            buckets
                .entry(procfs::bucket_key(&row.target))
                .or_default()
                .push(i as u32);
        }
    }
    let mut buckets: Vec<(&str, Vec<u32>)> = buckets.into_iter().collect();
    // Largest first, so the workers finish together.
    buckets.sort_unstable_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(b.0)));

    // 4. Split buckets into descriptions with kcmp's order.
    let by_key = AtomicU64::new(0);
    let compared = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let total = buckets.len() as u64;
    let task_failures: Mutex<HashMap<u32, Skipped>> = Mutex::new(HashMap::new());
    let vanished_fds = AtomicU64::new(0);
    let repaired = AtomicU64::new(0);
    let row_cmp = |a: u32, b: u32| {
        let (ra, rb) = (&rows[a as usize], &rows[b as usize]);
        cmp(
            tasks[ra.task as usize].record.pid,
            ra.fd,
            tasks[rb.task as usize].record.pid,
            rb.fd,
        )
    };
    let report = |item: u32, err: &Error| {
        note_failure(
            err,
            rows[item as usize].task,
            &tasks,
            &task_failures,
            &vanished_fds,
        );
    };
    let group_bucket = |b: usize, split: bool| -> Vec<Vec<u32>> {
        let roots = &buckets[b].1;
        let d = done.fetch_add(1, AtomicOrdering::Relaxed) + 1;
        if d % 256 == 0 || d == total {
            progress(ScanProgress {
                phase: 1,
                done: d,
                total,
            });
        }
        let first = &rows[roots[0] as usize];
        let expand = |groups: Vec<Vec<u32>>| -> Vec<Vec<u32>> {
            groups
                .into_iter()
                .map(|g| g.into_iter().flat_map(|r| clusters.members(r)).collect())
                .collect()
        };
        if roots.len() == 1 || matches!(FdTarget::parse(&first.target), FdTarget::Socket(_)) {
            by_key.fetch_add(roots.len() as u64, AtomicOrdering::Relaxed);
            return expand(vec![roots.clone()]);
        }
        compared.fetch_add(1, AtomicOrdering::Relaxed);
        let build = |items: &[u32]| {
            let mut groups = OrderedGroups::new();
            let mut c = row_cmp;
            let mut failed_roots = Vec::new();
            for &m in items {
                if let Err(e) = groups.insert(m, &mut c) {
                    failed_roots.push((e.item, e.error));
                }
            }
            (groups, failed_roots)
        };
        let (mut groups, mut failed_roots) = if split && workers > 1 {
            let chunk = roots.len().div_ceil(workers);
            let parts = parallel_map(workers, workers, |w| {
                build(&roots[(w * chunk).min(roots.len())..((w + 1) * chunk).min(roots.len())])
            });
            let mut c = row_cmp;
            let mut merged = OrderedGroups::new();
            let mut failed = Vec::new();
            for (g, f) in parts {
                merged = merged.merge(g, &mut c);
                failed.extend(f);
            }
            (merged, failed)
        } else {
            build(roots)
        };
        failed_roots.extend(groups.dropped().iter().cloned());
        // A failed root takes only itself out: the other fds of its cluster
        // are placed on their own.
        let mut c = row_cmp;
        for (root, err) in failed_roots {
            report(root, &err);
            for m in clusters.members(root).into_iter().filter(|&m| m != root) {
                if let Err(e) = groups.insert(m, &mut c) {
                    report(e.item, &e.error);
                }
            }
        }
        // Representatives may have changed under the search (a running
        // process closed and reused an fd number): check, and repair.
        let before = groups.dropped().len();
        let rebuilds = if split && workers > 1 {
            // The adjacent pairs are independent: check them on all workers.
            let n = groups.len();
            let part = n.div_ceil(workers).max(1);
            let fine = parallel_map(workers, workers, |w| {
                groups.ordered_within(w * part + 1..((w + 1) * part + 1).min(n), &row_cmp)
            });
            if fine.iter().all(|&ok| ok) {
                0
            } else {
                groups.rebuild_and_repair(&mut c, 3)
            }
        } else {
            groups.check_and_repair(&mut c, 3)
        };
        if rebuilds > 0 {
            repaired.fetch_add(1, AtomicOrdering::Relaxed);
            for (item, err) in &groups.dropped()[before..] {
                report(*item, err);
            }
        }
        expand_partial(groups.into_groups(), &clusters)
    };
    // Big buckets one at a time on all workers, then the rest in parallel.
    let big: Vec<usize> = (0..buckets.len())
        .filter(|&b| buckets[b].1.len() >= SPLIT_BUCKET)
        .collect();
    let mut grouped: Vec<Option<Vec<Vec<u32>>>> = (0..buckets.len()).map(|_| None).collect();
    for &b in &big {
        grouped[b] = Some(group_bucket(b, true));
    }
    let small: Vec<usize> = (0..buckets.len())
        .filter(|&b| buckets[b].1.len() < SPLIT_BUCKET)
        .collect();
    for (b, g) in small.iter().zip(parallel_map(small.len(), workers, |i| {
        group_bucket(small[i], false)
    })) {
        grouped[*b] = Some(g);
    }
    let grouped: Vec<Vec<Vec<u32>>> = grouped
        .into_iter()
        .map(|g| g.expect("every bucket grouped"))
        .collect();
    failed.extend(
        task_failures
            .into_inner()
            .unwrap_or_else(|p| p.into_inner()),
    );
    mark("group_fds");

    // 4. Process-level kinds.
    let kind_candidates: Vec<u32> = (0..tasks.len() as u32)
        .filter(|i| !failed.contains_key(i))
        .filter(|&i| {
            let r = &tasks[i as usize].record;
            !r.kernel_thread && !r.is_zombie()
        })
        .collect();
    if let Ok(s) = &mut sentinels {
        s.wait_ready();
    }
    let kinds = if let Some(why) = kcmp::fallback::process_kinds_unavailable(availability) {
        ProcessResource::ALL
            .into_iter()
            .map(|k| (k, KindOutcome::Unavailable(why.clone())))
            .collect()
    } else {
        process_kinds(
            &tasks,
            &kind_candidates,
            sentinels.as_ref().ok(),
            &calls,
            &repaired,
            workers,
            progress,
        )
    };
    for (_, outcome) in &kinds {
        if let KindOutcome::Groups(_, failures) = outcome {
            for (t, e) in failures {
                if e.is_permission() || e.is_gone() {
                    failed
                        .entry(*t)
                        .or_insert_with(|| skipped_from(tasks[*t as usize].record.pid, e, "kcmp"));
                }
            }
        }
    }

    mark("process_kinds");

    // 5. Verify that every task lived through the scan.
    let mut gone: HashSet<u32> = HashSet::new();
    for (i, t) in tasks.iter().enumerate() {
        if failed.contains_key(&(i as u32)) {
            continue;
        }
        if let Err(e) = t.handle.verify() {
            gone.insert(i as u32);
            failed.insert(
                i as u32,
                Skipped {
                    pid: t.record.pid,
                    reason: "ESRCH".into(),
                    detail: format!("{e}; its answers were discarded"),
                },
            );
        }
    }
    drop(sentinels);
    mark("verify");

    // 6. Assemble.
    let keep = |task: u32| !failed.contains_key(&task);
    // (bucket, position in kcmp order) of each description, for the index.
    let mut origin: Vec<(usize, usize)> = Vec::new();
    for (bucket, groups) in grouped.into_iter().enumerate() {
        for (position, g) in groups.into_iter().enumerate() {
            let mut members: Vec<FdRef> = g
                .iter()
                .map(|&r| &rows[r as usize])
                .filter(|r| keep(r.task))
                .map(|r| FdRef {
                    pid: tasks[r.task as usize].record.pid,
                    fd: r.fd,
                })
                .collect();
            if members.is_empty() {
                continue;
            }
            members.sort_unstable();
            let target = rows[g[0] as usize].target.clone();
            map.open_files.push(OpenFileDescription { target, members });
            origin.push((bucket, position));
        }
    }
    let mut permutation: Vec<usize> = (0..map.open_files.len()).collect();
    permutation
        .sort_unstable_by(|&a, &b| map.open_files[a].members[0].cmp(&map.open_files[b].members[0]));
    let mut sorted = Vec::with_capacity(permutation.len());
    let mut slots: Vec<Option<OpenFileDescription>> = map.open_files.drain(..).map(Some).collect();
    let mut by_bucket: Vec<Vec<(usize, usize)>> = vec![Vec::new(); buckets.len()];
    for (new_index, &old) in permutation.iter().enumerate() {
        sorted.push(slots[old].take().expect("each description once"));
        let (bucket, position) = origin[old];
        by_bucket[bucket].push((position, new_index));
    }
    map.open_files = sorted;
    for (bucket, mut entries) in by_bucket.into_iter().enumerate() {
        entries.sort_unstable();
        map.order.insert(
            buckets[bucket].0.to_string(),
            entries.into_iter().map(|(_, i)| i).collect(),
        );
    }
    map.ordered = availability.is_available();
    for (kind, outcome) in kinds {
        match outcome {
            KindOutcome::Groups(groups, _) => {
                let mut out: Vec<Vec<Pid>> = groups
                    .into_iter()
                    .map(|g| {
                        let mut pids: Vec<Pid> = g
                            .into_iter()
                            .filter(|&t| keep(t))
                            .map(|t| tasks[t as usize].record.pid)
                            .collect();
                        pids.sort_unstable();
                        pids
                    })
                    .filter(|g| g.len() >= 2)
                    .collect();
                out.sort_unstable();
                map.shared.insert(kind.name().to_string(), out);
            }
            KindOutcome::Unavailable(why) => {
                map.unavailable.insert(kind.name().to_string(), why);
            }
        }
    }
    for (i, t) in tasks.iter().enumerate() {
        if keep(i as u32) {
            map.tasks.push(t.record.clone());
        }
    }
    map.tasks.sort_unstable_by_key(|t| t.pid);
    let mut all_skipped: Vec<Skipped> = skipped.into_iter().chain(failed.into_values()).collect();
    all_skipped.sort_unstable_by_key(|s| s.pid);
    all_skipped.dedup_by_key(|s| s.pid);
    map.skipped = all_skipped;
    if map.tasks.is_empty() {
        let why = map
            .skipped
            .first()
            .map(|s| format!("{} ({}): {}", s.pid, s.reason, s.detail))
            .unwrap_or_else(|| "no task".into());
        return Err(Error::InvalidArgument(
            format!("nothing could be scanned: {why}").into(),
        ));
    }
    // The epoll section, while the tasks are still frozen.
    let epoll_started = Instant::now();
    let mut epoll_calls = 0;
    if !options.skip_epoll {
        (map.epoll, epoll_calls) = crate::epoll::resolve_scan_counted(&map);
    }
    if let Some(set) = freeze_guard {
        // Released early (window over, kcmp stopped): say so (issue 10).
        if let Some(why) = set.finish()? {
            (map.frozen, map.freeze_released) = (false, Some(why));
        }
    }
    phases.insert(
        "epoll_thaw".into(),
        epoll_started.elapsed().as_secs_f64() * 1000.0,
    );
    map.stats = ScanStats {
        kcmp_calls: calls.total() + epoll_calls,
        elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
        buckets_compared: compared.load(AtomicOrdering::Relaxed),
        buckets_split: big.len() as u64,
        fds_decided_by_key: by_key.load(AtomicOrdering::Relaxed),
        fds_vanished: vanished_fds.load(AtomicOrdering::Relaxed),
        groupings_repaired: repaired.load(AtomicOrdering::Relaxed),
        phase_ms: phases,
        method: if availability.is_available() {
            "kcmp".into()
        } else {
            "fallback (F_DUPFD_QUERY / epoll / pidfd_getfd: equality only)".into()
        },
    };
    Ok(map)
}

/// Buckets with at least this many cluster roots are grouped on all workers
/// (halves grouped in parallel, then merged in linear time).
const SPLIT_BUCKET: usize = 1024;

/// Clusters of fds proven to be one description by an inheritance hint.
pub(crate) struct Clusters {
    /// The cluster root of each row.
    root: Vec<u32>,
    /// The members of each cluster with more than one fd, by root.
    members: HashMap<u32, Vec<u32>>,
}

impl Clusters {
    /// The rows of the cluster rooted at `root` (itself for a single fd).
    fn members(&self, root: u32) -> Vec<u32> {
        self.members
            .get(&root)
            .cloned()
            .unwrap_or_else(|| vec![root])
    }
}

/// Expands groups of cluster roots into groups of rows, keeping a group's
/// non-root members in place when its root was replaced.
fn expand_partial(groups: Vec<Vec<u32>>, clusters: &Clusters) -> Vec<Vec<u32>> {
    groups
        .into_iter()
        .map(|g| {
            let mut out = Vec::with_capacity(g.len());
            for r in g {
                if clusters.root[r as usize] == r {
                    out.extend(clusters.members(r));
                } else {
                    out.push(r);
                }
            }
            out
        })
        .collect()
}

/// Joins fds proven to be one description before the global grouping, in
/// one parallel pass over the tasks, parents before children:
/// - inheritance: (task, N) with (parent, N) where the listing proved them
///   one description ([`list_fds_inheriting`]);
/// - within the task: the fds of each bucket grouped among themselves, so
///   that a dup joins its source (and through it an inherited cluster)
///   without a global search. The inherited fds take their places from
///   the parent's sorted grouping without any comparison; only the task's
///   own fds are searched.
fn inheritance_clusters(
    rows: &[FdRow],
    tasks: &[SelectedTask],
    family: &Family,
    hinted_fds: &[Vec<FdNum>],
    cmp: &FileComparator<'_>,
    workers: usize,
) -> Clusters {
    // Each task's rows are contiguous and sorted by fd.
    let mut range_of_task: Vec<(usize, usize)> = vec![(0, 0); tasks.len()];
    let mut start = 0;
    for i in 1..=rows.len() {
        if i == rows.len() || rows[i].task != rows[start].task {
            range_of_task[rows[start].task as usize] = (start, i);
            start = i;
        }
    }
    let row_of = |t: usize, fd: FdNum| -> Option<usize> {
        let (lo, hi) = range_of_task[t];
        rows[lo..hi]
            .binary_search_by_key(&fd, |r| r.fd)
            .ok()
            .map(|k| lo + k)
    };
    let is_socket = |i: usize| matches!(FdTarget::parse(&rows[i].target), FdTarget::Socket(_));
    let levels = &family.levels;
    /// A task's local grouping: for each bucket key, its groups in kcmp order.
    type LocalGroups<'r> = HashMap<&'r str, Vec<Vec<u32>>>;
    let mut local: Vec<LocalGroups<'_>> = (0..tasks.len()).map(|_| HashMap::new()).collect();
    let mut edges: Vec<Vec<(u32, u32)>> = Vec::new();
    for level in levels {
        let results = parallel_map(level.len(), workers, |x| {
            let t = level[x] as usize;
            let (lo, hi) = range_of_task[t];
            let mut out = Vec::new();
            let mut mine: LocalGroups<'_> = HashMap::new();
            if lo == hi {
                return (out, mine);
            }
            let me = &tasks[t].record;
            // Inheritance: the parent's row for each fd proven to be the parent's.
            let mut parent_row: Vec<Option<u32>> = vec![None; hi - lo];
            let parent = family.parent[t];
            if let Some(p) = parent {
                for &fd in &hinted_fds[t] {
                    if let (Some(i), Some(j)) = (row_of(t, fd), row_of(p as usize, fd)) {
                        out.push((i as u32, j as u32));
                        parent_row[i - lo] = Some(j as u32);
                    }
                }
            }
            // Local grouping, seeded with the inherited fds in the parent's order.
            let mut by_key: HashMap<&str, Vec<u32>> = HashMap::new();
            for (i, row) in rows.iter().enumerate().take(hi).skip(lo) {
                if !is_socket(i) {
                    by_key
                        .entry(procfs::bucket_key(&row.target))
                        .or_default()
                        .push(i as u32);
                }
            }
            for (key, items) in by_key {
                let parent_groups = parent.and_then(|p| local[p as usize].get(key));
                let mut seeded: Vec<Vec<u32>> = Vec::new();
                let mut rest: Vec<u32> = Vec::new();
                if let Some(pg) = parent_groups {
                    let mut group_of: HashMap<u32, usize> = HashMap::new();
                    for (gi, g) in pg.iter().enumerate() {
                        for &m in g {
                            group_of.insert(m, gi);
                        }
                    }
                    seeded = vec![Vec::new(); pg.len()];
                    for &i in &items {
                        match parent_row[i as usize - lo].and_then(|j| group_of.get(&j)) {
                            Some(&gi) => seeded[gi].push(i),
                            None => rest.push(i),
                        }
                    }
                } else {
                    rest = items;
                }
                let mut groups = OrderedGroups::from_sorted(seeded);
                let mut c =
                    |a: u32, b: u32| cmp(me.pid, rows[a as usize].fd, me.pid, rows[b as usize].fd);
                for i in rest {
                    let _ = groups.insert(i, &mut c); // failures resurface globally
                }
                let groups = groups.into_groups();
                for g in &groups {
                    out.extend(g.windows(2).map(|w| (w[1], w[0])));
                }
                mine.insert(key, groups);
            }
            (out, mine)
        });
        for (x, (e, mine)) in results.into_iter().enumerate() {
            edges.push(e);
            local[level[x] as usize] = mine;
        }
    }
    let mut root: Vec<u32> = (0..rows.len() as u32).collect();
    fn find(root: &mut [u32], mut x: u32) -> u32 {
        while root[x as usize] != x {
            let up = root[root[x as usize] as usize];
            root[x as usize] = up;
            x = up;
        }
        x
    }
    for (a, b) in edges.into_iter().flatten() {
        let (ra, rb) = (find(&mut root, a), find(&mut root, b));
        if ra != rb {
            // The lower row (an ancestor's, usually) becomes the root.
            let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
            root[hi as usize] = lo;
        }
    }
    let mut members: HashMap<u32, Vec<u32>> = HashMap::new();
    for i in 0..rows.len() as u32 {
        let r = find(&mut root, i);
        root[i as usize] = r;
        if r != i {
            members.entry(r).or_insert_with(|| vec![r]).push(i);
        }
    }
    Clusters { root, members }
}

fn note_failure(
    err: &Error,
    task: u32,
    tasks: &[SelectedTask],
    failures: &Mutex<HashMap<u32, Skipped>>,
    vanished_fds: &AtomicU64,
) {
    if err.is_permission() || err.is_gone() {
        let s = skipped_from(tasks[task as usize].record.pid, err, "kcmp");
        failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(task)
            .or_insert(s);
    } else {
        // EBADF: the fd was closed during the scan.
        vanished_fds.fetch_add(1, AtomicOrdering::Relaxed);
    }
}

/// What came of grouping one process-level kind.
enum KindOutcome {
    /// Groups of task indices, and tasks that failed (EPERM, exited).
    Groups(Vec<Vec<u32>>, Vec<(u32, Error)>),
    Unavailable(String),
}

/// A task index or a sentinel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KindItem {
    Task(u32),
    Sentinel(Pid),
}

fn process_kinds(
    tasks: &[SelectedTask],
    candidates: &[u32],
    sentinels: Option<&Sentinels>,
    calls: &CallCounter,
    repaired: &AtomicU64,
    workers: usize,
    progress: &(dyn Fn(ScanProgress) + Sync),
) -> Vec<(ProcessResource, KindOutcome)> {
    let kinds = ProcessResource::ALL;
    let done = AtomicU64::new(0);
    let results = parallel_map(kinds.len(), workers, |k| {
        let kind = kinds[k];
        let pid_of = |item: KindItem| match item {
            KindItem::Task(t) => tasks[t as usize].record.pid,
            KindItem::Sentinel(p) => p,
        };
        let mut c = |a: KindItem, b: KindItem| {
            calls.add();
            compare_process(kind, pid_of(a), pid_of(b))
        };
        let mut groups = OrderedGroups::new();
        // Sentinels: the zombie for vm/files/fs, the live pair for io/sysvsem.
        let mut live = Vec::new();
        let mut zombie = None;
        if let Some(s) = sentinels {
            match kind {
                ProcessResource::Vm | ProcessResource::Files | ProcessResource::Fs => {
                    zombie = s.zombie_pid().map(KindItem::Sentinel);
                }
                ProcessResource::Io | ProcessResource::Sysvsem => {
                    live = s.live_pids().into_iter().map(KindItem::Sentinel).collect();
                }
                ProcessResource::Sighand => {}
            }
        } else if kind.may_be_absent() {
            return KindOutcome::Unavailable(
                "could not start sentinel tasks to tell \"none\" from \"shared\"".into(),
            );
        }
        for item in live.iter().chain(zombie.iter()) {
            if groups.insert(*item, &mut c).is_err() {
                return KindOutcome::Unavailable(format!(
                    "a sentinel task could not be compared on {}",
                    kind.name()
                ));
            }
        }
        let mut failures = Vec::new();
        for &t in candidates {
            if let Err(e) = groups.insert(KindItem::Task(t), &mut c) {
                failures.push((t, e.error));
            }
        }
        let d = done.fetch_add(1, AtomicOrdering::Relaxed) + 1;
        progress(ScanProgress {
            phase: 2,
            done: d,
            total: kinds.len() as u64,
        });
        // A task may have exec'd or exited under the search: check, repair.
        if groups.check_and_repair(&mut c, 3) > 0 {
            repaired.fetch_add(1, AtomicOrdering::Relaxed);
        }
        let groups = groups.into_groups();
        // The group of the absent object.
        let absent_group = if let Some(z) = zombie {
            groups.iter().position(|g| g.contains(&z))
        } else if live.len() == 2 {
            let a = groups.iter().position(|g| g.contains(&live[0]));
            let b = groups.iter().position(|g| g.contains(&live[1]));
            if a != b {
                return KindOutcome::Unavailable(format!(
                    "two fresh sentinel tasks do not compare equal on {} (this process may have an \
                     I/O priority that gives children their own context), so \"none\" cannot be \
                     told from \"shared\"",
                    kind.name()
                ));
            }
            a
        } else {
            None
        };
        let out: Vec<Vec<u32>> = groups
            .into_iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != absent_group)
            .map(|(_, g)| {
                g.into_iter()
                    .filter_map(|item| match item {
                        KindItem::Task(t) => Some(t),
                        KindItem::Sentinel(_) => None,
                    })
                    .collect()
            })
            .collect();
        KindOutcome::Groups(out, failures)
    });
    kinds.into_iter().zip(results).collect()
}
