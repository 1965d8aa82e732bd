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
    let keep = |task: u32| !failed.contains_key(&task);
    let Grouped {
        rows,
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
    let mut rows = rows;
    // (bucket, position in kcmp order) of each description, for the index.
    let mut origin: Vec<Vec<(usize, usize)>> = Vec::new();
    let mut seen: HashMap<u32, usize> = HashMap::new();
    for (bucket, groups) in groups.into_iter().enumerate() {
        for (position, g) in groups.into_iter().enumerate() {
            let Some(&first) = g.first() else { continue };
            if let Some(&d) = seen.get(&first) {
                origin[d].push((bucket, position));
                continue;
            }
            let mut members: Vec<FdRef> = g
                .iter()
                .filter(|&&r| keep(rows[r as usize].task))
                .map(|&r| fd_ref(&rows, r))
                .collect();
            if members.is_empty() {
                continue;
            }
            members.sort_unstable();
            // Each row's name goes to at most one description: moved, not
            // copied (a host's worth of paths).
            let row = &mut rows[first as usize];
            let (target, raw) = (std::mem::take(&mut row.target), row.raw.take());
            let mut description = OpenFileDescription::new(target, raw, members);
            description.file_type = file_types.get(&first).copied();
            description.without_anchor = without_anchor.contains(&first);
            seen.insert(first, map.open_files.len());
            map.open_files.push(description);
            origin.push(vec![(bucket, position)]);
        }
    }
    sort_and_index(map, &origin, keys);
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

/// Sorts `map.open_files` by first member and builds, for each bucket key,
/// the indices of its descriptions in kcmp order (`origin`: each
/// description's (bucket, position) pairs).
fn sort_and_index(map: &mut SharingMap, origin: &[Vec<(usize, usize)>], keys: Vec<String>) {
    // In place (a host's worth of descriptions is not copied twice): each
    // description's first member is its own (an fd is in one description),
    // so sorting the old indices by it gives the order the sort makes.
    let mut permutation: Vec<(FdRef, usize)> = map
        .open_files
        .iter()
        .enumerate()
        .map(|(i, d)| (d.members[0], i))
        .collect();
    permutation.sort_unstable();
    map.open_files.sort_unstable_by_key(|d| d.members[0]);
    let mut by_bucket: Vec<Vec<(usize, usize)>> = vec![Vec::new(); keys.len()];
    for (new_index, &(_, old)) in permutation.iter().enumerate() {
        for &(bucket, position) in &origin[old] {
            by_bucket[bucket].push((position, new_index));
        }
    }
    for (key, mut entries) in keys.into_iter().zip(by_bucket) {
        entries.sort_unstable();
        map.order
            .insert(key, entries.into_iter().map(|(_, i)| i).collect());
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
