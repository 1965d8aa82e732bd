//! Step 4, group files: fds bucketed by link text, each bucket split into
//! open file descriptions by kcmp against anchors ([`super::anchor`],
//! [`super::sorted`]), then descriptions of one file found under two names
//! (renamed during the scan) joined by their mount and inode.
//!
//! A bucket key never proves identity (an `O_PATH` reopen of a socket has
//! the socket's link text): every bucket of two or more fds is compared,
//! sockets included. Inheritance hints from the listing only choose which
//! description to compare with first.

use super::anchor::{mount_and_inode, own_mount_inode_type, Budget, Rep};
use super::list::{Family, Listing};
use super::pin::SelectedTask;
use super::select::skipped_from;
use super::sorted::{Placed, Rows, Sorted};
use crate::model::{ScanProgress, ScanStats, Skipped};
use crate::parallel::{parallel_map, parallel_map_lazy, CallCounter};
use crate::procfs::{self, FdTarget};
use buckets::buckets;
use kcmp::{compare_files, Error, FdNum, KcmpOrdering, Pid, Result};
use rustix::fd::{AsFd, BorrowedFd};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

mod buckets;

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
        // An anchor comes under the calling thread's tid (`Budget::me`):
        // the fallbacks know this process's own fds by its pid.
        let me = Pid::this();
        let own = move |p: Pid| match super::own_table::this_thread() {
            Some(t) if t == p => me,
            _ => p,
        };
        Box::new(move |p1, f1, p2, f2| {
            calls.add();
            let same = kcmp::fallback::same_description_without_kcmp(own(p1), f1, own(p2), f2)?;
            Ok(if same.same {
                KcmpOrdering::Equal
            } else {
                KcmpOrdering::Unordered(3)
            })
        })
    }
}

/// One listed fd.
pub(crate) struct FdRow {
    /// Its task (index into the selected tasks).
    pub task: u32,
    /// Its number.
    pub fd: FdNum,
    /// Its link text when listed (lossy UTF-8).
    pub target: String,
    /// Its link's exact bytes when they are not valid UTF-8.
    pub raw: Option<Box<[u8]>>,
    /// The parent's row it was proven to share at listing time.
    hint: Option<u32>,
}

/// The fds of the listed tasks, grouped into descriptions.
pub(crate) struct Grouped {
    /// Every listed fd.
    pub rows: Vec<FdRow>,
    /// The bucket keys, in the order of `groups`.
    pub keys: Vec<String>,
    /// For each bucket, its descriptions in kcmp order (row indices).
    pub groups: Vec<Vec<Vec<u32>>>,
    /// Keys whose descriptions are not in kcmp order (joined across names).
    pub unordered_keys: HashSet<String>,
    /// Tasks whose fds could not be compared (EPERM, exited), with the error.
    pub task_errors: Vec<(u32, Error)>,
    /// Fds left out, with the error (closed meanwhile, unreadable link).
    pub bad_fds: Vec<(u32, FdNum, Error)>,
    /// Rows seen changing while they were placed.
    pub changed: Vec<u32>,
    /// The file type (`st_mode & S_IFMT`) of path descriptions whose anchor
    /// told it, by the description's first row.
    pub file_types: foldhash::HashMap<u32, u32>,
    /// Tasks whose fd directory could not be read.
    pub unlisted: Vec<(u32, Error)>,
    /// Fds decided by their key alone (single fds).
    pub by_key: u64,
    /// Fds that joined through their inheritance hint.
    pub by_hint: u64,
    /// Buckets compared.
    pub compared: u64,
    /// Buckets grouped in parts on all workers.
    pub split: u64,
    /// Descriptions joined across names (renamed during the scan).
    pub renamed: u64,
    /// The first rows of descriptions whose representative was a member
    /// standing in (no copy could be taken).
    pub without_anchor: foldhash::HashSet<u32>,
}

/// The rows and tasks, as the placement sees them.
struct Table<'a> {
    rows: &'a [FdRow],
    tasks: &'a [SelectedTask],
}

impl Rows for Table<'_> {
    fn locate(&self, row: u32) -> (Pid, FdNum) {
        let r = &self.rows[row as usize];
        (self.tasks[r.task as usize].via, r.fd)
    }
    fn pidfd(&self, row: u32) -> Option<BorrowedFd<'_>> {
        self.tasks[self.rows[row as usize].task as usize].pidfd()
    }
    fn task(&self, row: u32) -> u32 {
        self.rows[row as usize].task
    }
}

impl Grouped {
    /// The tasks that failed here (fd directory unreadable, EPERM, exited).
    pub(crate) fn failed_tasks(&self, tasks: &[SelectedTask]) -> HashMap<u32, Skipped> {
        let mut failed = HashMap::new();
        for (t, e) in &self.unlisted {
            failed.insert(
                *t,
                skipped_from(tasks[*t as usize].record.pid, e, "list fds"),
            );
        }
        for (t, e) in &self.task_errors {
            failed
                .entry(*t)
                .or_insert_with(|| skipped_from(tasks[*t as usize].record.pid, e, "kcmp"));
        }
        failed
    }

    /// The grouping's counters.
    pub(crate) fn stats(&self) -> ScanStats {
        let vanished = self
            .bad_fds
            .iter()
            .filter(|b| b.2.errno_name() == Some("EBADF"));
        ScanStats {
            buckets_compared: self.compared,
            buckets_split: self.split,
            fds_decided_by_key: self.by_key,
            fds_joined_by_hint: self.by_hint,
            fds_vanished: vanished.count() as u64,
            descriptions_joined_across_names: self.renamed,
            descriptions_without_anchor: self.without_anchor.len() as u64,
            ..ScanStats::default()
        }
    }
}

/// A path description's (mnt_id, ino).
type MountInode = (u64, u64);

/// What came of one bucket.
#[derive(Default)]
struct BucketOut {
    /// Descriptions in kcmp order, each with its (mnt_id, ino) for paths
    /// and its file type when the engine's copy told it.
    groups: Vec<(Vec<u32>, Option<MountInode>, Option<u32>)>,
    failures: Vec<(u32, Error)>,
    changed: Vec<u32>,
    /// The first rows of groups whose representative was a member
    /// standing in.
    unanchored: Vec<u32>,
    /// Fds that joined through their inheritance hint.
    by_hint: u64,
}

/// Groups the listed fds of `tasks` into open file descriptions.
pub(crate) fn group_files(
    tasks: &[SelectedTask],
    family: &Family,
    listed: Vec<Listing>,
    cmp: &FileComparator<'_>,
    budget: &Budget,
    workers: usize,
    progress: &(dyn Fn(ScanProgress) + Sync),
) -> Grouped {
    let mut g = flatten(family, listed);
    let table = Table {
        rows: &g.rows,
        tasks,
    };
    let buckets = buckets(&g.rows, family);
    // Anchors open at once: at most a bucket's fds per worker. Grow the fd
    // table once for them now (each later doubling of a table shared by
    // threads waits for an RCU grace period).
    let largest = buckets.first().map_or(0, |b| b.1.len());
    super::pin::reserve_fds(tasks.len() + largest * workers);
    let split = split_buckets(&buckets, workers);
    let done = AtomicU64::new(0);
    let compared = AtomicU64::new(0);
    // Buckets go largest first: a big scan starts every worker at once, a
    // small one only when it turns out to need them.
    let eager = g.rows.len() >= EAGER_ROWS;
    let one = |b: usize| {
        let d = done.fetch_add(1, AtomicOrdering::Relaxed) + 1;
        if d % 256 == 0 || d == buckets.len() as u64 {
            progress(ScanProgress {
                phase: 1,
                done: d,
                total: buckets.len() as u64,
            });
        }
        if buckets[b].1.len() > 1 {
            compared.fetch_add(1, AtomicOrdering::Relaxed);
        }
        (!split[b]).then(|| group_bucket(&table, buckets[b].0, &buckets[b].1, cmp, budget, 1))
    };
    let outs = match eager {
        true => parallel_map(buckets.len(), workers, one),
        false => parallel_map_lazy(buckets.len(), workers, one),
    };
    // Big buckets one at a time, each on all workers.
    let outs: Vec<BucketOut> = outs
        .into_iter()
        .enumerate()
        .map(|(b, o)| {
            o.unwrap_or_else(|| {
                group_bucket(&table, buckets[b].0, &buckets[b].1, cmp, budget, workers)
            })
        })
        .collect();
    g.split = split.iter().filter(|&&s| s).count() as u64;
    g.compared = compared.into_inner();
    let keys: Vec<String> = buckets.iter().map(|b| b.0.to_string()).collect();
    let sizes: Vec<usize> = buckets.iter().map(|b| b.1.len()).collect();
    drop(buckets);
    let mut groups = Vec::with_capacity(outs.len());
    let mut inodes: foldhash::HashMap<(u64, u64), Vec<(usize, usize)>> = Default::default();
    for (b, out) in outs.into_iter().enumerate() {
        g.by_key += (sizes[b] == 1) as u64;
        g.by_hint += out.by_hint;
        for (e_row, err) in out.failures {
            classify(&mut g, e_row, err);
        }
        g.changed.extend(out.changed);
        g.without_anchor.extend(out.unanchored);
        let mut descs = Vec::with_capacity(out.groups.len());
        for (i, (rows, ino, file_type)) in out.groups.into_iter().enumerate() {
            if let Some(ino) = ino {
                inodes.entry(ino).or_default().push((b, i));
            }
            if let (Some(t), Some(&first)) = (file_type, rows.first()) {
                g.file_types.insert(first, t);
            }
            descs.push(rows);
        }
        groups.push(descs);
    }
    g.keys = keys;
    g.groups = groups;
    join_renamed(&mut g, tasks, inodes, cmp, budget);
    g
}

/// The listings as one table of rows (each task's rows contiguous, by fd),
/// with inheritance hints resolved to the parent's row.
fn flatten(family: &Family, listed: Vec<Listing>) -> Grouped {
    let mut g = Grouped {
        rows: Vec::new(),
        keys: Vec::new(),
        groups: Vec::new(),
        unordered_keys: HashSet::new(),
        task_errors: Vec::new(),
        bad_fds: Vec::new(),
        changed: Vec::new(),
        file_types: Default::default(),
        unlisted: Vec::new(),
        by_key: 0,
        by_hint: 0,
        compared: 0,
        split: 0,
        renamed: 0,
        without_anchor: Default::default(),
    };
    let mut range: Vec<(usize, usize)> = vec![(0, 0); listed.len()];
    let rows: usize = listed
        .iter()
        .map(|l| l.fds.as_ref().map_or(0, Vec::len))
        .sum();
    g.rows.reserve_exact(rows);
    for (t, l) in listed.into_iter().enumerate() {
        for (fd, e) in l.bad {
            g.bad_fds.push((t as u32, fd, e));
        }
        match l.fds {
            Ok(entries) => {
                let start = g.rows.len();
                g.rows.extend(entries.into_iter().map(|e| {
                    let (fd, target, raw) = e.into_parts();
                    FdRow {
                        task: t as u32,
                        fd,
                        target,
                        raw,
                        hint: None,
                    }
                }));
                range[t] = (start, g.rows.len());
            }
            Err(e) => g.unlisted.push((t as u32, e)),
        }
    }
    g.rows_hints(family, &range);
    g
}

impl Grouped {
    /// Inheritance hints: fork keeps fd numbers, so a task's fd N with the
    /// same link text as its parent's fd N is probably the same
    /// description; grouping compares it with that description first.
    fn rows_hints(&mut self, family: &Family, range: &[(usize, usize)]) {
        for (t, &(lo, hi)) in range.iter().enumerate() {
            let Some(p) = family.parent[t] else {
                continue;
            };
            // Both tasks' rows ascend by fd: walked side by side.
            let (mut j, phi) = range[p as usize];
            for i in lo..hi {
                let fd = self.rows[i].fd;
                while j < phi && self.rows[j].fd < fd {
                    j += 1;
                }
                if j == phi {
                    break;
                }
                if self.rows[j].fd == fd
                    && procfs::bucket_key(&self.rows[j].target)
                        == procfs::bucket_key(&self.rows[i].target)
                {
                    self.rows[i].hint = Some(j as u32);
                }
            }
        }
    }
}

/// Splits one bucket into descriptions.
fn group_bucket(
    table: &Table<'_>,
    key: &str,
    items: &[u32],
    cmp: &FileComparator<'_>,
    budget: &Budget,
    workers: usize,
) -> BucketOut {
    let is_path = matches!(FdTarget::parse(key), FdTarget::Path(_));
    let mut out = BucketOut::default();
    if items.len() == 1 {
        let (p, f) = table.locate(items[0]);
        let ino = if is_path { mount_and_inode(p, f) } else { None };
        out.groups.push((items.to_vec(), ino, None));
        return out;
    }
    let mut sorted = Sorted::new(table, cmp, budget);
    if !crate::procfs::FdTarget::parse(key).may_flush() {
        sorted = sorted.without_paths();
    }
    if items.len() >= SPLIT_BUCKET && workers > 1 {
        group_in_parts(&mut sorted, &mut out, table, items, workers);
    } else {
        let placed = items
            .iter()
            .map(|&r| (r, place_hinted(&mut sorted, table, r)))
            .collect();
        note(&mut out, placed);
    }
    out.failures.append(&mut sorted.dropped_reps);
    out.by_hint = sorted.hinted;
    for group in sorted.into_groups() {
        let (ino, file_type) = match (&group.rep, is_path) {
            (Rep::Own(fd), true) => own_mount_inode_type(fd.as_fd()),
            (Rep::Member(m), true) => {
                let (p, f) = table.locate(*m);
                (mount_and_inode(p, f), None)
            }
            _ => (None, None),
        };
        let unanchored = matches!(group.rep, Rep::Member(_));
        budget.release(group.rep);
        if let (true, Some(&first)) = (unanchored, group.rows.first()) {
            out.unanchored.push(first);
        }
        if !group.rows.is_empty() {
            out.groups.push((group.rows, ino, file_type));
        }
    }
    out
}

/// Fds from which grouping starts all its workers at once.
const EAGER_ROWS: usize = 4096;

/// Buckets with fewer fds are never split.
const SPLIT_BUCKET: usize = 1024;

/// Which buckets are grouped in parts on all workers: those of at least
/// [`SPLIT_BUCKET`] fds that alone would keep one worker busy longer than
/// the others with every other bucket (cost `n log2 n`). Splitting costs
/// kcmp calls (the parts are merged back, one call per description), so
/// buckets that the workers can share whole stay whole.
fn split_buckets(buckets: &[(&str, Vec<u32>)], workers: usize) -> Vec<bool> {
    let cost = |n: usize| n as f64 * (n as f64).log2();
    let total: f64 = buckets.iter().map(|b| cost(b.1.len())).sum();
    buckets
        .iter()
        .map(|b| {
            workers > 1 && b.1.len() >= SPLIT_BUCKET && cost(b.1.len()) * workers as f64 > total
        })
        .collect()
}

/// A big bucket, on all workers. First, here, the fds that other fds of
/// the bucket have as inheritance hints (a parent's fds that its children
/// inherited), in family order: most other fds join their descriptions
/// through them (a part without them would search for every fd). Then the
/// rest in parts on all workers, each with a copy of those descriptions,
/// merged back by representative. (Before, the fds of the shallowest tasks
/// came first: a parent below the top, or a top holding one fd of the
/// bucket, left its children's hints pointing into another part.)
fn group_in_parts(
    sorted: &mut Sorted<'_, Table<'_>>,
    out: &mut BucketOut,
    table: &Table<'_>,
    items: &[u32],
    workers: usize,
) {
    let targets: foldhash::HashSet<u32> = items
        .iter()
        .filter_map(|&r| table.rows[r as usize].hint)
        .collect();
    let (first, rest): (Vec<u32>, Vec<u32>) = items.iter().partition(|r| targets.contains(r));
    let placed = first
        .iter()
        .map(|&r| (r, place_hinted(sorted, table, r)))
        .collect();
    note(out, placed);
    let chunk = rest.len().div_ceil(workers).max(1);
    let parts = parallel_map(workers, workers, |w| {
        let part = &rest[(w * chunk).min(rest.len())..((w + 1) * chunk).min(rest.len())];
        let mut s = sorted.fork();
        let placed: Vec<(u32, Placed)> = part
            .iter()
            .map(|&r| (r, place_hinted(&mut s, table, r)))
            .collect();
        (s.into_part(), placed)
    });
    for (part, placed) in parts {
        note(out, placed);
        let odd = sorted.absorb(part, workers);
        note(out, odd);
    }
}

/// Places one row, trying its inheritance hint first.
fn place_hinted<R: Rows>(sorted: &mut Sorted<'_, R>, table: &Table<'_>, r: u32) -> Placed {
    let hint = table.rows[r as usize].hint.and_then(|h| sorted.group_of(h));
    sorted.place(r, hint)
}

/// Records what became of placed rows.
fn note(out: &mut BucketOut, placed: Vec<(u32, Placed)>) {
    for (r, p) in placed {
        match p {
            Placed::Joined => {}
            Placed::Changed => out.changed.push(r),
            Placed::Failed(e) => out.failures.push((r, e)),
        }
    }
}

/// Files a failed comparison: the fd closed (EBADF) is one bad fd; a task
/// that exited or refused access is a task error.
fn classify(g: &mut Grouped, row: u32, err: Error) {
    let r = &g.rows[row as usize];
    if err.is_permission() || err.is_gone() {
        g.task_errors.push((r.task, err));
    } else {
        g.bad_fds.push((r.task, r.fd, err));
    }
}

/// Descriptions of one (mount, inode) found under two or more keys: a
/// file renamed while the scan listed its holders (or hard links). Their
/// rows are grouped again, together, against fresh anchors.
fn join_renamed(
    g: &mut Grouped,
    tasks: &[SelectedTask],
    inodes: foldhash::HashMap<(u64, u64), Vec<(usize, usize)>>,
    cmp: &FileComparator<'_>,
    budget: &Budget,
) {
    let mut taken: Vec<(usize, usize)> = Vec::new();
    let mut joined: Vec<(Vec<u32>, bool)> = Vec::new();
    for descs in inodes.into_values() {
        let keys: HashSet<usize> = descs.iter().map(|d| d.0).collect();
        if keys.len() < 2 {
            continue;
        }
        let mut items: Vec<u32> = descs
            .iter()
            .flat_map(|&(b, i)| g.groups[b][i].iter().copied())
            .collect();
        items.sort_unstable();
        let table = Table {
            rows: &g.rows,
            tasks,
        };
        let mut sorted = Sorted::new(&table, cmp, budget);
        let mut changed = Vec::new();
        let mut failures = Vec::new();
        for &r in &items {
            match sorted.place(r, None) {
                Placed::Joined => {}
                Placed::Changed => changed.push(r),
                Placed::Failed(e) => failures.push((r, e)),
            }
        }
        failures.append(&mut sorted.dropped_reps);
        for group in sorted.into_groups() {
            let unanchored = matches!(group.rep, Rep::Member(_));
            budget.release(group.rep);
            if !group.rows.is_empty() {
                joined.push((group.rows, unanchored));
            }
        }
        g.changed.extend(changed);
        for (r, e) in failures {
            classify(g, r, e);
        }
        taken.extend(descs);
        g.renamed += 1;
    }
    if joined.is_empty() {
        return;
    }
    for &(b, i) in &taken {
        if let Some(first) = g.groups[b][i].first() {
            g.without_anchor.remove(first);
        }
        g.groups[b][i].clear(); // emptied: skipped when assembled
    }
    // Each joined description goes under every key its members were
    // listed with; those keys lose their kcmp order.
    for (rows, unanchored) in joined {
        if let (true, Some(&first)) = (unanchored, rows.first()) {
            g.without_anchor.insert(first);
        }
        let mut keys: Vec<usize> = rows
            .iter()
            .filter_map(|&r| {
                let k = procfs::bucket_key(&g.rows[r as usize].target);
                g.keys.iter().position(|x| x == k)
            })
            .collect();
        keys.sort_unstable();
        keys.dedup();
        for b in keys {
            g.unordered_keys.insert(g.keys[b].clone());
            g.groups[b].push(rows.clone());
        }
    }
}
