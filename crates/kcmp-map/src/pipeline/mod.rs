//! The engine as a pipeline. [`run`] reads top to bottom:
//!
//! 1. [`select`]: which processes (all, pids, trees).
//! 2. [`pin`]: a handle per task, so an exited or reused pid is never
//!    attributed.
//! 3. [`list`]: every task's fds and link texts, parents before children.
//! 4. [`group`]: fds bucketed by link text and split into open file
//!    descriptions by kcmp against [`anchor`]s (the engine's own copies),
//!    kept in kcmp order by [`sorted`]; renamed files joined by inode.
//! 5. [`kinds`]: vm, files, fs, sighand, io, sysvsem.
//! 6. [`crate::epoll`]: epoll registrations resolved against the map.
//! 7. [`map`]: the [`SharingMap`], without the tasks that failed.
//!
//! Shared types live in [`crate::model`] and [`crate::parallel`], so no step
//! imports a later one.

pub(crate) mod anchor;
pub(crate) mod closer;
pub(crate) mod group;
pub(crate) mod kinds;
pub(crate) mod list;
pub(crate) mod map;
pub(crate) mod mount_watch;
pub(crate) mod own_locks;
pub(crate) mod own_table;
pub(crate) mod pin;
pub(crate) mod select;
pub(crate) mod sorted;
pub(crate) mod tactics;

use crate::model::{ScanProgress, ScanStats, SharingMap};
use crate::parallel::{workers, CallCounter};
use crate::scan::ScanOptions;
use crate::sentinel::Sentinels;
use kcmp::{Error, Pid, Result};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::time::Instant;

/// Wall time per phase.
struct Phases {
    started: Instant,
    lap: Instant,
    ms: BTreeMap<String, f64>,
}

impl Phases {
    fn start() -> Phases {
        let now = Instant::now();
        Phases {
            started: now,
            lap: now,
            ms: BTreeMap::new(),
        }
    }

    fn mark(&mut self, name: &str) {
        let ms = self.lap.elapsed().as_secs_f64() * 1000.0;
        self.ms.insert(name.to_string(), ms);
        self.lap = Instant::now();
    }
}

/// Fds reserved up front for anchors (a scan needing more grows the table
/// again when grouping).
const ANCHOR_ROOM: usize = 2048;

/// The kcmp calls of each phase.
#[derive(Default)]
struct Calls {
    files: CallCounter,
    kinds: CallCounter,
}

/// Runs the pipeline. See the module documentation.
pub(crate) fn run(
    options: &ScanOptions,
    progress: &(dyn Fn(ScanProgress) + Sync),
) -> Result<SharingMap> {
    crate::pidns::check()?; // /proc's pids must be kcmp(2)'s
    own_table::check_shared()?; // copies go to the table the engine reads and closes
    let _flush = closer::FlushOnReturn; // released copies never wait in a batch
    let operation = own_table::Operation::start(); // before this scan opens any fd
    let own_fds = list::own_fds(); // the caller's, before the engine opens any
    let own_locks = anchor::OwnLocks::read_among(own_fds.keys().copied().collect());
    // Grow the fd table now, while this process may still be single-threaded:
    // once threads share it, every growth waits for an RCU grace period
    // (about 10 ms here), and a thread just joined may still hold it. Room
    // for a pidfd per process (four per process with threads) and anchors.
    // /proc is listed once: here, for the selection.
    let listed = select::needs_listing(options)
        .then(crate::procfs::list_pids)
        .transpose()?;
    let processes = listed.as_ref().map_or(options.pids.len(), Vec::len);
    pin::reserve_fds(processes * if options.threads { 4 } else { 1 } + ANCHOR_ROOM);
    let mut phases = Phases::start();
    let workers = workers(options.workers);
    let calls = Calls::default();
    let availability = kcmp::fallback::kcmp_available();
    let cmp = group::file_comparator(availability.is_available(), &calls.files);
    let mut map = SharingMap::default();
    let mut sentinels = Sentinels::spawn(); // first: excluded from the selection
    phases.mark("sentinels");

    let mut skipped = Vec::new();
    let (procs, early) =
        select::select_processes(options, listed, &sentinel_pids(&sentinels), &mut skipped)?;
    phases.mark("select");
    if procs.is_empty() && skipped.is_empty() {
        return Err(Error::InvalidArgument(
            "no process matches the selection".into(),
        ));
    }
    pin::reserve_fds(procs.len() * if options.threads { 4 } else { 1 });
    let freeze_guard = freeze(options, &procs, &mut map)?;
    let (tasks, pin_skipped) =
        pin::pin_tasks(&procs, early, options.threads, workers, &calls.kinds);
    skipped.extend(pin_skipped);
    map.own_fd_tables = own_fd_tables(options, &tasks);
    phases.mark("pin");

    let family = list::Family::new(&tasks, options.threads);
    let mut listed = list::list_fds(&tasks, workers, progress);
    list::drop_engine_fds(&tasks, &mut listed, &own_fds, &operation);
    phases.mark("list_fds");

    let budget = anchor::Budget::new(tasks.len(), own_locks, options.all_free_fds)
        .checking_every_copy(options.check_every_copy);
    let grouped = group::group_files(&tasks, &family, listed, &*cmp, &budget, workers, progress);
    let mut failed = grouped.failed_tasks(&tasks);
    closer::flush(); // the grouping's copies are closed while the kinds run
    phases.mark("group_fds");

    if let Ok(s) = &mut sentinels {
        s.wait_ready();
    }
    let repaired = AtomicU64::new(0);
    let mut kinds = kinds::group_kinds(
        &tasks,
        &mut failed,
        sentinels.as_ref().ok(),
        availability,
        &calls.kinds,
        &repaired,
        workers,
        progress,
    );
    kinds::distrust_lost_sentinels(&mut kinds, sentinels.as_ref().ok());
    phases.mark("process_kinds");
    pin::verify_tasks(&tasks, &mut failed);
    drop(sentinels);
    phases.mark("verify");

    let mut stats = grouped.stats();
    stats.copies_left_open = budget.left_open();
    stats.copies_on_server_free_host = budget.kept_server_free();
    stats.copies_taken = budget.taken();
    map::assemble_files(&mut map, &tasks, grouped, &failed);
    map.ordered = availability.is_available();
    map::assemble_kinds(&mut map, &tasks, kinds, &failed);
    map::assemble_tasks(&mut map, &tasks, skipped, failed);
    nothing_scanned(&map)?;
    phases.mark("assemble");

    // The epoll section, while the tasks are still frozen.
    let mut epoll_calls = 0;
    if !options.skip_epoll {
        (map.epoll, epoll_calls) = crate::epoll::resolve_scan_counted(&map);
    }
    if let Some(set) = freeze_guard {
        // Released early (window over, kcmp stopped): say so.
        if let Some(why) = set.finish()? {
            (map.frozen, map.freeze_released) = (false, Some(why));
        }
    }
    phases.mark("epoll_thaw");
    closer::settle(std::time::Duration::from_secs(1));
    map.stats = finish_stats(
        stats,
        &calls,
        epoll_calls,
        repaired.into_inner(),
        phases,
        availability,
    );
    Ok(map)
}

/// This scan's sentinels, and those of every other scan of this process.
fn sentinel_pids(sentinels: &std::io::Result<Sentinels>) -> HashSet<Pid> {
    let mut pids: HashSet<Pid> = crate::sentinel::all_pids();
    pids.extend(sentinels.as_ref().map(Sentinels::pids).unwrap_or_default());
    pids
}

/// Threads inspected as tasks of their own although threads were not
/// asked for: they have their own fd table.
fn own_fd_tables(options: &ScanOptions, tasks: &[pin::SelectedTask]) -> Vec<Pid> {
    if options.threads {
        return Vec::new();
    }
    tasks
        .iter()
        .filter(|t| t.record.pid != t.record.tgid)
        .map(|t| t.record.pid)
        .collect()
}

/// The stats of the grouping, completed with the calls and times.
fn finish_stats(
    stats: ScanStats,
    calls: &Calls,
    epoll_calls: u64,
    repaired: u64,
    phases: Phases,
    availability: kcmp::fallback::Availability,
) -> ScanStats {
    let (files, kinds) = (calls.files.total(), calls.kinds.total());
    ScanStats {
        kcmp_calls: files + kinds + epoll_calls,
        kcmp_calls_by_phase: BTreeMap::from([
            ("files".to_string(), files),
            ("kinds".to_string(), kinds),
            ("epoll".to_string(), epoll_calls),
        ]),
        elapsed_ms: phases.started.elapsed().as_secs_f64() * 1000.0,
        groupings_repaired: repaired,
        phase_ms: phases.ms,
        method: if availability.is_available() {
            "kcmp".into()
        } else {
            "fallback (F_DUPFD_QUERY / epoll / pidfd_getfd: equality only)".into()
        },
        ..stats
    }
}

/// Freezes the selected processes when asked to.
fn freeze(
    options: &ScanOptions,
    procs: &[crate::procfs::TaskStat],
    map: &mut SharingMap,
) -> Result<Option<crate::freeze::FrozenSet>> {
    if !options.freeze {
        return Ok(None);
    }
    let pids: Vec<Pid> = procs
        .iter()
        .filter(|s| !s.is_kernel_thread() && !s.is_zombie())
        .map(|s| s.pid)
        .collect();
    let set = crate::freeze::freeze(&pids)?;
    map.frozen = set.is_held();
    map.freeze_released = set.released_early();
    map.not_frozen = set.not_frozen().to_vec();
    Ok(Some(set))
}

/// An error when no task could be scanned at all.
fn nothing_scanned(map: &SharingMap) -> Result<()> {
    if !map.tasks.is_empty() {
        return Ok(());
    }
    let why = map
        .skipped
        .first()
        .map(|s| format!("{} ({}): {}", s.pid, s.reason, s.detail))
        .unwrap_or_else(|| "no task".into());
    Err(Error::InvalidArgument(
        format!("nothing could be scanned: {why}").into(),
    ))
}
