//! A scan of the calling process itself with more fds than one listing
//! chunk, and with fds just around the chunk size (2,048): every fd it held
//! comes back, once, and none the engine opened. One scan at a time (each
//! test counts this process's fds).

use kcmp::Pid;
use kcmp_map::ScanOptions;
use std::collections::BTreeSet;
use std::os::fd::AsRawFd;

static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn own_fds() -> BTreeSet<i32> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// This process's fds in `map`, in description order.
fn listed_own(map: &kcmp_map::SharingMap) -> Vec<i32> {
    let me = Pid::this();
    map.open_files
        .iter()
        .flat_map(|d| d.members.iter())
        .filter(|m| m.pid == me)
        .map(|m| m.fd.get())
        .collect()
}

fn scan_self() -> kcmp_map::SharingMap {
    kcmp_map::scan(&ScanOptions {
        pids: vec![Pid::this()],
        workers: 2,
        skip_epoll: true,
        ..ScanOptions::default()
    })
    .unwrap()
}

#[test]
fn a_scan_of_this_process_with_many_fds_lists_its_own_fds_only() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    kcmp_map::raise_fd_limit().unwrap();
    let (r, _w) = rustix::pipe::pipe().unwrap();
    let dups: Vec<_> = (0..5000).map(|_| rustix::io::dup(&r).unwrap()).collect();
    let mut mine: BTreeSet<i32> = dups.iter().map(|d| d.as_raw_fd()).collect();
    mine.insert(r.as_raw_fd());
    let before = own_fds();
    let map = scan_self();
    let me = Pid::this();
    let listed: BTreeSet<i32> = listed_own(&map).into_iter().collect();
    let extra: Vec<_> = listed.difference(&before).collect();
    assert!(extra.is_empty(), "engine fds listed: {extra:?}");
    let pipe: Vec<_> = map
        .open_files
        .iter()
        .filter(|d| {
            d.members
                .iter()
                .any(|m| m.pid == me && m.fd.get() == r.as_raw_fd())
        })
        .collect();
    assert_eq!(pipe.len(), 1);
    let members: BTreeSet<i32> = pipe[0].members.iter().map(|m| m.fd.get()).collect();
    assert_eq!(members, mine);
}

/// Around the chunk size (2047, 2048, 2049, 4096 fds; one task, two
/// workers): each fd once, none of the engine's, nothing skipped (a
/// review's boundary check).
#[test]
fn a_self_scan_around_the_chunk_size_lists_each_fd_once() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    kcmp_map::raise_fd_limit().unwrap();
    let (r, _w) = rustix::pipe::pipe().unwrap();
    for want in [2047usize, 2048, 2049, 4096] {
        let mut dups = Vec::new();
        while own_fds().len() < want {
            dups.push(rustix::io::dup(&r).unwrap());
        }
        let before = own_fds();
        let map = scan_self();
        let listed = listed_own(&map);
        let set: BTreeSet<i32> = listed.iter().copied().collect();
        assert_eq!(set.len(), listed.len(), "{want}: an fd listed twice");
        assert!(set.is_subset(&before), "{want}: engine fds listed");
        assert!(map.skipped.is_empty(), "{want}: {:?}", map.skipped);
        assert!(
            dups.iter().all(|d| set.contains(&d.as_raw_fd())),
            "{want}: a dup missing"
        );
    }
}
