//! A scan of the calling process itself with more fds than one listing
//! chunk: every fd it held comes back, and none the engine opened.

use kcmp::Pid;
use kcmp_map::ScanOptions;
use std::collections::BTreeSet;
use std::os::fd::AsRawFd;

fn own_fds() -> BTreeSet<i32> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

#[test]
fn a_scan_of_this_process_with_many_fds_lists_its_own_fds_only() {
    kcmp_map::raise_fd_limit().unwrap();
    let (r, _w) = rustix::pipe::pipe().unwrap();
    let dups: Vec<_> = (0..5000).map(|_| rustix::io::dup(&r).unwrap()).collect();
    let mut mine: BTreeSet<i32> = dups.iter().map(|d| d.as_raw_fd()).collect();
    mine.insert(r.as_raw_fd());
    let before = own_fds();
    let options = ScanOptions {
        pids: vec![Pid::this()],
        workers: 2,
        skip_epoll: true,
        ..ScanOptions::default()
    };
    let map = kcmp_map::scan(&options).unwrap();
    let me = Pid::this();
    let listed: BTreeSet<i32> = map
        .open_files
        .iter()
        .flat_map(|d| d.members.iter())
        .filter(|m| m.pid == me)
        .map(|m| m.fd.get())
        .collect();
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
