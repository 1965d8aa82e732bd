//! Who holds this open file description? (`kcmp holders`)
//!
//! Lists every (pid, fd) among the visible processes that refers to the same
//! open file description as one fd — "why does my pipe reader never see
//! EOF?" — and, for a pipe end, the holders of the other end.

use crate::model::Skipped;
use crate::model::SkippedFd;
use crate::parallel::parallel_map_lazy;
use crate::parallel::CallCounter;
use crate::pipeline::group::{file_comparator, FileComparator};
use crate::pipeline::list::list_task;
use crate::pipeline::list::Listing;
use crate::pipeline::pin::pin_tasks;
use crate::pipeline::pin::SelectedTask;
use crate::pipeline::select::{select_processes, skipped_from};
use crate::procfs::{self, FdTarget};
use crate::scan::ScanOptions;
use kcmp::grouping::OrderedGroups;
use kcmp::KcmpOrdering;
use kcmp::Result;
use kcmp::{FdNum, Pid};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::time::Instant;

/// Options of [`find_holders`].
///
/// ```
/// // The default counts the caller's own fds (a library caller's fds are
/// // real holders); the CLI turns it off.
/// assert!(kcmp_map::holders::HoldersOptions::default().include_self);
/// ```
#[derive(Debug, Clone)]
pub struct HoldersOptions {
    /// On a pipe end, also find the holders of the other end.
    pub peer: bool,
    /// Stop the processes that may hold the description while inspecting.
    pub freeze: bool,
    /// Worker threads; 0 means one per CPU.
    pub workers: usize,
    /// Count the calling process's own fds as holders too. On by default
    /// (library and C callers: their fds are real holders); the CLI turns
    /// it off (the tool's own inherited stdio is noise there). The engine's
    /// own copies and pidfds are never reported.
    pub include_self: bool,
}

impl Default for HoldersOptions {
    fn default() -> Self {
        HoldersOptions {
            peer: false,
            freeze: false,
            workers: 0,
            include_self: true,
        }
    }
}

/// One holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Holder {
    /// The pid.
    pub pid: Pid,
    /// The fd.
    pub fd: FdNum,
    /// The command name.
    pub comm: String,
}

/// The holders of the other end of a pipe, a FIFO or a connected unix socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerHolders {
    /// The pipe (`pipe:[ino]`), the FIFO's name, or the peer socket (`socket:[ino]`).
    pub target: String,
    /// Which end the holders hold: `"write"`, `"read"` or `"read-write"`
    /// (several joined by commas), or `"peer"` for a unix socket.
    pub end: String,
    /// Every (pid, fd) holding the other end.
    pub holders: Vec<Holder>,
}

/// The answer of [`find_holders`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HoldersReport {
    /// The queried pid.
    pub pid: Pid,
    /// The queried fd.
    pub fd: FdNum,
    /// What it is open on.
    pub target: String,
    /// Every (pid, fd) referring to the same open file description, the
    /// queried one included, sorted by (pid, fd).
    pub holders: Vec<Holder>,
    /// With [`HoldersOptions::peer`] on a pipe, a FIFO or a connected unix
    /// socket: the other end's holders.
    pub peer: Option<PeerHolders>,
    /// Processes that could not be inspected.
    pub skipped: Vec<Skipped>,
    /// Fds of inspected processes left out (unreadable link, closed).
    pub skipped_fds: Vec<SkippedFd>,
    /// True when every candidate was compared with the queried fd itself,
    /// because the engine could not keep its own copy of the description
    /// (a FUSE, NFS or overlayfs file, `pidfd_getfd` refused, a file this
    /// process holds a POSIX lock on): a `dup2` onto the queried fd during
    /// the search would mix two descriptions' holders. `freeze` makes sure.
    pub without_anchor: bool,
    /// True when the queried fd itself no longer held the description when
    /// it was compared with the engine's copy (a `dup2` onto it or a close
    /// and reuse during the search): `holders` are those of the description
    /// it held when the search began, which may no longer include it.
    pub queried_changed: bool,
    /// kcmp calls made.
    pub kcmp_calls: u64,
    /// Wall time.
    pub elapsed_ms: f64,
    /// Whether the candidate holders were frozen.
    pub frozen: bool,
    /// With [`HoldersOptions::freeze`]: the processes that could not be
    /// frozen, and why.
    pub not_frozen: Vec<crate::freeze::NotFrozen>,
    /// With `freeze`: why the freeze ended early (then `frozen` is false).
    pub freeze_released: Option<crate::freeze::Release>,
}

fn access_end(mode: u32) -> &'static str {
    match mode {
        0 => "read",
        1 => "write",
        _ => "read-write",
    }
}

/// Finds every holder of the open file description of `fd` in `pid`.
///
/// ```
/// use kcmp_map::holders::{find_holders, HoldersOptions};
/// use kcmp::{FdNum, Pid};
/// let (r, _w) = std::io::pipe().unwrap();
/// use std::os::fd::AsRawFd;
/// let fd = FdNum::new(r.as_raw_fd()).unwrap();
/// let report = find_holders(Pid::this(), fd, &HoldersOptions::default()).unwrap();
/// assert!(report.holders.iter().any(|h| h.pid == Pid::this() && h.fd == fd));
/// ```
pub fn find_holders(pid: Pid, fd: FdNum, options: &HoldersOptions) -> Result<HoldersReport> {
    crate::pidns::check()?;
    crate::pipeline::own_table::check_shared()?;
    // Another engine operation of this process beside this one: the
    // caller's own fds are then left out (see `leave_out_own_unless_alone`).
    let operation = crate::pipeline::own_table::Operation::start();
    let started = Instant::now();
    let workers = crate::parallel::workers(options.workers);
    // A process whose main thread exited is read through a live thread.
    let via = crate::pipeline::pin::live_thread_of(pid);
    let link = procfs::fd_target(via, fd)?;
    let key = procfs::bucket_key(&link).to_string();
    let queried = kcmp::ProcessHandle::open(via)?;
    let queried_mode = procfs::read_fdinfo(via, fd).map(|i| i.access_mode()).ok();

    let (mut tasks, skipped) = candidates(pid, options, workers)?;
    let mut listed = list_all_fds(&tasks, workers);

    // Freeze only the processes that hold an fd with the same key, then
    // list their fds again: now they cannot change.
    let mut freeze_guard = None;
    if options.freeze {
        let (kept, frozen) = freeze_holders_of_key(tasks, &listed, &key, pid)?;
        tasks = kept;
        listed = list_all_fds(&tasks, workers);
        freeze_guard = Some(frozen);
    }
    crate::pipeline::list::leave_out_own_unless_alone(&tasks, &mut listed, &operation);

    let calls = CallCounter::default();
    let use_kcmp = kcmp::fallback::kcmp_available().is_available();
    let cmp = file_comparator(use_kcmp, &calls);
    // Every holder is compared with the engine's own copy of the queried
    // description (see the scan's anchors) when one can be taken: it cannot
    // change under the search. Otherwise with the queried fd itself.
    let locks = crate::pipeline::anchor::OwnLocks::read();
    let budget = crate::pipeline::anchor::Budget::new(tasks.len(), locks, false);
    // Closing a copy of a file flushes it (FUSE, NFS: a server round trip):
    // files are copied only on local filesystems.
    let path = FdTarget::parse(&link).may_flush();
    let anchor = budget.copy(queried.pidfd(), via, fd, path).ok().flatten();
    // The copy is this thread's: kcmp finds it under this thread's tid (the
    // main thread may have exited); the fallbacks know it by the pid.
    let own_side = match use_kcmp {
        true => crate::pipeline::own_table::own_fds_task(),
        false => Pid::this(),
    };
    let (rep_pid, rep_fd) = match &anchor {
        Some(own) => (own_side, FdNum::new(std::os::fd::AsRawFd::as_raw_fd(own))?),
        None => (via, fd),
    };
    let without_anchor = anchor.is_none();
    let rep = Rep {
        pid: rep_pid,
        fd: rep_fd,
        queried: (anchor.is_none()).then_some((via, fd)),
    };
    let Sorting {
        same,
        others,
        failed,
        skipped_fds,
    } = match compare_all(&tasks, &listed, &key, &*cmp, rep) {
        Ok(sorted) => sorted,
        Err(e) => {
            // Closed on the closer thread, after its lock check, like any copy.
            if let Some(own) = anchor {
                budget.release(crate::pipeline::anchor::Rep::Own(own));
                crate::pipeline::closer::settle(std::time::Duration::from_secs(1));
            }
            return Err(e);
        }
    };
    let queried_changed = !same.iter().any(|&(i, f)| tasks[i].via == via && f == fd);

    let peer = if options.peer {
        peer_holders(&link, &others, &tasks, &*cmp, queried_mode)
            .or_else(|| {
                let (end, holders) = fifo_peer(via, fd, &tasks, &listed, &same)?;
                let target = link.clone();
                Some(PeerHolders {
                    target,
                    end,
                    holders,
                })
            })
            .or_else(|| match FdTarget::parse(&link) {
                FdTarget::Socket(ino) => unix_socket_peer(ino, &tasks, &listed),
                _ => None,
            })
    } else {
        None
    };

    if let Some(own) = anchor {
        budget.release(crate::pipeline::anchor::Rep::Own(own));
        crate::pipeline::closer::settle(std::time::Duration::from_secs(1));
    }
    queried.verify()?;
    let not_frozen = freeze_guard
        .as_ref()
        .map(|g| g.not_frozen().to_vec())
        .unwrap_or_default();
    let (frozen, freeze_released) = match freeze_guard {
        // Released early (window over, kcmp stopped): not frozen throughout.
        Some(set) => match set.finish()? {
            None => (true, None),
            Some(why) => (false, Some(why)),
        },
        None => (false, None),
    };
    let (holders, peer, skipped) = survivors(&tasks, same, peer, failed, skipped);
    Ok(HoldersReport {
        pid,
        fd,
        target: link,
        holders,
        peer,
        skipped,
        skipped_fds,
        without_anchor,
        queried_changed,
        kcmp_calls: calls.total(),
        elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
        frozen,
        not_frozen,
        freeze_released,
    })
}

/// Every process but this one (unless asked for), pinned.
fn candidates(
    pid: Pid,
    options: &HoldersOptions,
    workers: usize,
) -> Result<(Vec<SelectedTask>, Vec<Skipped>)> {
    let mut skipped = Vec::new();
    let (mut procs, early) =
        select_processes(&ScanOptions::default(), None, &HashSet::new(), &mut skipped)?;
    if pid == Pid::this() || options.include_self {
        procs.push(procfs::read_stat(Pid::this())?);
    }
    // Threads with their own fd table are tasks of their own: pinning
    // expands every multi-threaded process into them.
    crate::pipeline::pin::reserve_fds(procs.len());
    let (tasks, pin_skipped) = pin_tasks(&procs, early, false, workers, &CallCounter::default());
    skipped.extend(pin_skipped);
    Ok((tasks, skipped))
}

/// The holders among the tasks that lived through the inspection, and the
/// skipped tasks.
fn survivors(
    tasks: &[SelectedTask],
    same: Vec<(usize, FdNum)>,
    mut peer: Option<PeerHolders>,
    mut failed: HashMap<usize, Skipped>,
    mut skipped: Vec<Skipped>,
) -> (Vec<Holder>, Option<PeerHolders>, Vec<Skipped>) {
    // Discard answers about tasks that did not live through the inspection.
    for (i, t) in tasks.iter().enumerate() {
        if let std::collections::hash_map::Entry::Vacant(slot) = failed.entry(i) {
            if let Err(e) = t.verify() {
                slot.insert(skipped_from(t.record.pid, &e, "verify"));
            }
        }
    }
    let mut holders: Vec<Holder> = same
        .into_iter()
        .filter(|(i, _)| !failed.contains_key(i))
        .map(|(i, f)| holder(&tasks[i].record, f))
        .collect();
    holders.sort_unstable_by_key(|h| (h.pid, h.fd));
    if let Some(p) = &mut peer {
        let gone: HashSet<Pid> = failed.values().map(|s| s.pid).collect();
        p.holders.retain(|h| !gone.contains(&h.pid));
    }
    skipped.extend(failed.into_values());
    skipped.sort_unstable_by_key(|s| s.pid);
    (holders, peer, skipped)
}

/// The freeze step of [`find_holders`]: stops the processes that hold an
/// fd with the queried key (and the queried one); keeps only those tasks.
fn freeze_holders_of_key(
    tasks: Vec<SelectedTask>,
    listed: &[Listing],
    key: &str,
    pid: Pid,
) -> Result<(Vec<SelectedTask>, crate::freeze::FrozenSet)> {
    let holds_key = |i: usize| {
        matches!(&listed[i].fds, Ok(fds) if fds.iter().any(|e| procfs::bucket_key(&e.target) == key))
            || tasks[i].record.pid == pid
    };
    let keep: HashSet<usize> = (0..tasks.len()).filter(|&i| holds_key(i)).collect();
    let pids: Vec<Pid> = keep.iter().map(|&i| tasks[i].record.pid).collect();
    let frozen = crate::freeze::freeze(&pids)?;
    let kept = tasks
        .into_iter()
        .enumerate()
        .filter(|(i, _)| keep.contains(i))
        .map(|(_, t)| t)
        .collect();
    Ok((kept, frozen))
}

/// What every fd is compared with: the engine's copy of the queried
/// description, or the queried fd itself (`queried`: its (pid, fd)).
#[derive(Clone, Copy)]
struct Rep {
    pid: Pid,
    fd: FdNum,
    queried: Option<(Pid, FdNum)>,
}

/// The fds with the queried key, sorted out.
struct Sorting {
    same: Vec<(usize, FdNum)>,
    others: Vec<(usize, FdNum)>,
    failed: HashMap<usize, Skipped>,
    skipped_fds: Vec<SkippedFd>,
}

/// Compares every fd with the queried key against `rep`. A failed
/// comparison is the fd's task's fault only if `rep` itself still compares.
fn compare_all(
    tasks: &[SelectedTask],
    listed: &[Listing],
    key: &str,
    cmp: &FileComparator<'_>,
    rep: Rep,
) -> Result<Sorting> {
    let (rep_pid, rep_fd) = (rep.pid, rep.fd);
    let mut skipped_fds = Vec::new();
    let mut failed: HashMap<usize, Skipped> = HashMap::new();
    let mut same: Vec<(usize, FdNum)> = Vec::new();
    let mut others: Vec<(usize, FdNum)> = Vec::new();
    for (i, l) in listed.iter().enumerate() {
        for (bad_fd, e) in &l.bad {
            skipped_fds.push(SkippedFd {
                pid: tasks[i].record.pid,
                fd: *bad_fd,
                reason: e.errno_name().unwrap_or("E?").to_string(),
            });
        }
        let entries = match &l.fds {
            Ok(e) => e,
            Err(e) => {
                failed.insert(i, skipped_from(tasks[i].record.pid, e, "list fds"));
                continue;
            }
        };
        for e in entries
            .iter()
            .filter(|e| procfs::bucket_key(&e.target) == key)
        {
            let p = tasks[i].via;
            let verdict = if rep.queried == Some((p, e.fd)) {
                Ok(KcmpOrdering::Equal)
            } else {
                cmp(p, e.fd, rep_pid, rep_fd)
            };
            match verdict {
                Ok(o) if o.is_equal() => same.push((i, e.fd)),
                Ok(_) => others.push((i, e.fd)),
                Err(err) if err.is_permission() || err.is_gone() => {
                    // Which side failed? The queried fd must still be valid.
                    cmp(rep_pid, rep_fd, rep_pid, rep_fd)?;
                    failed
                        .entry(i)
                        .or_insert_with(|| skipped_from(p, &err, "kcmp"));
                }
                Err(_) => {} // closed meanwhile
            }
        }
    }

    Ok(Sorting {
        same,
        others,
        failed,
        skipped_fds,
    })
}

/// The holders of the other end of a pipe: the other fds of the pipe split
/// into descriptions, keeping those of another access mode.
fn peer_holders(
    link: &str,
    others: &[(usize, FdNum)],
    tasks: &[SelectedTask],
    cmp: &FileComparator<'_>,
    queried_mode: Option<u32>,
) -> Option<PeerHolders> {
    let FdTarget::Pipe(_) = FdTarget::parse(link) else {
        return None;
    };
    let mut groups = OrderedGroups::new();
    let mut c =
        |a: (usize, FdNum), b: (usize, FdNum)| cmp(tasks[a.0].via, a.1, tasks[b.0].via, b.1);
    for &o in others {
        let _ = groups.insert(o, &mut c);
    }
    let mut holders = Vec::new();
    let mut ends = Vec::new();
    for g in groups.groups() {
        let (t, f) = g[0];
        let mode = procfs::read_fdinfo(tasks[t].via, f)
            .map(|i| i.access_mode())
            .ok();
        let other_end = match (queried_mode, mode) {
            (Some(q), Some(m)) => q == 2 || m == 2 || q != m,
            _ => true,
        };
        if other_end {
            ends.push(access_end(mode.unwrap_or(2)));
            holders.extend(g.iter().map(|&(t, f)| holder(&tasks[t].record, f)));
        }
    }
    ends.sort_unstable();
    ends.dedup();
    holders.sort_unstable_by_key(|h| (h.pid, h.fd));
    let end = if ends.is_empty() {
        let other = match queried_mode {
            Some(0) => 1,
            Some(1) => 0,
            _ => 2,
        };
        access_end(other).to_string()
    } else {
        ends.join(",")
    };
    Some(PeerHolders {
        target: link.to_string(),
        end,
        holders,
    })
}

/// Every task's listing, on all workers.
fn list_all_fds(
    tasks: &[crate::pipeline::pin::SelectedTask],
    workers: usize,
) -> Vec<crate::pipeline::list::Listing> {
    parallel_map_lazy(tasks.len(), workers, |i| list_task(&tasks[i]))
}

fn holder(record: &crate::model::TaskRecord, fd: FdNum) -> Holder {
    Holder {
        pid: record.pid,
        fd,
        comm: record.comm.clone(),
    }
}

/// (device, inode, access mode) of an fd whose file is a FIFO, from
/// fdinfo (`ino`, `mnt_id`) and the process's mount table; `None` when it
/// is not a FIFO or cannot be told safely.
fn fifo_identity(pid: Pid, fd: FdNum) -> Option<(u64, u64, u32)> {
    let info = procfs::read_fdinfo(pid, fd).ok()?;
    let mounts = crate::mounts::MountTable::read(pid).ok()?;
    let mount = mounts.get(info.mnt_id)?;
    let st = crate::mounts::statx_if_local(pid, fd, mount)?;
    (u32::from(st.stx_mode) & libc::S_IFMT == libc::S_IFIFO).then_some((
        mount.user_dev(),
        info.ino,
        info.access_mode(),
    ))
}

/// The other side of a FIFO: every (pid, fd), other than the queried
/// description's own `same` holders, open on the same FIFO — the same
/// (device, inode) from fdinfo and mountinfo, whatever path it was opened
/// by — with the opposite access mode. An `O_RDWR` opener is on both
/// sides. Returns the end(s) they hold and the holders, or `None` when the
/// queried fd is not a FIFO.
fn fifo_peer(
    pid: Pid,
    fd: FdNum,
    tasks: &[SelectedTask],
    listed: &[Listing],
    same: &[(usize, FdNum)],
) -> Option<(String, Vec<Holder>)> {
    let (dev, ino, mode) = fifo_identity(pid, fd)?;
    let own: HashSet<(usize, FdNum)> = same.iter().copied().collect();
    let mut tables: HashMap<Pid, Option<crate::mounts::MountTable>> = HashMap::new();
    let mut holders = Vec::new();
    let mut ends = Vec::new();
    for (i, entries) in listed.iter().enumerate() {
        let p = tasks[i].via;
        for e in entries.fds.iter().flatten() {
            if !e.target.starts_with('/') || own.contains(&(i, e.fd)) || (p == pid && e.fd == fd) {
                continue;
            }
            let Ok(info) = procfs::read_fdinfo(p, e.fd) else {
                continue;
            };
            if info.ino != ino {
                continue;
            }
            let table = tables
                .entry(p)
                .or_insert_with(|| crate::mounts::MountTable::read(p).ok());
            let same_dev = table
                .as_ref()
                .and_then(|t| t.get(info.mnt_id))
                .is_some_and(|m| m.user_dev() == dev);
            let m = info.access_mode();
            if same_dev && (mode == 2 || m == 2 || m != mode) {
                ends.push(access_end(m));
                holders.push(holder(&tasks[i].record, e.fd));
            }
        }
    }
    ends.sort_unstable();
    ends.dedup();
    holders.sort_unstable_by_key(|h| (h.pid, h.fd));
    let end = if ends.is_empty() {
        access_end(match mode {
            0 => 1,
            1 => 0,
            _ => 2,
        })
        .to_string()
    } else {
        ends.join(",")
    };
    Some((end, holders))
}

/// The other end of a connected unix socket (its peer inode from
/// [`crate::sockdiag::unix_peer`]) and every (pid, fd) holding it; `None`
/// when the kernel cannot tell the peer. A socket inode has exactly one
/// open file description, so no kcmp is needed.
fn unix_socket_peer(ino: u64, tasks: &[SelectedTask], listed: &[Listing]) -> Option<PeerHolders> {
    let peer = crate::sockdiag::unix_peer(ino)?;
    let target = format!("socket:[{peer}]");
    let mut holders: Vec<Holder> = listed
        .iter()
        .enumerate()
        .flat_map(|(i, r)| {
            r.fds
                .iter()
                .flatten()
                .filter(|e| e.target == target)
                .map(move |e| holder(&tasks[i].record, e.fd))
        })
        .collect();
    holders.sort_unstable_by_key(|h| (h.pid, h.fd));
    Some(PeerHolders {
        target,
        end: "peer".into(),
        holders,
    })
}
