//! [`super::resolve_scan`]: the epoll section of a scan.

use super::index::ScanIndex;
use super::inodes::LazyInoIndex;
use super::registrations::{read, read_again, unchanged};
use super::resolve::resolve;
use super::{EpollInstance, EpollTarget, ATTEMPTS, EPOLL_LINK};
use crate::model::{FdRef, OpenFileDescription, SharingMap};
use crate::procfs;
use kcmp::{Error, Result};
use rustix::io::Errno;
use std::cell::Cell;

/// See [`super::resolve_scan_counted`].
pub(super) fn resolve_scan_counted(map: &SharingMap) -> (Vec<EpollInstance>, u64) {
    let epolls: Vec<&OpenFileDescription> = map
        .open_files
        .iter()
        .filter(|d| procfs::bucket_key(&d.target) == EPOLL_LINK)
        .collect();
    if epolls.is_empty() {
        return (Vec::new(), 0);
    }
    let index = ScanIndex::new(map);
    // Instances are independent: resolve them on all cores, each worker with
    // its own inode cache.
    let workers = crate::parallel::workers(0);
    let chunk = epolls.len().div_ceil(workers * 8).max(1);
    let parts = crate::parallel::parallel_map_lazy(epolls.len().div_ceil(chunk), workers, |c| {
        let mut inos = LazyInoIndex::new(|| index.keys());
        let calls = Cell::new(0u64);
        let mine = &epolls[c * chunk..((c + 1) * chunk).min(epolls.len())];
        let out: Vec<EpollInstance> = mine
            .iter()
            .map(|d| resolve_instance(&index, &mut inos, d, &calls))
            .collect();
        (out, calls.get())
    });
    let calls = parts.iter().map(|(_, c)| c).sum();
    (parts.into_iter().flat_map(|(out, _)| out).collect(), calls)
}

/// One epoll description of the scan, resolved in its first holder's fd
/// table (up to [`ATTEMPTS`] times while its registrations change); the
/// last error, if every attempt failed, is kept in `error`.
fn resolve_instance(
    index: &ScanIndex,
    inos: &mut LazyInoIndex<'_>,
    d: &OpenFileDescription,
    calls: &Cell<u64>,
) -> EpollInstance {
    let first = d.members[0];
    let mut instance = EpollInstance {
        pid: first.pid,
        epfd: first.fd,
        holders: d.members.clone(),
        targets: Vec::new(),
        error: None,
    };
    let mut last_err = None;
    for _ in 0..ATTEMPTS {
        match attempt(index, inos, first, calls) {
            Ok(t) => {
                instance.targets = t;
                last_err = None;
                break;
            }
            Err(e) => last_err = Some(e),
        }
    }
    instance.error = last_err.map(|e| e.to_string());
    instance
}

/// One inspection of epoll fd `epfd`: `EAGAIN` when its registrations
/// changed meanwhile.
fn attempt(
    index: &ScanIndex,
    inos: &mut LazyInoIndex<'_>,
    epfd: FdRef,
    calls: &Cell<u64>,
) -> Result<Vec<EpollTarget>> {
    let regs = read(epfd.pid, epfd.fd)?;
    let t = resolve(index, inos, epfd.pid, epfd.fd, &regs, calls)?;
    if !unchanged(&regs, &read_again(epfd.pid, epfd.fd)?) {
        return Err(Error::os("the registrations changed", Errno::AGAIN));
    }
    Ok(t)
}
