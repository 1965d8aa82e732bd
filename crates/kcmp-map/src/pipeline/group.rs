//! Step 4, group files: fds bucketed by link text, each bucket split into
//! open file descriptions by kcmp's order.

use super::list::Family;
use super::list::Listing;
use super::pin::SelectedTask;
use super::select::skipped_from;
use crate::model::ScanProgress;
use crate::model::Skipped;
use crate::parallel::{parallel_map, CallCounter};
use crate::procfs::{self, FdTarget};
use kcmp::grouping::OrderedGroups;
use kcmp::{compare_files, Error, FdNum, KcmpOrdering, Pid, Result};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::Mutex;

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
pub(crate) struct FdRow {
    pub task: u32,
    pub fd: FdNum,
    pub target: String,
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

/// The fds of the listed tasks, grouped into descriptions.
pub(crate) struct Grouped {
    /// Every listed fd.
    pub rows: Vec<FdRow>,
    /// The bucket keys, in the order of `groups`.
    pub keys: Vec<String>,
    /// For each bucket, its descriptions in kcmp order (row indices).
    pub groups: Vec<Vec<Vec<u32>>>,
    /// Tasks that failed (listing, EPERM, exited), by task index.
    pub failed: HashMap<u32, Skipped>,
    /// Counters for [`crate::model::ScanStats`].
    pub by_key: u64,
    /// Buckets compared.
    pub compared: u64,
    /// Buckets split across workers.
    pub split: u64,
    /// Fds closed meanwhile.
    pub vanished: u64,
    /// Groupings repaired.
    pub repaired: u64,
}

/// Groups the listed fds of `tasks` into open file descriptions.
#[allow(clippy::too_many_arguments)]
pub(crate) fn group_files(
    tasks: &[SelectedTask],
    family: &Family,
    listed: Vec<Listing>,
    cmp: &FileComparator<'_>,
    workers: usize,
    progress: &(dyn Fn(ScanProgress) + Sync),
) -> Grouped {
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
    let clusters = inheritance_clusters(&rows, tasks, family, &hinted_fds, cmp, workers);

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
            tasks,
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
    let keys = buckets.iter().map(|b| b.0.to_string()).collect();
    drop(buckets);
    Grouped {
        rows,
        keys,
        groups: grouped,
        failed,
        by_key: by_key.into_inner(),
        compared: compared.into_inner(),
        split: big.len() as u64,
        vanished: vanished_fds.into_inner(),
        repaired: repaired.into_inner(),
    }
}
