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
    // (description, bucket, position in kcmp order) of each description
    // and each further name of one, for the index; the description of each
    // first row. Flat, not a collection per description: 50k descriptions
    // would cost megabytes of small allocations at the scan's peak.
    let mut origin: Vec<(u32, u32, u32)> = Vec::new();
    let mut seen: Vec<u32> = vec![u32::MAX; rows.len()];
    for (bucket, groups) in groups.into_iter().enumerate() {
        for (position, g) in groups.into_iter().enumerate() {
            let Some(&first) = g.first() else { continue };
            let (bucket, position) = (bucket as u32, position as u32);
            if seen[first as usize] != u32::MAX {
                origin.push((seen[first as usize], bucket, position));
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
            seen[first as usize] = map.open_files.len() as u32;
            origin.push((seen[first as usize], bucket, position));
            map.open_files.push(description);
        }
    }
    drop(seen);
    sort_and_index(map, &mut origin, keys);
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
/// the indices of its descriptions in kcmp order (`origin`: (description,
/// bucket, position) of every description under every key it has).
fn sort_and_index(map: &mut SharingMap, origin: &mut [(u32, u32, u32)], keys: Vec<String>) {
    // In place (a host's worth of descriptions is not copied twice): each
    // description's first member is its own (an fd is in one description),
    // so sorting the old indices by it gives the order the sort makes.
    let mut permutation: Vec<(FdRef, u32)> = map
        .open_files
        .iter()
        .enumerate()
        .map(|(i, d)| (d.members[0], i as u32))
        .collect();
    permutation.sort_unstable();
    map.open_files.sort_unstable_by_key(|d| d.members[0]);
    let mut new_index = vec![0u32; permutation.len()];
    for (new, &(_, old)) in permutation.iter().enumerate() {
        new_index[old as usize] = new as u32;
    }
    drop(permutation);
    origin.sort_unstable_by_key(|&(_, bucket, position)| (bucket, position));
    let mut entries = origin.iter().peekable();
    for (bucket, key) in keys.into_iter().enumerate() {
        let mut indices = Vec::new();
        while let Some(&(d, _, _)) = entries.next_if(|e| e.1 as usize == bucket) {
            indices.push(new_index[d as usize] as usize);
        }
        map.order.insert(key, indices);
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
