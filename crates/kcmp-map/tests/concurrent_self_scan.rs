//! Two scans of the calling process at once, from two of its threads (a
//! library caller): each reports exactly the fds this process holds, or
//! leaves them out and says why (`EBUSY`: the other scan's copies and
//! pidfds are in the same fd table; with nothing else selected, the scan
//! fails with that reason); neither reports the other's sentinel tasks. Alone in its test binary: nothing else opens fds meanwhile.

use kcmp::Pid;
use kcmp_map::{ScanOptions, SharingMap};
use std::collections::BTreeSet;

/// This process's fds in `map`.
fn own_fds(map: &SharingMap) -> BTreeSet<i32> {
    let me = Pid::this();
    map.open_files
        .iter()
        .flat_map(|d| d.members.iter())
        .filter(|m| m.pid == me)
        .map(|m| m.fd.get())
        .collect()
}

#[test]
fn two_scans_of_this_process_at_once_report_only_its_own_fds() {
    let me = Pid::this();
    let held: Vec<std::fs::File> = (0..8)
        .map(|_| std::fs::File::open("/dev/null").expect("/dev/null"))
        .collect();
    // This process's tree: the other scan's sentinels are its children.
    let options = ScanOptions {
        trees: vec![me],
        ..Default::default()
    };
    let alone = kcmp_map::scan(&options).expect("a scan alone");
    let expected = own_fds(&alone);
    for f in &held {
        let fd = std::os::fd::AsRawFd::as_raw_fd(f);
        assert!(expected.contains(&fd), "fd {fd} missing from {expected:?}");
    }
    let results: Vec<kcmp::Result<SharingMap>> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    (0..20)
                        .map(|_| kcmp_map::scan(&options))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().expect("no panic"))
            .collect()
    });
    let mut left_out = 0;
    let total = results.len();
    for (i, result) in results.into_iter().enumerate() {
        let map = match result {
            Ok(map) => map,
            Err(e) => {
                assert!(e.to_string().contains("EBUSY"), "scan {i}: {e}");
                left_out += 1;
                continue;
            }
        };
        let tasks: Vec<Pid> = map.tasks.iter().map(|t| t.pid).collect();
        assert!(tasks.iter().all(|&p| p == me), "scan {i}: tasks {tasks:?}");
        for s in &map.skipped {
            assert!(
                s.pid == me && s.reason == "EBUSY",
                "scan {i}: skipped {s:?}"
            );
        }
        if map.skipped.iter().any(|s| s.pid == me) {
            left_out += 1;
            assert!(own_fds(&map).is_empty(), "scan {i}: left out, yet listed");
        } else {
            assert_eq!(own_fds(&map), expected, "scan {i}");
        }
    }
    eprintln!("{left_out} of {total} scans left this process's fds out");
    drop(held);
}
