//! kcmp::fallback against real fds and processes, checked against kcmp
//! itself (which works on the test machine) as the ground truth.

use kcmp::fallback::{
    dupfd_query, epoll_same, group_by_equality, same_description, same_description_without_kcmp,
    same_own_fds, LocalMethod, Method,
};
use kcmp::{compare_files, FdNum, Pid};
use kcmp_testkit::process::{sleeper, Kid};
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Stdio;

fn fd(raw: i32) -> FdNum {
    FdNum::new(raw).unwrap()
}

fn temp_file(tag: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("kcmp-fallback-{}-{tag}", std::process::id()));
    std::fs::write(&p, b"data").unwrap();
    p
}

/// The kid's pid as a [`Pid`].
fn pid(kid: &Kid) -> Pid {
    Pid::new(kid.pid()).unwrap()
}

#[test]
fn dupfd_query_tells_dup_from_second_open() {
    let p = temp_file("dq");
    let a = File::open(&p).unwrap();
    let a2 = a.try_clone().unwrap();
    let b = File::open(&p).unwrap();
    // This kernel (6.18) has F_DUPFD_QUERY.
    assert_eq!(dupfd_query(&a, &a2).unwrap(), Some(true));
    assert_eq!(dupfd_query(&a, &b).unwrap(), Some(false));
    // O_PATH fds work too.
    use std::os::unix::fs::OpenOptionsExt;
    let o = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(&p)
        .unwrap();
    let o2 = o.try_clone().unwrap();
    assert_eq!(dupfd_query(&o, &o2).unwrap(), Some(true));
    assert_eq!(dupfd_query(&o, &a).unwrap(), Some(false));
    std::fs::remove_file(p).unwrap();
}

#[test]
fn epoll_trick_on_pollable_files() {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    let (s1, s2) = rustix::net::socketpair(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::STREAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )
    .unwrap();
    let e1 = rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC).unwrap();
    let e2 = rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC).unwrap();
    let fds: Vec<OwnedFd> = vec![r, w, s1, s2, e1, e2];
    // Every pair, each fd also against a dup of itself; kcmp decides truth.
    let dups: Vec<OwnedFd> = fds.iter().map(|f| f.try_clone().unwrap()).collect();
    let all: Vec<&OwnedFd> = fds.iter().chain(dups.iter()).collect();
    let mut same_pairs = 0;
    for a in &all {
        for b in &all {
            let truth = kcmp::same_open_file(a, b).unwrap();
            assert_eq!(epoll_same(a, b).unwrap(), truth);
            same_pairs += truth as u32;
        }
    }
    // 6 descriptions × (2 fds)² ordered pairs.
    assert_eq!(same_pairs, 24);
}

#[test]
fn epoll_trick_refuses_regular_files() {
    let p = temp_file("ep");
    let a = File::open(&p).unwrap();
    let err = epoll_same(&a, &a).unwrap_err();
    assert_eq!(err.errno_name(), Some("EPERM"), "{err}");
    std::fs::remove_file(p).unwrap();
}

#[test]
fn same_own_fds_prefers_dupfd_query() {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    let r2 = r.try_clone().unwrap();
    assert_eq!(
        same_own_fds(&r, &r2).unwrap(),
        (true, LocalMethod::DupfdQuery)
    );
    assert_eq!(
        same_own_fds(&r, &w).unwrap(),
        (false, LocalMethod::DupfdQuery)
    );
}

/// Two children: A holds a file (stdin, stdout = one description; stderr a
/// second open of it); B holds the read end of a pipe twice and the write
/// end. This process keeps its own copies.
fn fixtures(tag: &str) -> (Kid, Kid, File, OwnedFd, std::path::PathBuf) {
    let p = temp_file(tag);
    let f = File::open(&p).unwrap();
    let f_again = File::open(&p).unwrap();
    let a = sleeper(
        Stdio::from(f.try_clone().unwrap()),
        Stdio::from(f.try_clone().unwrap()),
        Stdio::from(f_again),
    );
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    let b = sleeper(
        Stdio::from(r.try_clone().unwrap()),
        Stdio::from(w),
        Stdio::from(r.try_clone().unwrap()),
    );
    (a, b, f, r, p)
}

#[test]
fn across_processes_matches_kcmp_on_every_pair() {
    let (a, b, f, r, p) = fixtures("across");
    let me = Pid::this();
    let refs: Vec<(Pid, FdNum)> = vec![
        (pid(&a), fd(0)),
        (pid(&a), fd(1)),
        (pid(&a), fd(2)),
        (pid(&b), fd(0)),
        (pid(&b), fd(1)),
        (pid(&b), fd(2)),
        (me, fd(f.as_raw_fd())),
        (me, fd(r.as_raw_fd())),
    ];
    let mut same = 0;
    for &(p1, f1) in &refs {
        for &(p2, f2) in &refs {
            let truth = compare_files(p1, f1, p2, f2).unwrap().is_equal();
            let got = same_description_without_kcmp(p1, f1, p2, f2).unwrap();
            assert_eq!(got.same, truth, "({p1},{f1}) vs ({p2},{f2})");
            let want_method = if p1 == me && p2 == me {
                Method::DupfdQuery
            } else {
                Method::PidfdGetfd(LocalMethod::DupfdQuery)
            };
            assert_eq!(got.method, want_method);
            same += truth as u32;
        }
    }
    // Descriptions: {a0,a1,f}, {a2}, {b0,b2,r}, {b1}: 9 + 1 + 9 + 1.
    assert_eq!(same, 20);
    // With kcmp available, same_description uses it.
    let s = same_description(pid(&a), fd(0), pid(&a), fd(1)).unwrap();
    assert_eq!((s.same, s.method), (true, Method::Kcmp));
    #[cfg(feature = "serde")]
    assert_eq!(serde_json::to_value(s).unwrap()["method"], "kcmp");
    drop((a, b));
    std::fs::remove_file(p).unwrap();
}

#[test]
fn fetched_fds_are_closed_at_once() {
    let (a, b, _f, _r, p) = fixtures("closed");
    // fd 2 of A is a second open() of the fixture's file: after fetching it
    // 50 times, this process must hold no fd of that file but its own `f`.
    let holders = || {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|l| *l == p)
            .count()
    };
    assert_eq!(holders(), 1);
    for _ in 0..50 {
        let s = same_description_without_kcmp(pid(&a), fd(2), pid(&b), fd(0)).unwrap();
        assert!(!s.same);
        assert_eq!(holders(), 1);
    }
    drop((a, b));
    std::fs::remove_file(p).unwrap();
}

#[test]
fn errors_name_the_errno() {
    let (a, _b, _f, _r, p) = fixtures("errors");
    let err = same_description_without_kcmp(pid(&a), fd(0), pid(&a), fd(999)).unwrap_err();
    assert_eq!(err.errno_name(), Some("EBADF"), "{err}");
    let gone = Pid::new(kcmp_testkit::reaped_pid()).unwrap();
    let err = same_description_without_kcmp(gone, fd(0), pid(&a), fd(0)).unwrap_err();
    assert_eq!(err.errno_name(), Some("ESRCH"), "{err}");
    let err = same_description_without_kcmp(Pid::this(), fd(999), Pid::this(), fd(0)).unwrap_err();
    assert_eq!(err.errno_name(), Some("EBADF"), "{err}");
    std::fs::remove_file(p).unwrap();
}

#[test]
fn equality_grouping_is_exact_and_counted() {
    let (a, b, f, r, p) = fixtures("grouping");
    let me = Pid::this();
    let items = vec![
        (pid(&a), fd(0)),
        (pid(&b), fd(0)),
        (pid(&a), fd(2)),
        (pid(&a), fd(1)),
        (me, fd(r.as_raw_fd())),
        (pid(&b), fd(1)),
        (me, fd(f.as_raw_fd())),
        (pid(&b), fd(2)),
        (pid(&a), fd(999)),
    ];
    let g = group_by_equality(items, |x, y| {
        Ok(same_description_without_kcmp(x.0, x.1, y.0, y.1)?.same)
    });
    let expect = vec![
        vec![(pid(&a), fd(0)), (pid(&a), fd(1)), (me, fd(f.as_raw_fd()))],
        vec![(pid(&b), fd(0)), (me, fd(r.as_raw_fd())), (pid(&b), fd(2))],
        vec![(pid(&a), fd(2))],
        vec![(pid(&b), fd(1))],
    ];
    assert_eq!(g.groups, expect);
    assert_eq!(g.failed.len(), 1);
    assert_eq!(g.failed[0].0, (pid(&a), fd(999)));
    assert_eq!(g.failed[0].1.errno_name(), Some("EBADF"));
    // Each item is compared with the representatives until it matches:
    // 0+1+2+1+2+3+1+2 = 12, plus 1 for the failing item (fails at once).
    assert_eq!(g.comparisons, 13);
    drop((a, b));
    std::fs::remove_file(p).unwrap();
}

#[test]
fn kcmp_is_available_without_a_filter() {
    if kcmp::fallback::seccomp_mode() == Some(2) {
        eprintln!("a seccomp filter is installed: the seccomp tests cover this case");
        return;
    }
    assert!(kcmp::fallback::kcmp_available().is_available());
    assert!(kcmp::fallback::process_kinds_unavailable(kcmp::fallback::probe_kcmp()).is_none());
}
