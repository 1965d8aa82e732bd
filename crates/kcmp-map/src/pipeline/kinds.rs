//! Step 5, process kinds: which tasks share vm, files, fs, sighand, io and
//! sysvsem, with sentinel tasks to tell "none" from "shared".

use super::pin::SelectedTask;
use super::select::skipped_from;
use crate::model::ScanProgress;
use crate::model::Skipped;
use crate::parallel::{parallel_map, CallCounter};
use crate::sentinel::Sentinels;
use kcmp::fallback::Availability;
use kcmp::grouping::OrderedGroups;
use kcmp::{compare_process, Error, KcmpOrdering, Pid, ProcessResource};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

/// What came of grouping one process-level kind.
pub(crate) enum KindOutcome {
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

#[allow(clippy::too_many_arguments)]
fn process_kinds(
    tasks: &[SelectedTask],
    candidates: &[u32],
    sentinels: Option<&Sentinels>,
    calls: &CallCounter,
    repaired: &AtomicU64,
    workers: usize,
    progress: &(dyn Fn(ScanProgress) + Sync),
) -> Vec<(ProcessResource, KindOutcome)> {
    // Sighand is grouped after vm, within vm's groups (see `sighand_within`).
    let kinds: Vec<ProcessResource> = ProcessResource::ALL
        .into_iter()
        .filter(|&k| k != ProcessResource::Sighand)
        .collect();
    let done = AtomicU64::new(0);
    let total = ProcessResource::ALL.len() as u64;
    let report = || {
        let d = done.fetch_add(1, AtomicOrdering::Relaxed) + 1;
        progress(ScanProgress {
            phase: 2,
            done: d,
            total,
        });
    };
    // Five items, each as big as the task count: threads pay from a few
    // hundred tasks on.
    let workers = if candidates.len() < 256 { 1 } else { workers };
    // Work items (kind, part, parts): vm, files and fs, whose objects are
    // mostly one per process (each sort costs about log2(N!) calls), are
    // split in `workers` parts when big (three whole sorts on two cores
    // left one core idle for a third of the phase); the parts are merged
    // in kcmp order after (N calls more).
    let parts_of = |k: ProcessResource| match k {
        ProcessResource::Vm | ProcessResource::Files | ProcessResource::Fs
            if workers > 1 && candidates.len() >= SPLIT_KIND =>
        {
            workers
        }
        _ => 1,
    };
    let items: Vec<(usize, usize, usize)> = (0..kinds.len())
        .flat_map(|k| {
            let n = parts_of(kinds[k]);
            (0..n).map(move |p| (k, p, n))
        })
        .collect();
    let sorted = parallel_map(items.len(), workers, |i| {
        let (k, p, n) = items[i];
        let chunk = candidates.len().div_ceil(n);
        let at = |x: usize| (x * chunk).min(candidates.len());
        let part = &candidates[at(p)..at(p + 1)];
        sort_part(kinds[k], tasks, part, sentinels, p == 0, calls)
    });
    let mut by_kind: Vec<std::sync::Mutex<Vec<Result<Part, String>>>> =
        kinds.iter().map(|_| Default::default()).collect();
    for (&(k, _, _), part) in items.iter().zip(sorted) {
        by_kind[k].get_mut().expect("not shared yet").push(part);
    }
    let results = parallel_map(kinds.len(), workers, |k| {
        let parts = std::mem::take(&mut *by_kind[k].lock().unwrap_or_else(|e| e.into_inner()));
        let outcome = finish(kinds[k], tasks, parts, sentinels, calls, repaired);
        report();
        outcome
    });
    let mut out: Vec<(ProcessResource, KindOutcome)> = kinds.into_iter().zip(results).collect();
    let vm = out
        .iter()
        .find(|(k, _)| *k == ProcessResource::Vm)
        .map(|(_, o)| o);
    let sighand = sighand_within(vm, tasks, candidates, calls, repaired);
    report();
    out.push((ProcessResource::Sighand, sighand));
    out.sort_by_key(|(k, _)| ProcessResource::ALL.iter().position(|x| x == k));
    out
}

/// Sighand, grouped within vm's groups: the kernel lets only a task that
/// shares the address space share the signal handlers (`clone` refuses
/// `CLONE_SIGHAND` without `CLONE_VM`), and the one way to stop sharing an
/// address space, `execve`, unshares the handlers too. Tasks apart on vm
/// are therefore apart on sighand, whenever either was read: a process
/// alone on vm needs no comparison. A task that failed on vm because it
/// may not be inspected (EPERM) or is gone is skipped by the scan
/// ([`group_kinds`]): it fails on sighand with the same error, uncompared.
/// When vm did not place every other candidate (a task without an address
/// space, another error), all are compared.
fn sighand_within(
    vm: Option<&KindOutcome>,
    tasks: &[SelectedTask],
    candidates: &[u32],
    calls: &CallCounter,
    repaired: &AtomicU64,
) -> KindOutcome {
    let kind = ProcessResource::Sighand;
    let (groups, mut failures) = match vm {
        Some(KindOutcome::Groups(groups, failures))
            if failures
                .iter()
                .all(|(_, e)| e.is_permission() || e.is_gone())
                && groups.iter().map(Vec::len).sum::<usize>() + failures.len()
                    == candidates.len() =>
        {
            (groups, failures.clone())
        }
        _ => return one_kind(kind, tasks, candidates, None, calls, repaired),
    };
    let mut out = Vec::new();
    for g in groups {
        if g.len() < 2 {
            out.push(g.clone());
            continue;
        }
        match one_kind(kind, tasks, g, None, calls, repaired) {
            KindOutcome::Groups(gs, f) => {
                out.extend(gs);
                failures.extend(f);
            }
            unavailable => return unavailable,
        }
    }
    KindOutcome::Groups(out, failures)
}

/// The sentinels that stand for "none" on `kind`: the zombie for
/// vm/files/fs, the live pair for io/sysvsem. `Err` when they are needed
/// and missing.
fn sentinel_items(
    kind: ProcessResource,
    sentinels: Option<&Sentinels>,
) -> Result<(Vec<KindItem>, Option<KindItem>), String> {
    let Some(s) = sentinels else {
        if kind.may_be_absent() {
            return Err("could not start sentinel tasks to tell \"none\" from \"shared\"".into());
        }
        return Ok((Vec::new(), None));
    };
    Ok(match kind {
        ProcessResource::Vm | ProcessResource::Files | ProcessResource::Fs => {
            (Vec::new(), s.zombie_pid().map(KindItem::Sentinel))
        }
        ProcessResource::Io | ProcessResource::Sysvsem => (
            s.live_pids().into_iter().map(KindItem::Sentinel).collect(),
            None,
        ),
        ProcessResource::Sighand => (Vec::new(), None),
    })
}

/// Takes back the kinds that rest on the sentinels when one of them
/// stopped being what it was during the scan (another thread of the caller
/// reaped it with `__WALL`): its pid may have named another process in the
/// comparisons, and "none" could then be told wrongly.
pub(crate) fn distrust_lost_sentinels(
    kinds: &mut [(ProcessResource, KindOutcome)],
    sentinels: Option<&Sentinels>,
) {
    if sentinels.is_none_or(Sentinels::intact) {
        return;
    }
    for (kind, outcome) in kinds.iter_mut() {
        if *kind != ProcessResource::Sighand {
            *outcome = KindOutcome::Unavailable(
                "a sentinel task was reaped by another thread of this process during the \
                 scan (waitpid with __WALL): \"none\" could not be told from \"shared\""
                    .into(),
            );
        }
    }
}

/// Candidates at which vm, files and fs are sorted in parts.
const SPLIT_KIND: usize = 2048;

/// One kind sorted over part of the candidates.
struct Part {
    groups: OrderedGroups<KindItem>,
    failures: Vec<(u32, Error)>,
}

/// kcmp of two items on `kind`, counted.
fn comparator<'a>(
    kind: ProcessResource,
    tasks: &'a [SelectedTask],
    calls: &'a CallCounter,
) -> impl FnMut(KindItem, KindItem) -> kcmp::Result<KcmpOrdering> + 'a {
    let pid_of = |item: KindItem| match item {
        KindItem::Task(t) => tasks[t as usize].via,
        KindItem::Sentinel(p) => p,
    };
    move |a, b| {
        calls.add();
        compare_process(kind, pid_of(a), pid_of(b))
    }
}

/// Groups the candidates on one kind, with its sentinels.
fn one_kind(
    kind: ProcessResource,
    tasks: &[SelectedTask],
    candidates: &[u32],
    sentinels: Option<&Sentinels>,
    calls: &CallCounter,
    repaired: &AtomicU64,
) -> KindOutcome {
    let part = sort_part(kind, tasks, candidates, sentinels, true, calls);
    finish(kind, tasks, vec![part], sentinels, calls, repaired)
}

/// Sorts `candidates` on `kind` (after its sentinels, `with_sentinels`).
/// `Err` when the sentinels are missing or cannot be compared.
fn sort_part(
    kind: ProcessResource,
    tasks: &[SelectedTask],
    candidates: &[u32],
    sentinels: Option<&Sentinels>,
    with_sentinels: bool,
    calls: &CallCounter,
) -> Result<Part, String> {
    let (live, zombie) = sentinel_items(kind, sentinels)?;
    let mut c = comparator(kind, tasks, calls);
    let mut groups = OrderedGroups::new();
    for item in live.iter().chain(zombie.iter()).filter(|_| with_sentinels) {
        if groups.insert(*item, &mut c).is_err() {
            let kind = kind.name();
            return Err(format!("a sentinel task could not be compared on {kind}"));
        }
    }
    let mut failures = Vec::new();
    for &t in candidates {
        if let Err(e) = groups.insert(KindItem::Task(t), &mut c) {
            failures.push((t, e.error));
        }
    }
    Ok(Part { groups, failures })
}

/// Merges one kind's parts (in kcmp order), checks and repairs the
/// grouping, and leaves out the sentinels' group (the absent object).
fn finish(
    kind: ProcessResource,
    tasks: &[SelectedTask],
    parts: Vec<Result<Part, String>>,
    sentinels: Option<&Sentinels>,
    calls: &CallCounter,
    repaired: &AtomicU64,
) -> KindOutcome {
    let (live, zombie) = match sentinel_items(kind, sentinels) {
        Ok(s) => s,
        Err(why) => return KindOutcome::Unavailable(why),
    };
    let mut c = comparator(kind, tasks, calls);
    let mut merged: Option<Part> = None;
    for part in parts {
        let part = match part {
            Ok(part) => part,
            Err(why) => return KindOutcome::Unavailable(why),
        };
        merged = Some(match merged {
            None => part,
            Some(mut m) => {
                m.groups = m.groups.merge(part.groups, &mut c);
                m.failures.extend(part.failures);
                m
            }
        });
    }
    let Some(Part {
        mut groups,
        mut failures,
    }) = merged
    else {
        return KindOutcome::Groups(Vec::new(), Vec::new());
    };
    // A task may have exec'd or exited under the search: check, repair.
    if groups.check_and_repair(&mut c, 3) > 0 {
        repaired.fetch_add(1, AtomicOrdering::Relaxed);
    }
    // A task that failed while it stood for its group left the group: it
    // fails here (it was in no group and skipped nowhere before).
    for (item, e) in groups.dropped() {
        match *item {
            KindItem::Task(t) => failures.push((t, e.clone())),
            KindItem::Sentinel(_) => {
                let kind = kind.name();
                return KindOutcome::Unavailable(format!(
                    "a sentinel task could not be compared on {kind}"
                ));
            }
        }
    }
    let groups = groups.into_groups();
    let absent_group = match absent_group(kind, &groups, &live, zombie) {
        Ok(g) => g,
        Err(why) => return KindOutcome::Unavailable(why),
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
}

/// The group of the absent object: the sentinels' group.
fn absent_group(
    kind: ProcessResource,
    groups: &[Vec<KindItem>],
    live: &[KindItem],
    zombie: Option<KindItem>,
) -> Result<Option<usize>, String> {
    if let Some(z) = zombie {
        return Ok(groups.iter().position(|g| g.contains(&z)));
    }
    if live.len() != 2 {
        return Ok(None);
    }
    let a = groups.iter().position(|g| g.contains(&live[0]));
    let b = groups.iter().position(|g| g.contains(&live[1]));
    if a != b {
        return Err(format!(
            "two fresh sentinel tasks do not compare equal on {} (this process may have an \
             I/O priority that gives children their own context), so \"none\" cannot be \
             told from \"shared\"",
            kind.name()
        ));
    }
    Ok(a)
}

/// The process-level kinds of the tasks that did not fail, and the tasks
/// that failed on them (added to `failed`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn group_kinds(
    tasks: &[SelectedTask],
    failed: &mut HashMap<u32, Skipped>,
    sentinels: Option<&Sentinels>,
    availability: Availability,
    calls: &CallCounter,
    repaired: &AtomicU64,
    workers: usize,
    progress: &(dyn Fn(ScanProgress) + Sync),
) -> Vec<(ProcessResource, KindOutcome)> {
    let kind_candidates: Vec<u32> = (0..tasks.len() as u32)
        .filter(|i| !failed.contains_key(i))
        .filter(|&i| {
            let r = &tasks[i as usize].record;
            !r.kernel_thread && !r.is_zombie()
        })
        .collect();
    let kinds = if let Some(why) = kcmp::fallback::process_kinds_unavailable(availability) {
        ProcessResource::ALL
            .into_iter()
            .map(|k| (k, KindOutcome::Unavailable(why.clone())))
            .collect()
    } else {
        process_kinds(
            tasks,
            &kind_candidates,
            sentinels,
            calls,
            repaired,
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
    kinds
}
