//! Checks the fixture itself: the truth lists exactly the fds /proc shows,
//! and a raw kcmp(2) agrees with the truth's groups (decided by construction).

use kcmp_testkit::{proc_fds, FdRef, Topology, Truth, RESOURCES};
use std::collections::BTreeSet;

/// Raw kcmp(2); `Err(errno)` on failure.
fn raw_kcmp(pid1: i32, pid2: i32, ty: i32, idx1: u64, idx2: u64) -> Result<i64, i32> {
    // SAFETY: kcmp with integer arguments (no EPOLL_TFD here) reads no user memory.
    let r = unsafe { libc::syscall(libc::SYS_kcmp, pid1, pid2, ty, idx1, idx2) };
    if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(r as i64)
    }
}

fn kcmp_type(res: &str) -> i32 {
    1 + RESOURCES.iter().position(|r| *r == res).expect("resource") as i32
}

fn proc_tids(pid: i32) -> Vec<i32> {
    let mut v: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("read task dir")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    v.sort_unstable();
    v
}

fn proc_state(pid: i32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    stat[stat.rfind(')').expect(")") + 2..]
        .chars()
        .next()
        .expect("state")
}

fn check_complete(truth: &Truth) {
    let all = truth.all_fds();
    let unique: BTreeSet<FdRef> = all.iter().copied().collect();
    assert_eq!(unique.len(), all.len(), "a (pid, fd) appears twice");
    assert!(truth.files.iter().all(|f| !f.members.is_empty()));
    for task in &truth.tasks {
        if task.zombie {
            assert_eq!(
                proc_state(task.pid),
                'Z',
                "{} should be a zombie",
                task.label
            );
            assert!(truth.fds_of(task.pid).is_empty(), "zombies hold no fds");
            continue;
        }
        let proc = proc_fds(task.pid).expect("read /proc/PID/fd");
        assert_eq!(
            truth.fds_of(task.pid),
            proc,
            "fds of {} ({}) differ from /proc",
            task.label,
            task.pid
        );
        let mut tids = task.tids.clone();
        assert_eq!(tids[0], task.pid, "leader first");
        tids.sort_unstable();
        assert_eq!(tids, proc_tids(task.pid), "tids of {}", task.label);
    }
    let listed: BTreeSet<i32> = truth.pids().into_iter().collect();
    assert_eq!(listed.len(), truth.tasks.len(), "a pid is listed twice");
    assert!(listed.contains(&truth.root));
}

fn check_kcmp_agrees(truth: &Truth) {
    // Files: kcmp equal <=> one group, over every pair.
    let all = truth.all_fds();
    let group: Vec<usize> = all
        .iter()
        .map(|r| truth.file_index(*r).expect("listed"))
        .collect();
    for i in 0..all.len() {
        for j in i..all.len() {
            let (a, b) = (all[i], all[j]);
            let r = raw_kcmp(a.pid, b.pid, 0, a.fd as u64, b.fd as u64)
                .unwrap_or_else(|e| panic!("kcmp FILE {a:?} {b:?}: errno {e}"));
            assert_eq!(
                r == 0,
                group[i] == group[j],
                "kcmp FILE {a:?} vs {b:?} = {r}, truth groups {} / {}",
                truth.files[group[i]].label,
                truth.files[group[j]].label
            );
        }
    }
    // Processes, then every thread as a task.
    for (tasks, shared) in [
        (truth.live_pids(), &truth.shared),
        (truth.live_tids(), &truth.shared_threads),
    ] {
        for res in RESOURCES {
            let present: Option<&Vec<i32>> = match res {
                "io" => Some(&truth.present.io),
                "sysvsem" => Some(&truth.present.sysvsem),
                _ => None,
            };
            let owner = |t: i32| -> i32 {
                truth
                    .tasks
                    .iter()
                    .find(|k| k.tids.contains(&t))
                    .expect("task")
                    .pid
            };
            for &a in &tasks {
                for &b in &tasks {
                    let eq = raw_kcmp(a, b, kcmp_type(res), 0, 0)
                        .unwrap_or_else(|e| panic!("kcmp {res} {a} {b}: errno {e}"))
                        == 0;
                    let expected = a == b || shared.shares(res, a, b);
                    match present {
                        None => assert_eq!(eq, expected, "kcmp {res} {a} vs {b}"),
                        Some(p) => {
                            let (pa, pb) = (p.contains(&owner(a)), p.contains(&owner(b)));
                            if pa || pb {
                                // At least one owns an object (a thread owns its
                                // process's undo list): equal means shared.
                                assert_eq!(eq, expected, "kcmp {res} {a} vs {b}");
                            } else if res == "sysvsem" {
                                // Neither has an undo list: the kernel says "equal"
                                // (NULL == NULL) although nothing is shared.
                                assert!(eq, "kcmp sysvsem {a} vs {b}: both have none");
                                assert!(!shared.shares(res, a, b) || a == b);
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn general_truth_is_complete_and_kcmp_agrees() {
    let topo = Topology::spawn("general", &[]);
    let t = topo.truth();
    check_complete(t);
    check_kcmp_agrees(t);
    // The scenario has what it promises.
    assert!(t.zombies().len() >= 2);
    assert!(t.tasks.iter().any(|k| k.tids.len() == 3));
    for res in RESOURCES {
        assert!(!t.shared.groups(res).is_empty(), "no {res} sharing");
    }
    let kinds: BTreeSet<&str> = t.files.iter().map(|f| f.kind.as_str()).collect();
    for k in [
        "file", "opath", "pipe-r", "pipe-w", "socket", "eventfd", "epoll",
    ] {
        assert!(kinds.contains(k), "no {k} fd");
    }
    assert!(t.same_file(t.fd("scm_sent_file"), t.fd("scm_recv_file")));
    assert!(!t.same_file(t.fd("root_data_a"), t.fd("root_data_b")));
    assert_eq!(topo.finish(), Some(0));
}

#[test]
fn small_scenarios_are_complete() {
    for sc in ["basic", "clone", "epoll"] {
        let topo = Topology::spawn(sc, &[]);
        check_complete(topo.truth());
        check_kcmp_agrees(topo.truth());
        assert_eq!(topo.finish(), Some(0), "{sc} exit status");
    }
}

#[test]
fn bench_scenario_scales_and_is_complete() {
    let topo = Topology::spawn("bench", &["--procs", "40", "--fds", "60", "--seed", "7"]);
    let t = topo.truth();
    check_complete(t);
    let workers = t
        .tasks
        .iter()
        .filter(|k| k.label.starts_with("worker"))
        .count();
    assert_eq!(workers, 40);
    assert!(t.all_fds().len() >= 40 * 60);
}

#[test]
fn everything_is_gone_after_eof() {
    let topo = Topology::spawn("general", &["--procs", "3"]);
    let pids = topo.truth().pids();
    let root = topo.root();
    assert_eq!(topo.finish(), Some(0));
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/status"))
                    .map(|s| !s.contains(&format!("PPid:\t{root}")))
                    .unwrap_or(true),
            "pid {pid} survived the fixture"
        );
    }
    assert!(!std::env::temp_dir()
        .join(format!("kcmp-topology.{root}"))
        .exists());
}

#[test]
fn seed_changes_the_layout_but_not_the_counts() {
    let a = Topology::spawn("general", &["--procs", "4", "--seed", "1"]);
    let b = Topology::spawn("general", &["--procs", "4", "--seed", "2"]);
    assert_eq!(a.truth().tasks.len(), b.truth().tasks.len());
    check_complete(b.truth());
}
