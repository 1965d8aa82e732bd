//! Step 7, the map: the groups of the earlier steps become a
//! [`SharingMap`], leaving out every task that failed or did not live
//! through the scan.

use super::group::Grouped;
use super::kinds::KindOutcome;
use super::pin::SelectedTask;
use crate::model::{FdRef, OpenFileDescription, SharingMap, Skipped, SkippedFd};
use kcmp::{Pid, ProcessResource};
use std::collections::HashMap;

/// Fills `map.open_files` (sorted by first member), its kcmp-order index,
/// `skipped_fds` and `changed_fds`. A description listed under two keys
/// (joined across names) appears once, indexed under both.
pub(crate) fn assemble_files(
    map: &mut SharingMap,
    tasks: &[SelectedTask],
    grouped: Grouped,
    failed: &HashMap<u32, Skipped>,
) {
    let keep = |task: u32| failed.is_empty() || !failed.contains_key(&task);
    let Grouped {
        mut rows,
        keys,
        groups,
        unordered_keys,
        bad_fds,
        changed,
        file_types,
        without_anchor,
        ..
    } = grouped;
    let fd_ref = |rows: &[super::group::FdRow], r: u32| {
        let row = &rows[r as usize];
        FdRef {
            pid: tasks[row.task as usize].record.pid,
            fd: row.fd,
        }
    };
    // Each row's (pid, fd), or None for a failed task's: read in row
    // order (the groups visit rows in no order: a cache miss each).
    let refs: Vec<Option<FdRef>> = rows
        .iter()
        .enumerate()
        .map(|(r, row)| keep(row.task).then(|| fd_ref(&rows, r as u32)))
        .collect();
    let found = collect_members(&refs, groups);
    drop(refs);
    let new_index = build_in_order(map, &mut rows, found.members, &file_types, &without_anchor);
    index(map, &found.origin, &new_index, keys);
    map.unordered_keys = unordered_keys;
    map.skipped_fds = bad_fds
        .into_iter()
        .filter(|(t, _, _)| keep(*t))
        .map(|(t, fd, e)| SkippedFd {
            pid: tasks[t as usize].record.pid,
            fd,
            reason: e.errno_name().unwrap_or("E?").to_string(),
        })
        .collect();
    map.skipped_fds.sort_unstable_by_key(|s| (s.pid, s.fd));
    map.changed_fds = changed
        .into_iter()
        .filter(|&r| keep(rows[r as usize].task))
        .map(|r| fd_ref(&rows, r))
        .collect();
    map.changed_fds.sort_unstable();
}

/// Pushes the descriptions onto `map.open_files` in the final order (by
/// first member: sorting them once built would move a host's worth of
/// them), each with the name of its first row (moved, not copied: a
/// host's worth of paths); returns where each went.
fn build_in_order(
    map: &mut SharingMap,
    rows: &mut [super::group::FdRow],
    mut members: Vec<(u32, Vec<FdRef>)>,
    file_types: &foldhash::HashMap<u32, u32>,
    without_anchor: &foldhash::HashSet<u32>,
) -> Vec<u32> {
    let mut by_first: Vec<(FdRef, u32)> = members
        .iter()
        .enumerate()
        .map(|(i, (_, m))| (m[0], i as u32))
        .collect();
    by_first.sort_unstable();
    let mut new_index = vec![0u32; by_first.len()];
    map.open_files.reserve(by_first.len());
    for (new, &(_, i)) in by_first.iter().enumerate() {
        new_index[i as usize] = new as u32;
        let (first, members) = std::mem::take(&mut members[i as usize]);
        let row = &mut rows[first as usize];
        let (target, raw) = (std::mem::take(&mut row.target), row.raw.take());
        let mut description = OpenFileDescription::new(target, raw, members);
        if !file_types.is_empty() {
            description.file_type = file_types.get(&first).copied();
        }
        description.without_anchor = !without_anchor.is_empty() && without_anchor.contains(&first);
        map.open_files.push(description);
    }
    new_index
}

/// The descriptions of the grouping, each once, with what indexes them.
struct Found {
    /// Each description's first row and its members (sorted, not empty).
    members: Vec<(u32, Vec<FdRef>)>,
    /// (description, bucket, position in kcmp order) of each description
    /// and each further name of one, in (bucket, position) order. Flat, not
    /// a collection per description: 50k descriptions would cost megabytes
    /// of small allocations at the scan's peak.
    origin: Vec<(u32, u32, u32)>,
}

/// The members of each group of `groups` (the rows' `refs`, those that
/// are not None); a group under a further key (the same first row) is one
/// more name of the description found first.
fn collect_members(refs: &[Option<FdRef>], groups: Vec<Vec<Vec<u32>>>) -> Found {
    let descriptions = groups.iter().map(Vec::len).sum();
    let mut found = Found {
        members: Vec::with_capacity(descriptions),
        origin: Vec::with_capacity(descriptions),
    };
    let mut seen: Vec<u32> = vec![u32::MAX; refs.len()];
    for (bucket, groups) in groups.into_iter().enumerate() {
        for (position, g) in groups.into_iter().enumerate() {
            let Some(&first) = g.first() else { continue };
            let (bucket, position) = (bucket as u32, position as u32);
            if seen[first as usize] != u32::MAX {
                found.origin.push((seen[first as usize], bucket, position));
                continue;
            }
            let mut members: Vec<FdRef> = g.iter().filter_map(|&r| refs[r as usize]).collect();
            if members.is_empty() {
                continue;
            }
            members.sort_unstable();
            seen[first as usize] = found.members.len() as u32;
            found.origin.push((seen[first as usize], bucket, position));
            found.members.push((first, members));
        }
    }
    found
}

/// For each bucket key, the indices of its descriptions in kcmp order
/// (`origin`: (description, bucket, position) of every description under
/// every key it has, in (bucket, position) order; `new_index`: where each
/// description went in `map.open_files`).
fn index(map: &mut SharingMap, origin: &[(u32, u32, u32)], new_index: &[u32], keys: Vec<String>) {
    debug_assert!(origin
        .windows(2)
        .all(|w| (w[0].1, w[0].2) < (w[1].1, w[1].2)));
    map.order.reserve(keys.len());
    let mut rest = origin;
    for (bucket, key) in keys.into_iter().enumerate() {
        let n = rest.iter().take_while(|e| e.1 as usize == bucket).count();
        let (mine, after) = rest.split_at(n);
        let indices = mine.iter().map(|&(d, _, _)| new_index[d as usize] as usize);
        map.order.insert(key, indices.collect());
        rest = after;
    }
}

/// Fills `map.shared` and `map.unavailable` from the kinds' outcomes.
pub(crate) fn assemble_kinds(
    map: &mut SharingMap,
    tasks: &[SelectedTask],
    kinds: Vec<(ProcessResource, KindOutcome)>,
    failed: &HashMap<u32, Skipped>,
) {
    let keep = |task: u32| !failed.contains_key(&task);
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
}

/// Fills `map.tasks` and `map.skipped`.
pub(crate) fn assemble_tasks(
    map: &mut SharingMap,
    tasks: &[SelectedTask],
    skipped: Vec<Skipped>,
    failed: HashMap<u32, Skipped>,
) {
    for (i, t) in tasks.iter().enumerate() {
        if !failed.contains_key(&(i as u32)) {
            map.tasks.push(t.record.clone());
        }
    }
    map.tasks.sort_unstable_by_key(|t| t.pid);
    let mut all_skipped: Vec<Skipped> = skipped.into_iter().chain(failed.into_values()).collect();
    all_skipped.sort_unstable_by_key(|s| s.pid);
    all_skipped.dedup_by_key(|s| s.pid);
    map.skipped = all_skipped;
}
