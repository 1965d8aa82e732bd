//! `kcmp_map::absent::compare_present` against real processes of the
//! `kcmp-topology` fixture, whose truth is known by construction: zombies
//! have none of the five absent-able objects, plain forks no I/O context or
//! undo list, CLONE_IO/CLONE_SYSVSEM twins share theirs.

use kcmp::{Pid, ProcessResource};
use kcmp_map::absent::compare_present;
use kcmp_map::sentinel::Sentinels;
use kcmp_testkit::Topology;

fn pid(p: i32) -> Pid {
    Pid::new(p).unwrap()
}

#[test]
fn zombies_lack_everything_but_signal_handlers() {
    let topo = Topology::spawn("clone", &[]);
    let t = topo.truth();
    let (z1, z2) = (pid(t.pid("zombie_1")), pid(t.pid("zombie_2")));
    let live = pid(t.pid("fork_parent"));
    let s = Sentinels::start().unwrap();
    use ProcessResource::*;
    for r in [Vm, Files, Fs, Io, Sysvsem] {
        // The kernel alone says "equal" for two zombies (both NULL) …
        assert!(kcmp::compare_process(r, z1, z2).unwrap().is_equal(), "{r}");
        // … the exact answer is "neither has one".
        let a = compare_present(r, z1, z2, Some(&s)).unwrap();
        assert_eq!(a.absent, vec![z1, z2], "{r}");
        assert!(!a.is_same(), "{r}");
        // The same task twice is the same task.
        assert!(
            compare_present(r, z1, z1, Some(&s)).unwrap().is_same(),
            "{r}"
        );
    }
    for r in [Vm, Files, Fs] {
        let a = compare_present(r, z1, live, Some(&s)).unwrap();
        assert_eq!(a.absent, vec![z1], "{r}");
    }
    let a = compare_present(Sighand, z1, z2, Some(&s)).unwrap();
    assert!(a.absent.is_empty() && !a.is_same());
}

#[test]
fn lazily_allocated_objects() {
    let topo = Topology::spawn("clone", &[]);
    let t = topo.truth();
    let p = |l: &str| pid(t.pid(l));
    // Started on demand (no sentinels given).
    let a = compare_present(ProcessResource::Io, p("fork_parent"), p("fork_child"), None).unwrap();
    assert_eq!(a.absent, vec![p("fork_parent"), p("fork_child")]);
    let a = compare_present(ProcessResource::Io, p("io_parent"), p("io_child"), None).unwrap();
    assert!(a.is_same() && a.absent.is_empty());
    let a = compare_present(ProcessResource::Io, p("io_parent"), p("fork_child"), None).unwrap();
    assert_eq!(a.absent, vec![p("fork_child")]);
    let a = compare_present(
        ProcessResource::Sysvsem,
        p("sysvsem_parent"),
        p("sysvsem_child"),
        None,
    )
    .unwrap();
    assert!(a.is_same());
    let a = compare_present(
        ProcessResource::Sysvsem,
        p("undo_alone"),
        p("fork_child"),
        None,
    )
    .unwrap();
    assert_eq!(a.absent, vec![p("fork_child")]);
    assert!(!a.is_same());
}
