//! One epoll instance's registrations resolved to the descriptions they
//! watch, and whether each registered number still refers to its
//! description.

use super::index::Descriptions;
use super::inodes::{LazyInoIndex, Phase};
use super::{EpollTarget, Registration};
use crate::model::FdRef;
use crate::procfs::{self, FdTarget};
use kcmp::{compare_epoll_target, compare_files, EpollSlot, FdNum, Pid};
use kcmp::{KcmpOrdering, Result};
use rustix::io::Errno;
use std::cell::Cell;
use std::collections::HashMap;

/// `Less` <-> `Greater`: the kernel answers how pid1's file orders against
/// the registered one; searches need the other way round.
fn reversed(o: KcmpOrdering) -> KcmpOrdering {
    match o {
        KcmpOrdering::Less => KcmpOrdering::Greater,
        KcmpOrdering::Greater => KcmpOrdering::Less,
        other => other,
    }
}

/// Whether `tfd` in `pid` refers to the registration's description now,
/// and what it refers to. Errors: the registration or the epoll vanished.
///
/// `tfd_now` is what `tfd` refers to (`None`: closed). When the watched
/// description's holders are known, `KCMP_FILE` against one of them decides
/// (cheaper than `KCMP_EPOLL_TFD`, which walks the interest list).
fn staleness(
    pid: Pid,
    slot: EpollSlot,
    tfd_now: Option<String>,
    holders: &[FdRef],
    calls: &Cell<u64>,
) -> Result<(bool, Option<String>)> {
    if tfd_now.is_none() {
        return Ok((true, None));
    }
    let me = FdRef { pid, fd: slot.tfd };
    if holders.binary_search(&me).is_ok() {
        return Ok((false, tfd_now));
    }
    for h in holders {
        calls.set(calls.get() + 1);
        match compare_files(pid, slot.tfd, h.pid, h.fd) {
            Ok(o) => return Ok((!o.is_equal(), tfd_now)),
            Err(e) if e.errno() == Some(Errno::BADF) => {
                // Either side closed meanwhile: is it ours?
                if procfs::fd_target(pid, slot.tfd).is_err() {
                    return Ok((true, None));
                }
            }
            Err(e) => return Err(e),
        }
    }
    calls.set(calls.get() + 1);
    match compare_epoll_target(pid, slot.tfd, pid, slot) {
        Ok(o) => Ok((!o.is_equal(), tfd_now)),
        // tfd closed between the readlink and kcmp (checked before the epoll fd).
        Err(e) if e.errno() == Some(Errno::BADF) && check_slot(pid, slot, calls).is_ok() => {
            Ok((true, None))
        }
        Err(e) => Err(e),
    }
}

/// Is the registration still there? (The epoll fd compared with the
/// registration: only the epoll side can fail.)
fn check_slot(pid: Pid, slot: EpollSlot, calls: &Cell<u64>) -> Result<()> {
    calls.set(calls.get() + 1);
    compare_epoll_target(pid, slot.epfd, pid, slot).map(|_| ())
}

/// The description registered in `slot` of `pid`, as its link text and
/// holders: candidates from pipes and sockets first, then `anon_inode:…`,
/// then the rest. `None` when no visible fd holds it; an error when the
/// registration itself is gone.
fn find_watched(
    index: &dyn Descriptions,
    inos: &mut LazyInoIndex<'_>,
    pid: Pid,
    reg: &Registration,
    slot: EpollSlot,
    calls: &Cell<u64>,
) -> Result<Option<(String, Vec<FdRef>)>> {
    let mut cmp = |m: &FdRef| {
        crate::freeze::step();
        calls.set(calls.get() + 1);
        compare_epoll_target(m.pid, m.fd, pid, slot).map(reversed)
    };
    for phase in [Phase::LinkText, Phase::Anon, Phase::Path] {
        for key in inos.get().candidates(reg, phase) {
            if let Some(d) = index.find(key, &mut cmp)? {
                return Ok(Some(d));
            }
        }
    }
    // Not held by any visible fd, or the registration itself is gone.
    check_slot(pid, slot, calls)?;
    Ok(None)
}

/// The resolved registration. A registration found by no listed fd, but
/// whose `tfd` is not stale, is held by `tfd` (opened after the listing).
fn target_of(
    pid: Pid,
    reg: &Registration,
    found: Option<(String, Vec<FdRef>)>,
    stale: bool,
    tfd_now: Option<String>,
) -> EpollTarget {
    let (target, holders) = match found {
        Some((t, h)) => (Some(t), h),
        None => (None, Vec::new()),
    };
    let (target, holders) = if holders.is_empty() && !stale {
        // KCMP_EPOLL_TFD proved that tfd holds it although the listing
        // did not show it (opened after the listing): one holder at least.
        (tfd_now.clone(), vec![FdRef { pid, fd: reg.tfd }])
    } else {
        (target, holders)
    };
    EpollTarget {
        tfd: reg.tfd,
        toff: reg.toff,
        events: reg.events,
        data: reg.data,
        ino: reg.ino,
        sdev: reg.sdev,
        target,
        stale,
        tfd_now,
        holders,
    }
}

/// Resolves every registration of `epfd` of `pid` against `index`.
pub(super) fn resolve(
    index: &dyn Descriptions,
    inos: &mut LazyInoIndex<'_>,
    pid: Pid,
    epfd: FdNum,
    regs: &[Registration],
    calls: &Cell<u64>,
) -> Result<Vec<EpollTarget>> {
    let mut out = Vec::with_capacity(regs.len());
    // What each registered number refers to now (many registrations may
    // share one number).
    let mut now: HashMap<FdNum, Option<String>> = HashMap::new();
    for reg in regs {
        crate::freeze::step();
        let slot = reg.slot(epfd);
        if let Some((found, tfd_now)) = held_by_tfd(index, pid, reg, slot, &mut now, calls) {
            out.push(target_of(pid, reg, Some(found), false, tfd_now));
            continue;
        }
        let tfd_now = link_now(&mut now, pid, reg.tfd);
        let found = find_watched(index, inos, pid, reg, slot, calls)?;
        let holders = found.as_ref().map(|f| f.1.as_slice()).unwrap_or_default();
        let (stale, tfd_now) = staleness(pid, slot, tfd_now, holders, calls)?;
        out.push(target_of(pid, reg, found, stale, tfd_now));
    }
    Ok(out)
}

/// A watched description: its link text and holders.
type Watched = (String, Vec<FdRef>);

/// The common case in one kcmp: `tfd` of `pid` still refers to the
/// registered description (the registration is not stale), and the
/// description `tfd` was listed in is the one it refers to now (same link
/// text, same inode when the text has it). `KCMP_EPOLL_TFD` decides it, the
/// comparison a search among the listed holders would end in; anything
/// else (unequal, an error, another name) goes the long way.
fn held_by_tfd(
    index: &dyn Descriptions,
    pid: Pid,
    reg: &Registration,
    slot: EpollSlot,
    now: &mut HashMap<FdNum, Option<String>>,
    calls: &Cell<u64>,
) -> Option<(Watched, Option<String>)> {
    let (target, members) = index.listed_at(FdRef { pid, fd: reg.tfd })?;
    // A pipe's or socket's name is its inode (`pipe:[ino]`; pipefs and
    // sockfs number from one counter): with the registered inode, and the
    // registered file proved held by `tfd` below, that name is what `tfd`
    // shows now, no readlink needed. Other names are read and compared.
    let by_inode = match FdTarget::parse(target) {
        FdTarget::Pipe(ino) | FdTarget::Socket(ino) if ino == reg.ino => true,
        FdTarget::Pipe(_) | FdTarget::Socket(_) => return None,
        _ => false,
    };
    let tfd_now = match by_inode {
        true => Some(target.to_string()),
        false => link_now(now, pid, reg.tfd),
    };
    if procfs::bucket_key(tfd_now.as_deref()?) != procfs::bucket_key(target) {
        return None;
    }
    calls.set(calls.get() + 1);
    let equal = compare_epoll_target(pid, reg.tfd, pid, slot)
        .ok()?
        .is_equal();
    equal.then(|| ((target.to_string(), members.to_vec()), tfd_now))
}

/// What `tfd` of `pid` refers to now (`None`: closed), read once per
/// number (many registrations may share one).
fn link_now(now: &mut HashMap<FdNum, Option<String>>, pid: Pid, tfd: FdNum) -> Option<String> {
    now.entry(tfd)
        .or_insert_with(|| procfs::fd_target(pid, tfd).ok())
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reversed_swaps_less_and_greater() {
        assert_eq!(reversed(KcmpOrdering::Less), KcmpOrdering::Greater);
        assert_eq!(reversed(KcmpOrdering::Greater), KcmpOrdering::Less);
        assert_eq!(reversed(KcmpOrdering::Equal), KcmpOrdering::Equal);
    }
}
