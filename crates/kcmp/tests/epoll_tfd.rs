//! KCMP_EPOLL_TFD against an epoll instance built by the fixture: a plain
//! registration, a target registered under an fd number closed since, and
//! three targets registered under one number.

use kcmp::{compare_epoll_target, compare_files, EpollSlot, FdNum, KcmpOrdering, Pid};
use kcmp_testkit::{FdRef, Topology, Truth};
use std::collections::BTreeSet;

fn pid(p: i32) -> Pid {
    Pid::new(p).unwrap()
}

fn fdn(f: i32) -> FdNum {
    FdNum::new(f).unwrap()
}

fn slot(t: &Truth, tfd: i32, toff: u32) -> EpollSlot {
    EpollSlot {
        epfd: fdn(t.fd("epfd").fd),
        tfd: fdn(tfd),
        toff,
    }
}

fn target(t: &Truth, fd1: FdRef, tfd: i32, toff: u32) -> kcmp::Result<KcmpOrdering> {
    let owner = t.fd("epfd").pid;
    compare_epoll_target(pid(fd1.pid), fdn(fd1.fd), pid(owner), slot(t, tfd, toff))
}

#[test]
fn plain_registration() {
    let topo = Topology::spawn("epoll", &[]);
    let t = topo.truth();
    let tgt = t.fd("epoll_target");
    assert!(target(t, tgt, tgt.fd, 0).unwrap().is_equal());
    // An eventfd too (one anonymous inode), but another description.
    assert!(!target(t, t.fd("not_target"), tgt.fd, 0).unwrap().is_equal());
    // From another process: the root's stderr is not the target.
    let root_err = FdRef { pid: t.root, fd: 2 };
    assert!(!target(t, root_err, tgt.fd, 0).unwrap().is_equal());
}

#[test]
fn target_registered_under_a_closed_fd_number() {
    let topo = Topology::spawn("epoll", &[]);
    let t = topo.truth();
    let closed = t.number("closed_tfd") as i32;
    assert!(
        !t.fds_of(t.fd("epfd").pid).contains(&closed),
        "fd {closed} is closed"
    );
    assert!(target(t, t.fd("closed_target_keep"), closed, 0)
        .unwrap()
        .is_equal());
    assert!(!target(t, t.fd("epoll_target"), closed, 0)
        .unwrap()
        .is_equal());
    let e = target(t, t.fd("closed_target_keep"), closed, 1).unwrap_err();
    assert_eq!(e.errno_name(), Some("ENOENT"));
}

#[test]
fn several_registrations_under_one_number() {
    let topo = Topology::spawn("epoll", &[]);
    let t = topo.truth();
    let tfd = t.number("multi_tfd") as i32;
    let n = t.number("multi_count") as u32;
    let names = ["multi_x", "multi_y", "multi_z"];
    assert_eq!(names.len() as u32, n);
    // Each toff maps to exactly one target; together they are all of them.
    let mut seen = BTreeSet::new();
    for toff in 0..n {
        let hits: Vec<&str> = names
            .iter()
            .copied()
            .filter(|name| target(t, t.fd(name), tfd, toff).unwrap().is_equal())
            .collect();
        assert_eq!(hits.len(), 1, "toff {toff} matched {hits:?}");
        assert!(seen.insert(hits[0]), "{} matched twice", hits[0]);
    }
    assert_eq!(seen.len(), names.len());
    // The fd now at that number is one of them (the last registered).
    assert!(t.same_file(t.fd("multi_at_tfd"), t.fd("multi_z")));
    // Past the end: ENOENT.
    let e = target(t, t.fd("multi_x"), tfd, n).unwrap_err();
    assert_eq!(e.errno_name(), Some("ENOENT"));
    assert!(e.to_string().contains("ENOENT"), "{e}");
    // A number nothing was registered under: ENOENT.
    let unregistered = t.fd("not_target").fd;
    let e = target(t, t.fd("multi_x"), unregistered, 0).unwrap_err();
    assert_eq!(e.errno_name(), Some("ENOENT"));
}

#[test]
fn epoll_tfd_orders_like_file() {
    let topo = Topology::spawn("epoll", &[]);
    let t = topo.truth();
    let owner = t.fd("epfd").pid;
    let tgt = t.fd("epoll_target");
    for name in [
        "not_target",
        "multi_x",
        "multi_y",
        "closed_target_keep",
        "epfd",
        "regular_file",
    ] {
        let f = t.fd(name);
        let via_epoll = target(t, f, tgt.fd, 0).unwrap();
        let via_file = compare_files(pid(f.pid), fdn(f.fd), pid(owner), fdn(tgt.fd)).unwrap();
        assert_eq!(via_epoll, via_file, "{name}");
        assert!(via_epoll.to_ordering().is_some());
    }
}

#[test]
fn epoll_errors() {
    let topo = Topology::spawn("epoll", &[]);
    let t = topo.truth();
    let owner = t.fd("epfd").pid;
    let tgt = t.fd("epoll_target");
    // EINVAL: the "epoll" fd is a regular file.
    let not_epoll = EpollSlot {
        epfd: fdn(t.fd("regular_file").fd),
        tfd: fdn(tgt.fd),
        toff: 0,
    };
    let e = compare_epoll_target(pid(owner), fdn(tgt.fd), pid(owner), not_epoll).unwrap_err();
    assert_eq!(e.errno_name(), Some("EINVAL"));
    assert!(e.to_string().contains("not an epoll"), "{e}");
    // EBADF: the epoll fd is not open in pid2.
    let closed_ep = EpollSlot {
        epfd: fdn(999),
        tfd: fdn(tgt.fd),
        toff: 0,
    };
    let e = compare_epoll_target(pid(owner), fdn(tgt.fd), pid(owner), closed_ep).unwrap_err();
    assert_eq!(e.errno_name(), Some("EBADF"));
    // EBADF: fd1 is not open in pid1.
    let e = compare_epoll_target(pid(owner), fdn(998), pid(owner), slot(t, tgt.fd, 0)).unwrap_err();
    assert_eq!(e.errno_name(), Some("EBADF"));
}
