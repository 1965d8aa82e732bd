//! KCMP_VM, FILES, FS, SIGHAND, IO, SYSVSEM against processes built with
//! fork, threads and clone() flags by the `kcmp-topology` fixture.

use kcmp::{compare, compare_process, KcmpType, Pid, ProcessResource};
use kcmp_testkit::{Topology, Truth, RESOURCES};
use ProcessResource::*;

fn pid(p: i32) -> Pid {
    Pid::new(p).expect("valid pid")
}

fn eq(res: ProcessResource, a: i32, b: i32) -> bool {
    compare_process(res, pid(a), pid(b))
        .unwrap_or_else(|e| panic!("compare_process {res} {a} {b}: {e}"))
        .is_equal()
}

fn eqn(t: &Truth, res: ProcessResource, a: &str, b: &str) -> bool {
    eq(res, t.pid(a), t.pid(b))
}

/// Asserts which resources a pair shares (equal) and which it does not.
fn expect_pair(t: &Truth, a: &str, b: &str, shared: &[ProcessResource], not: &[ProcessResource]) {
    for &r in shared {
        assert!(eqn(t, r, a, b), "{a} and {b} should share {r}");
        assert!(eqn(t, r, b, a), "{b} and {a} should share {r}");
    }
    for &r in not {
        assert!(!eqn(t, r, a, b), "{a} and {b} should not share {r}");
        assert!(!eqn(t, r, b, a), "{b} and {a} should not share {r}");
    }
}

#[test]
fn clone_flag_twins_share_exactly_what_they_were_cloned_with() {
    let topo = Topology::spawn("clone", &[]);
    let t = topo.truth();
    expect_pair(t, "vm_parent", "vm_child", &[Vm, Sighand], &[Files, Fs]);
    expect_pair(
        t,
        "files_parent",
        "files_child",
        &[Files],
        &[Vm, Fs, Sighand],
    );
    expect_pair(t, "fs_parent", "fs_child", &[Fs], &[Vm, Files, Sighand]);
    expect_pair(t, "io_parent", "io_child", &[Io], &[Vm, Files, Fs, Sighand]);
    expect_pair(
        t,
        "sysvsem_parent",
        "sysvsem_child",
        &[Sysvsem],
        &[Vm, Files, Fs, Sighand],
    );
    // A plain fork shares none of the four always-present objects.
    expect_pair(
        t,
        "fork_parent",
        "fork_child",
        &[],
        &[Vm, Files, Fs, Sighand],
    );
    // The twins really are separate processes of their own.
    assert!(t.task_by_label("vm_child").unwrap().tids.len() == 1);
}

#[test]
fn io_contexts_shared_own_and_absent() {
    let topo = Topology::spawn("clone", &[]);
    let t = topo.truth();
    // io_other is a plain fork of a process with a valid I/O priority: it got
    // a context of its own.
    assert!(!eqn(t, Io, "io_parent", "io_other"));
    assert!(!eqn(t, Io, "io_child", "io_other"));
    // A process with a context against one without: different.
    assert!(!eqn(t, Io, "io_parent", "fork_parent"));
    assert!(!eqn(t, Io, "io_other", "undo_alone"));
    // Zombies have no I/O context (exit_io_context): a sentinel for "none".
    let fork_has_none = eqn(t, Io, "fork_parent", "zombie_1");
    if fork_has_none {
        // Two processes without a context compare EQUAL although they share
        // nothing: the documented caveat.
        assert!(eqn(t, Io, "fork_parent", "fork_child"));
        assert!(eqn(t, Io, "fork_parent", "undo_alone"));
        assert!(!t
            .shared
            .shares("io", t.pid("fork_parent"), t.pid("fork_child")));
    } else {
        // The test runs under a valid I/O priority (ionice): every fork got
        // its own context.
        assert!(!eqn(t, Io, "fork_parent", "fork_child"));
    }
}

#[test]
fn sysvsem_undo_lists_shared_alone_and_absent() {
    let topo = Topology::spawn("clone", &[]);
    let t = topo.truth();
    // SEM_UNDO alone: an undo list shared with nobody.
    for other in [
        "sysvsem_parent",
        "sysvsem_child",
        "fork_parent",
        "vm_parent",
        "threaded",
    ] {
        assert!(
            !eqn(t, Sysvsem, "undo_alone", other),
            "undo_alone vs {other}"
        );
    }
    // Neither has an undo list: the kernel says "equal" (NULL == NULL).
    assert!(eqn(t, Sysvsem, "fork_parent", "fork_child"));
    assert!(eqn(t, Sysvsem, "fork_parent", "vm_parent"));
    assert!(eqn(t, Sysvsem, "fork_parent", "zombie_1"));
    assert!(t
        .shared
        .sysvsem
        .iter()
        .all(|g| !g.contains(&t.pid("fork_parent"))));
}

#[test]
fn threads_share_with_their_process_by_tid() {
    let topo = Topology::spawn("clone", &[]);
    let t = topo.truth();
    let task = t.task_by_label("threaded").expect("threaded");
    assert_eq!(task.tids.len(), 3);
    for &tid in &task.tids[1..] {
        for r in [Vm, Files, Fs, Sighand, Sysvsem] {
            assert!(
                eq(r, tid, task.pid),
                "thread {tid} shares {r} with its process"
            );
            // undo_alone has an undo list of its own, and nothing else in common.
            assert!(
                !eq(r, tid, t.pid("undo_alone")),
                "thread {tid} vs undo_alone: {r}"
            );
        }
        for r in [Vm, Files, Fs, Sighand] {
            assert!(
                !eq(r, tid, t.pid("fork_parent")),
                "thread {tid} vs another process: {r}"
            );
        }
    }
    // pthread_create passed CLONE_SYSVSEM: the threads' undo list exists and
    // is not the NULL of processes without one.
    assert!(!eq(Sysvsem, task.pid, t.pid("fork_parent")));
}

#[test]
fn zombies_no_mm_compares_equal_but_nothing_is_shared() {
    let topo = Topology::spawn("clone", &[]);
    let t = topo.truth();
    let (z1, z2) = (t.pid("zombie_1"), t.pid("zombie_2"));
    assert!(t.task(z1).unwrap().zombie);
    // Zombies have no mm: VM compares equal (caveat), the truth says no sharing.
    assert!(eq(Vm, z1, z2));
    assert!(!t.shared.shares("vm", z1, z2));
    // Against a live process: different.
    assert!(!eq(Vm, z1, t.pid("fork_parent")));
    // Signal handlers live until the zombie is reaped: each its own.
    assert!(!eq(Sighand, z1, z2));
    assert!(eq(Sighand, z1, z1));
}

#[test]
fn every_live_pair_of_the_general_topology_matches_the_truth() {
    let topo = Topology::spawn("general", &["--procs", "6"]);
    let t = topo.truth();
    let pids = t.live_pids();
    for res in [Vm, Files, Fs, Sighand] {
        for &a in &pids {
            for &b in &pids {
                let expected = a == b || t.shared.shares(res.name(), a, b);
                assert_eq!(eq(res, a, b), expected, "{res} {a} vs {b}");
            }
        }
    }
    // io and sysvsem: wherever at least one task owns the object, equal means shared.
    for (res, present) in [(Io, &t.present.io), (Sysvsem, &t.present.sysvsem)] {
        assert!(!present.is_empty());
        for &a in present {
            for &b in &pids {
                let expected = a == b || t.shared.shares(res.name(), a, b);
                assert_eq!(eq(res, a, b), expected, "{res} {a} vs {b}");
            }
        }
    }
    // The generic entry point agrees with the typed one.
    for name in RESOURCES {
        let ty: KcmpType = name.parse().unwrap();
        let r: ProcessResource = name.parse().unwrap();
        let (a, b) = (t.pid("vm_parent"), t.pid("vm_child"));
        assert_eq!(
            compare(ty, pid(a), pid(b), 0, 0).unwrap(),
            compare_process(r, pid(a), pid(b)).unwrap()
        );
    }
}
