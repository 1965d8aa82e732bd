//! Which descriptions the engine anchors with a copy of its own. memfds
//! live on the kernel's internal shmem mount, which is in no mount table:
//! the engine learns its id from a memfd of its own and copies them.

use kcmp::{FdNum, Pid};
use kcmp_map::{scan, ScanOptions};
use rustix::fs::{memfd_create, MemfdFlags};
use std::os::fd::AsRawFd;

#[test]
fn memfds_get_anchors_and_group_exactly() {
    let a = memfd_create("kcmp-anchor-test", MemfdFlags::CLOEXEC).expect("memfd_create");
    let b = memfd_create("kcmp-anchor-test", MemfdFlags::CLOEXEC).expect("memfd_create");
    let a2 = rustix::io::fcntl_dupfd_cloexec(&a, 0).expect("dup");
    let me = Pid::this();
    let map = scan(&ScanOptions {
        pids: vec![me],
        skip_epoll: true,
        ..ScanOptions::default()
    })
    .expect("scan");
    let of = |fd: &std::os::fd::OwnedFd| {
        let d = map.description_of(me, FdNum::new(fd.as_raw_fd()).unwrap());
        d.expect("memfd scanned").members.clone()
    };
    assert_eq!(of(&a), of(&a2), "a dup shares its description");
    assert_ne!(
        of(&a),
        of(&b),
        "two memfds of one name are two descriptions"
    );
    assert_eq!(map.stats.descriptions_without_anchor, 0);
    let d = map.description_of(me, FdNum::new(a.as_raw_fd()).unwrap());
    assert!(!d.unwrap().without_anchor());
}

/// The thread that closes the engine's copies ends when idle: a library
/// caller's process is single-threaded again soon after a scan (which
/// `setns(CLONE_NEWNS)` and `unshare(CLONE_NEWUSER)` require).
#[test]
fn the_closer_thread_ends_after_a_scan() {
    let pipes: Vec<_> = (0..8).map(|_| rustix::pipe::pipe().unwrap()).collect();
    let map = scan(&ScanOptions {
        pids: vec![Pid::this()],
        skip_epoll: true,
        ..ScanOptions::default()
    })
    .expect("scan");
    assert!(map.stats.kcmp_calls > 0);
    drop(pipes);
    let closers = || {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .flatten()
            .filter(|t| {
                std::fs::read_to_string(t.path().join("comm"))
                    .is_ok_and(|c| c.trim() == "kcmp-closer")
            })
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while closers() > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        closers(),
        0,
        "a kcmp-closer thread outlived the scan by 5 s"
    );
}
