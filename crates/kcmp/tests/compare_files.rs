//! KCMP_FILE against real processes built by the `kcmp-topology` fixture:
//! fork, dup, dup2, separate open()s, SCM_RIGHTS, O_PATH, pipes, sockets,
//! eventfd/epoll, threads by tid — sharing and not sharing.

use kcmp::{compare_files, compare_own_fds, same_open_file, FdNum, KcmpOrdering, Pid};
use kcmp_testkit::{FdRef, Topology, Truth};

fn pid(p: i32) -> Pid {
    Pid::new(p).expect("valid pid")
}

fn fdn(f: i32) -> FdNum {
    FdNum::new(f).expect("valid fd")
}

fn cmp(a: FdRef, b: FdRef) -> KcmpOrdering {
    compare_files(pid(a.pid), fdn(a.fd), pid(b.pid), fdn(b.fd))
        .unwrap_or_else(|e| panic!("compare_files {a:?} {b:?}: {e}"))
}

fn same(t: &Truth, a: &str, b: &str) -> bool {
    cmp(t.fd(a), t.fd(b)).is_equal()
}

#[test]
fn man_page_example_fork_reopen_dup() {
    let topo = Topology::spawn("basic", &[]);
    let t = topo.truth();
    // kcmp(child, parent, KCMP_FILE, 3, 3) ==> same
    assert!(same(t, "child_inherited", "parent_file"));
    assert_eq!(t.fd("child_inherited").fd, t.fd("parent_file").fd);
    // Distinct open()s of one file, same flags and offset: different.
    assert!(!same(t, "child_reopen", "child_inherited"));
    assert!(!same(t, "child_reopen", "parent_file"));
    // dup and dup2: same.
    assert!(same(t, "child_dup", "child_inherited"));
    assert!(same(t, "child_dup", "parent_file"));
    assert!(same(t, "child_reopen_dup2", "child_reopen"));
    assert!(!same(t, "child_reopen_dup2", "child_dup"));
}

#[test]
fn pipes_sockets_opath_eventfd_epoll() {
    let topo = Topology::spawn("basic", &[]);
    let t = topo.truth();
    assert!(
        !same(t, "child_pipe_r", "child_pipe_w"),
        "pipe ends are two descriptions"
    );
    assert!(
        !same(t, "child_sock_a", "child_sock_b"),
        "socketpair ends differ"
    );
    assert!(same(t, "child_opath", "child_opath"), "O_PATH fds work");
    assert!(
        !same(t, "child_opath", "child_reopen"),
        "O_PATH open is its own description"
    );
    assert!(
        !same(t, "child_epoll", "child_eventfd"),
        "one anon inode, two descriptions"
    );
    for name in [
        "child_pipe_r",
        "child_sock_a",
        "child_epoll",
        "child_eventfd",
        "child_opath",
    ] {
        assert!(same(t, name, name));
        assert!(!same(t, name, "parent_file"));
    }
}

#[test]
fn scm_rights_fork_inheritance_and_separate_opens_across_processes() {
    let topo = Topology::spawn("general", &[]);
    let t = topo.truth();
    // Passed after fork between unrelated processes: the same description.
    assert!(same(t, "scm_sent_file", "scm_recv_file"));
    assert!(same(t, "scm_sent_pipe_r", "scm_recv_pipe_r"));
    assert!(!same(t, "scm_sent_file", "root_data_a"));
    assert!(!same(t, "scm_sent_pipe_r", "scm_sender_pipe_w"));
    assert!(!same(t, "root_data_a", "root_data_b"));
    assert!(same(t, "root_data_a", "root_data_a_dup"));
    assert!(same(t, "root_pipe_w_dup2", "pool_pipe_w"));
    assert!(!same(t, "root_eventfd", "root_epoll"));
    assert!(!same(t, "root_opath", "root_data_a"));
    // Every pair of (pid, fd) of the whole topology: equal exactly when the
    // fixture built them as one description.
    let all = t.all_fds();
    assert!(all.len() > 100, "general has {} fds", all.len());
    let groups: Vec<usize> = all
        .iter()
        .map(|r| t.file_index(*r).expect("listed"))
        .collect();
    let mut equal_pairs = 0;
    for i in 0..all.len() {
        for j in 0..all.len() {
            let eq = cmp(all[i], all[j]).is_equal();
            assert_eq!(
                eq,
                groups[i] == groups[j],
                "{:?} vs {:?} ({} / {})",
                all[i],
                all[j],
                t.files[groups[i]].label,
                t.files[groups[j]].label
            );
            equal_pairs += (eq && i != j) as usize;
        }
    }
    assert!(equal_pairs > 50, "some sharing across processes");
}

#[test]
fn threads_are_addressed_by_tid() {
    let topo = Topology::spawn("clone", &[]);
    let t = topo.truth();
    let leader = t.pid("threaded");
    let tid = t.pid("threaded_thread_1");
    assert_ne!(leader, tid);
    // Threads share the fd table: fd 2 seen through a tid is the leader's fd 2.
    let r = compare_files(pid(tid), fdn(2), pid(leader), fdn(2)).expect("kcmp by tid");
    assert!(r.is_equal());
    // And so is the stderr every topology process inherited from the root.
    let root = compare_files(pid(tid), fdn(2), pid(t.root), fdn(2)).expect("kcmp");
    assert!(root.is_equal());
    // A CLONE_FILES twin shares the table; fd 2 is one description anyway.
    let (fp, fc) = (t.pid("files_parent"), t.pid("files_child"));
    assert!(compare_files(pid(fp), fdn(2), pid(fc), fdn(2))
        .unwrap()
        .is_equal());
}

#[test]
fn own_fds_without_pids() {
    let f = std::fs::File::open("/proc/self/status").unwrap();
    let g = f.try_clone().unwrap(); // dup
    let h = std::fs::File::open("/proc/self/status").unwrap(); // a second open()
    assert!(same_open_file(&f, &g).unwrap());
    assert!(!same_open_file(&f, &h).unwrap());
    assert!(compare_own_fds(&f, &f).unwrap().is_equal());
    let fh = compare_own_fds(&f, &h).unwrap();
    let hf = compare_own_fds(&h, &f).unwrap();
    assert_eq!(
        fh.to_ordering().map(|o| o.reverse()),
        hf.to_ordering(),
        "antisymmetric"
    );
    let (r, w) = rustix::pipe::pipe().unwrap();
    assert!(!same_open_file(&r, &w).unwrap());
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    assert!(!same_open_file(&a, &b).unwrap());
    assert!(same_open_file(&a, a.try_clone().unwrap()).unwrap());
}
