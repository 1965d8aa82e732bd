//! [`super::epoll_targets`]: one epoll instance's registrations resolved
//! against the fds of every visible process.

use super::index::HostIndex;
use super::inodes::LazyInoIndex;
use super::registrations::{check, read, read_again, unchanged};
use super::resolve::resolve;
use super::{EpollTarget, EpollTargets, Registration, ATTEMPTS};
use crate::model::{FdRef, Skipped, SkippedFd};
use crate::procfs::{self, FdEntry, FdTarget};
use kcmp::{Error, FdNum, Pid, ProcessHandle, Result};
use rustix::io::Errno;
use std::cell::Cell;
use std::collections::{BTreeSet, HashMap, HashSet};

/// The candidate fds of the visible processes.
#[derive(Default)]
struct Listing {
    /// bucket key -> (pid, fd) with its link text.
    rows: HashMap<String, Vec<(FdRef, String)>>,
    /// Processes whose fds could not be listed.
    skipped: Vec<Skipped>,
    /// Fds whose link could not be read (their processes are listed).
    skipped_fds: Vec<SkippedFd>,
    /// Each listed process's start time, read before its fds.
    start_times: HashMap<Pid, u64>,
}

/// See [`super::epoll_targets`].
pub(super) fn epoll_targets(pid: Pid, epfd: FdNum) -> Result<EpollTargets> {
    crate::pidns::check()?;
    check(pid, epfd)?;
    let handle = ProcessHandle::open(pid)?;
    let calls = Cell::new(0u64);
    for _ in 0..ATTEMPTS {
        if let Some(found) = attempt(&handle, pid, epfd, &calls)? {
            return Ok(found);
        }
    }
    Err(Error::os(
        format!(
            "the registrations of epoll fd {epfd} of process {pid} changed during each of \
             {ATTEMPTS} inspections (stop the process, e.g. with --freeze)"
        ),
        Errno::AGAIN,
    ))
}

/// One inspection: `None` when it must be repeated (a registration
/// vanished, the registrations changed, or `epfd` was closed and reopened
/// as an epoll fd meanwhile).
fn attempt(
    handle: &ProcessHandle,
    pid: Pid,
    epfd: FdNum,
    calls: &Cell<u64>,
) -> Result<Option<EpollTargets>> {
    let regs = read(pid, epfd)?;
    let Listing {
        rows,
        mut skipped,
        mut skipped_fds,
        start_times,
    } = list_candidates(pid, &regs)?;
    let keys: Vec<(String, Vec<FdRef>)> = rows
        .iter()
        .map(|(k, v)| (k.clone(), v.iter().map(|r| r.0).collect()))
        .collect();
    let mut inos = LazyInoIndex::new(move || keys);
    let index = HostIndex::new(rows, calls);
    let resolved = resolve(&index, &mut inos, pid, epfd, &regs, calls);
    handle.verify()?;
    let mut targets = match resolved {
        Ok(t) => t,
        // The registration vanished (ENOENT) or the epoll fd was closed.
        Err(e) if matches!(e.errno(), Some(Errno::NOENT)) => return Ok(None),
        Err(e) if e.errno() == Some(Errno::BADF) => {
            check(pid, epfd)?;
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    if !unchanged(&regs, &read_again(pid, epfd)?) {
        return Ok(None);
    }
    discard_exited(&mut targets, &start_times, &mut skipped);
    skipped.sort_unstable_by_key(|s| s.pid);
    // Fds of processes that exited meanwhile are no longer theirs to report.
    skipped_fds.retain(|f| !skipped.iter().any(|s| s.pid == f.pid));
    skipped_fds.sort_unstable_by_key(|f| (f.pid, f.fd));
    Ok(Some(EpollTargets {
        pid,
        epfd,
        targets,
        skipped,
        skipped_fds,
        kcmp_calls: calls.get(),
    }))
}

/// A process's start time, its fds with their links, and the fds whose
/// link could not be read.
type FdTable = (u64, Vec<FdEntry>, Vec<procfs::UnreadableFd>);

/// The fd tables of `pids`, each with its process's start time (read
/// before the fds). kcmp's own freezer is left out (as if it had exited).
fn read_fd_tables(pids: &[Pid], me: Pid) -> Vec<Result<FdTable>> {
    crate::parallel::parallel_map_lazy(pids.len(), crate::parallel::workers(0), |i| {
        let stat = procfs::read_stat(pids[i])?;
        if stat.ppid == me.get() && stat.comm == crate::freeze::FREEZER_COMM {
            // Our own freezer is no holder of anything inspected.
            return Err(Error::os("kcmp's own freezer", Errno::SRCH));
        }
        let start = stat.start_time;
        procfs::list_fds_lenient(pids[i]).map(|(fds, bad)| (start, fds, bad))
    })
}

/// Lists the fds of every visible process (the caller left out, unless it
/// is `pid`) that may hold a registered description: pipes and sockets
/// only when a registration has their inode. Empty when there is no
/// registration (the pids are listed all the same).
fn list_candidates(pid: Pid, regs: &[Registration]) -> Result<Listing> {
    let me = Pid::this();
    let needed: HashSet<u64> = regs.iter().map(|r| r.ino).collect();
    let mut pids: Vec<Pid> = procfs::list_pids()?
        .into_iter()
        .filter(|&p| p != me || p == pid)
        .collect();
    if !pids.contains(&pid) {
        pids.push(pid); // a thread (its own fd table when it has one)
    }
    let pids: &[Pid] = if regs.is_empty() { &[] } else { &pids };
    let mut listing = Listing::default();
    for (&p, r) in pids.iter().zip(read_fd_tables(pids, me)) {
        let entries = match r {
            Ok((start, e, bad)) => {
                listing.start_times.insert(p, start);
                let bad = bad.into_iter().map(|(fd, err)| SkippedFd {
                    pid: p,
                    fd,
                    reason: err.errno_name().unwrap_or("E?").to_string(),
                });
                listing.skipped_fds.extend(bad);
                e
            }
            // Exited, or a kernel thread / zombie without an fd table.
            Err(e) if e.errno() == Some(Errno::NOENT) || e.errno() == Some(Errno::SRCH) => continue,
            Err(e) => {
                listing.skipped.push(skipped(p, &e));
                continue;
            }
        };
        for e in entries {
            let key = procfs::bucket_key(&e.target);
            let wanted = match FdTarget::parse(key) {
                FdTarget::Pipe(ino) | FdTarget::Socket(ino) => needed.contains(&ino),
                _ => true,
            };
            if wanted {
                listing
                    .rows
                    .entry(key.to_string())
                    .or_default()
                    .push((FdRef { pid: p, fd: e.fd }, e.target));
            }
        }
    }
    Ok(listing)
}

fn skipped(pid: Pid, err: &Error) -> Skipped {
    let reason = if err.is_permission() {
        "EPERM"
    } else if err.is_gone() {
        "ESRCH"
    } else {
        err.errno_name().unwrap_or("E?")
    };
    Skipped {
        pid,
        reason: reason.to_string(),
        detail: format!("list fds: {err}"),
    }
}

/// The start time names a process for good: holders whose pid names
/// another process (or none) now are discarded, and their pids reported
/// in `skipped`.
fn discard_exited(
    targets: &mut [EpollTarget],
    start_times: &HashMap<Pid, u64>,
    skipped: &mut Vec<Skipped>,
) {
    let gone: BTreeSet<Pid> = targets
        .iter()
        .flat_map(|t| t.holders.iter().map(|h| h.pid))
        .filter(|p| procfs::read_stat(*p).map(|s| s.start_time).ok() != start_times.get(p).copied())
        .collect();
    for t in targets.iter_mut() {
        t.holders.retain(|h| !gone.contains(&h.pid));
    }
    for p in gone {
        skipped.push(Skipped {
            pid: p,
            reason: "ESRCH".into(),
            detail: "exited during the inspection; its answers were discarded".into(),
        });
    }
}
