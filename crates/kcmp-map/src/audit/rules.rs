//! The fd rules: `exec-leak`, `pipe-self-hold`, `cross-uid-write`,
//! `epoll-stale`, `deleted-held`.

use super::facts::Facts;
use super::kind::{writable, FileKind};
use super::rules_ns::{finding, live_members};
use super::{Finding, Rule, Severity, StaleRegistration};
use crate::epoll::EPOLL_LINK;
use crate::procfs::FdTarget;
use crate::scan::{FdRef, OpenFileDescription, SharingMap};
use kcmp::Pid;
use std::collections::{BTreeMap, BTreeSet};

const WHY_EXEC: &str = "an fd without O_CLOEXEC crossed an exec into another program, which now \
    holds a file it was never meant to have (close what you do not pass: PEP 446)";
const WHY_PIPE: &str = "a process that reads this pipe also holds a write end of it, so its \
    reads will not see EOF when the other writers exit";
const WHY_UID: &str = "a file open for writing held by different users running different \
    programs: one of them writes with the other's access";
const WHY_EPOLL: &str = "the registration outlived the close() of its fd number: its events \
    arrive for a file the program no longer knows by that number";
const WHY_DELETED: &str = "a deleted file held open keeps its disk space until the last holder \
    closes it";

fn exes(facts: &mut Facts, members: &[FdRef]) -> BTreeSet<String> {
    members
        .iter()
        .filter_map(|m| facts.task(m.pid).exe.clone())
        .collect()
}

/// `exec-leak`: a description whose holders at fds 3 and up run two or
/// more executables, one of those fds without O_CLOEXEC. Fds 0–2 and
/// listening sockets (passed by design, as in socket activation) are left
/// out.
pub(super) fn exec_leak(map: &SharingMap, facts: &mut Facts, out: &mut Vec<Finding>) {
    for d in map.open_files.iter().filter(|d| d.members.len() >= 2) {
        let above: Vec<FdRef> = d
            .members
            .iter()
            .copied()
            .filter(|m| m.fd.get() > 2)
            .collect();
        if above.len() < 2 || exes(facts, &above).len() < 2 {
            continue;
        }
        if let FdTarget::Socket(ino) = FdTarget::parse(&d.target) {
            if above.iter().any(|m| facts.is_listening(m.pid, ino)) {
                continue;
            }
        }
        let live: Vec<FdRef> = above
            .into_iter()
            .filter(|&m| facts.fd(m, &d.target).is_some())
            .collect();
        if exes(facts, &live).len() < 2
            || !live
                .iter()
                .any(|&m| facts.cloexec(m, &d.target) == Some(false))
        {
            continue;
        }
        let Some(df) = facts.desc(d) else { continue };
        let holders = live_members(facts, d)
            .into_iter()
            .map(|m| facts.holder(m, &d.target))
            .collect();
        out.push(finding(
            Rule::ExecLeak,
            Severity::Warning,
            d,
            &df,
            holders,
            WHY_EXEC,
        ));
    }
}

fn tgid_of(map: &SharingMap, pid: Pid) -> Pid {
    map.tasks
        .binary_search_by_key(&pid, |t| t.pid)
        .map_or(pid, |i| map.tasks[i].tgid)
}

/// One pipe's ends, per process: (read fds, write fds).
type Ends = BTreeMap<Pid, (Vec<FdRef>, Vec<FdRef>)>;

/// The fds of a pipe's self-holders (read and write ends) and every write
/// fd, when some process holds both ends and another holds a write end;
/// with `live`, only fds still naming the pipe count.
fn self_hold(
    map: &SharingMap,
    facts: &mut Facts,
    ends_of: &[(&OpenFileDescription, u32)],
    live: bool,
) -> Option<Vec<FdRef>> {
    let mut ends: Ends = BTreeMap::new();
    for &(d, mode) in ends_of {
        for &m in &d.members {
            if live && facts.fd(m, &d.target).is_none() {
                continue;
            }
            let e = ends.entry(tgid_of(map, m.pid)).or_default();
            if mode != libc::O_WRONLY as u32 {
                e.0.push(m);
            }
            if mode != libc::O_RDONLY as u32 {
                e.1.push(m);
            }
        }
    }
    // Every process that holds both ends has another writer as soon as two
    // processes hold write ends.
    let writers = ends.values().filter(|(_, w)| !w.is_empty()).count();
    let mut refs: Vec<FdRef> = ends
        .values()
        .filter(|(r, w)| !r.is_empty() && !w.is_empty())
        .flat_map(|(r, _)| r.iter().copied())
        .collect();
    if refs.is_empty() || writers < 2 {
        return None;
    }
    refs.extend(ends.values().flat_map(|(_, w)| w.iter().copied()));
    refs.sort_unstable();
    refs.dedup();
    Some(refs)
}

/// `pipe-self-hold`: a process holds the read end of a pipe and a write
/// end, while another process holds a write end too. One finding per pipe:
/// the read fds of every such process, and every write fd.
pub(super) fn pipe_self_hold(map: &SharingMap, facts: &mut Facts, out: &mut Vec<Finding>) {
    let mut pipes: BTreeMap<u64, Vec<&OpenFileDescription>> = BTreeMap::new();
    for d in &map.open_files {
        if let FdTarget::Pipe(ino) = FdTarget::parse(&d.target) {
            pipes.entry(ino).or_default().push(d);
        }
    }
    for descs in pipes.values().filter(|v| v.len() >= 2) {
        let mut modes = Vec::new();
        let mut read_desc = None;
        for d in descs {
            let Some(df) = facts.desc(d) else { continue };
            let mode = df.flags & libc::O_ACCMODE as u32;
            if mode != libc::O_WRONLY as u32 {
                read_desc.get_or_insert((*d, df));
            }
            modes.push((*d, mode));
        }
        let Some((rd, rdf)) = read_desc else { continue };
        if self_hold(map, facts, &modes, false).is_none() {
            continue;
        }
        let Some(refs) = self_hold(map, facts, &modes, true) else {
            continue;
        };
        let holders = refs.iter().map(|&m| facts.holder(m, &rd.target)).collect();
        let mut f = finding(
            Rule::PipeSelfHold,
            Severity::Warning,
            rd,
            &rdf,
            holders,
            WHY_PIPE,
        );
        f.access = None;
        out.push(f);
    }
}

/// `cross-uid-write`: a regular file open for writing, held by tasks of
/// different uids that do not run the same executable.
pub(super) fn cross_uid_write(map: &SharingMap, facts: &mut Facts, out: &mut Vec<Finding>) {
    for d in map.open_files.iter().filter(|d| d.members.len() >= 2) {
        let uids: BTreeSet<u32> = d
            .members
            .iter()
            .filter_map(|m| facts.task(m.pid).uid)
            .collect();
        if uids.len() < 2 {
            continue;
        }
        let Some(df) = facts.desc(d) else { continue };
        if !matches!(df.kind, FileKind::File | FileKind::Unknown) || !writable(df.flags) {
            continue;
        }
        let live = live_members(facts, d);
        let who: Vec<(Option<u32>, Option<String>)> = live
            .iter()
            .map(|m| {
                let t = facts.task(m.pid);
                (t.uid, t.exe.clone())
            })
            .collect();
        let crosses = who.iter().any(|(ua, ea)| {
            who.iter().any(|(ub, eb)| {
                ua.is_some() && ub.is_some() && ua != ub && ea.is_some() && eb.is_some() && ea != eb
            })
        });
        if !crosses {
            continue;
        }
        let holders = live.iter().map(|&m| facts.holder(m, &d.target)).collect();
        out.push(finding(
            Rule::CrossUidWrite,
            Severity::Info,
            d,
            &df,
            holders,
            WHY_UID,
        ));
    }
}

/// `epoll-stale`: every stale registration of the scan's epoll instances.
pub(super) fn epoll_stale(map: &SharingMap, facts: &mut Facts, out: &mut Vec<Finding>) {
    for inst in &map.epoll {
        for t in inst.targets.iter().filter(|t| t.stale) {
            let watched = t
                .holders
                .first()
                .and_then(|h| map.description_of(h.pid, h.fd));
            let df = watched.and_then(|d| facts.desc(d));
            let target = t
                .target
                .clone()
                .unwrap_or_else(|| "(held by no visible fd)".into());
            let holders = inst
                .holders
                .iter()
                .map(|&h| facts.holder(h, EPOLL_LINK))
                .collect();
            out.push(Finding {
                rule: Rule::EpollStale,
                severity: Severity::Warning,
                target_raw: df
                    .as_ref()
                    .map_or_else(|| target.as_bytes().to_vec(), |f| f.raw.clone()),
                kind: df
                    .as_ref()
                    .map_or(FileKind::from_target(&target, None, 0), |f| f.kind)
                    .name()
                    .into(),
                target,
                access: None,
                holders,
                why: WHY_EPOLL.into(),
                size: None,
                registration: Some(StaleRegistration {
                    epfd: inst.epfd,
                    pid: inst.pid,
                    tfd: t.tfd,
                    toff: t.toff,
                    tfd_now: t.tfd_now.clone(),
                }),
                inode: None,
            });
        }
    }
}

/// `deleted-held`: a deleted regular file held open (memfds left out),
/// with its size where a `statx` cannot block.
pub(super) fn deleted_held(map: &SharingMap, facts: &mut Facts, out: &mut Vec<Finding>) {
    for d in &map.open_files {
        if !d.target.starts_with('/')
            || !d.target.ends_with(" (deleted)")
            || d.target.starts_with("/memfd:")
        {
            continue;
        }
        let Some(df) = facts.desc(d) else { continue };
        if !matches!(df.kind, FileKind::File | FileKind::Unknown) || df.nlink.is_some_and(|n| n > 0)
        {
            continue;
        }
        let holders = live_members(facts, d)
            .into_iter()
            .map(|m| facts.holder(m, &d.target))
            .collect();
        let mut f = finding(
            Rule::DeletedHeld,
            Severity::Info,
            d,
            &df,
            holders,
            WHY_DELETED,
        );
        f.size = df.size;
        f.inode = df.inode;
        out.push(f);
    }
}
