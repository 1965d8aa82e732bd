//! A scan of this process with fds just around the listing's chunk size
//! (2,048: 2047, 2048, 2049, 4096 fds, one task, two workers) lists every fd
//! it held, once, and none of the engine's (a review's boundary check).

use kcmp::Pid;
use kcmp_map::ScanOptions;
use std::collections::BTreeSet;

fn own_fds() -> BTreeSet<i32> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

#[test]
fn self_scan_at_chunk_boundaries_lists_each_fd_once() {
    kcmp_map::raise_fd_limit().unwrap();
    let (r, _w) = rustix::pipe::pipe().unwrap();
    for want in [2047usize, 2048, 2049, 4096] {
        let mut dups = Vec::new();
        // read_dir's own fd is not in the set it returns
        while own_fds().len() < want {
            dups.push(rustix::io::dup(&r).unwrap());
        }
        let before = own_fds();
        let map = kcmp_map::scan(&ScanOptions {
            pids: vec![Pid::this()],
            workers: 2,
            skip_epoll: true,
            ..ScanOptions::default()
        })
        .unwrap();
        let me = Pid::this();
        let listed: Vec<i32> = map
            .open_files
            .iter()
            .flat_map(|d| d.members.iter())
            .filter(|m| m.pid == me)
            .map(|m| m.fd.get())
            .collect();
        let set: BTreeSet<i32> = listed.iter().copied().collect();
        assert_eq!(set.len(), listed.len(), "{want}: an fd listed twice");
        assert!(set.is_subset(&before), "{want}: engine fds listed");
        assert!(map.skipped.is_empty(), "{want}: {:?}", map.skipped);
        // at least all the pipe dups are there
        assert!(
            set.len() + 8 >= before.len(),
            "{want}: {} of {}",
            set.len(),
            before.len()
        );
        drop(dups);
    }
}
