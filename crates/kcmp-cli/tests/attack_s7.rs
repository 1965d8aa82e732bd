//! Attacks on tree and pid selection: processes are known by their parent
//! through their pidfd first (`PIDFD_GET_INFO`), and the trees' stats are
//! read after the walk.

use kcmp_testkit::cli::{kcmp_under_test, testkit_bin_next_to};
use kcmp_testkit::process::JsonFixture;
use serde_json::Value;
use std::collections::HashSet;
use std::process::{Command, Stdio};

const KCMP: &str = env!("CARGO_BIN_EXE_kcmp");

/// Pids of the processes a scan reports: holders of its descriptions
/// (`--include-unshared`: every fd), and skipped ones.
fn reported(scan: &Value) -> (HashSet<i64>, HashSet<i64>) {
    let mut pids = HashSet::new();
    for f in scan["open_files"].as_array().unwrap() {
        for m in f["members"].as_array().unwrap() {
            pids.insert(m["pid"].as_i64().unwrap());
        }
    }
    let skipped = scan["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["pid"].as_i64().unwrap())
        .collect();
    (pids, skipped)
}

fn pids_of(v: &Value, key: &str) -> Vec<i64> {
    v[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_i64().unwrap())
        .collect()
}

/// A tree whose root is a child subreaper (`kcmp-orphans`): while it is
/// scanned, its children exit one after the other, and their children,
/// alive all along, are reparented to the root: inside the tree the whole
/// time. Each must be reported (or skipped with a reason), and nothing
/// outside the tree may be. A process known by its parent through its
/// pidfd and found with another parent when its stat is read after the
/// walk, still alive (the same process: its pid cannot have been reused),
/// was reparented, not replaced.
#[test]
fn grandchildren_reparented_to_a_subreaper_root_during_the_scan_are_reported() {
    let orphans = testkit_bin_next_to(KCMP, "kcmp-orphans");
    let mut missing = Vec::new();
    for run in 0..6 {
        let mut fixture = JsonFixture::spawn(&orphans, &["150", "40"]);
        let truth = fixture.json.clone();
        let root = truth["root"].as_i64().unwrap();
        let grandchildren = pids_of(&truth, "grandchildren");
        let mut tree: HashSet<i64> = grandchildren.iter().copied().collect();
        tree.extend(pids_of(&truth, "middles"));
        tree.insert(root);
        let scan = Command::new(kcmp_under_test(KCMP))
            .args(["scan", "--json", "--include-unshared", "--tree"])
            .arg(root.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kcmp");
        fixture.send_line("go").unwrap();
        let out = scan.wait_with_output().unwrap();
        fixture.end();
        assert!(out.status.success(), "scan failed: {out:?}");
        let v: Value = serde_json::from_slice(&out.stdout).expect("scan JSON");
        let (pids, skipped) = reported(&v);
        let outside: Vec<_> = pids.iter().filter(|p| !tree.contains(p)).collect();
        assert!(
            outside.is_empty(),
            "run {run}: outside the tree: {outside:?}"
        );
        missing.extend(
            grandchildren
                .iter()
                .filter(|g| !pids.contains(g) && !skipped.contains(g))
                .map(|g| (run, *g)),
        );
    }
    assert!(
        missing.is_empty(),
        "(run, live grandchild neither reported nor skipped): {} of them: {missing:?}",
        missing.len()
    );
}

/// The (pid, fd) pairs a scan lists twice, and its process-level groups
/// that hold a task twice.
fn listed_twice(scan: &Value) -> (Vec<(i64, i64)>, Vec<Value>) {
    let mut seen = HashSet::new();
    let mut pairs = Vec::new();
    for f in scan["open_files"].as_array().unwrap() {
        for m in f["members"].as_array().unwrap() {
            let pair = (m["pid"].as_i64().unwrap(), m["fd"].as_i64().unwrap());
            if !seen.insert(pair) {
                pairs.push(pair);
            }
        }
    }
    let mut groups = Vec::new();
    for (_, gs) in scan["shared"].as_object().unwrap() {
        for g in gs.as_array().unwrap() {
            let tasks: HashSet<i64> = g
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_i64)
                .collect();
            if tasks.len() != g.as_array().unwrap().len() {
                groups.push(g.clone());
            }
        }
    }
    (pairs, groups)
}

/// A thread named next to its process, or named twice, is one task: a
/// thread sharing its process's fd table is inspected as its process, and
/// one with a table of its own (`kcmp-oddities own-table`) is found when
/// its process is expanded. Listing one twice makes every fd it holds a
/// description "shared" by two holders, and its process share its fd
/// table, address space, … with itself.
#[test]
fn a_thread_named_with_its_process_or_twice_is_inspected_once() {
    let me = std::process::id() as i64;
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        tx.send(i64::from(rustix::thread::gettid().as_raw_nonzero().get()))
            .unwrap();
        let _ = stop_rx.recv();
    });
    let tid = rx.recv().unwrap();
    let mut odd = JsonFixture::spawn(testkit_bin_next_to(KCMP, "kcmp-oddities"), &["own-table"]);
    let truth = odd.json.clone();
    let (p, t) = (
        truth["pid"].as_i64().unwrap(),
        truth["tid"].as_i64().unwrap(),
    );
    let cases: [&[(&str, i64)]; 6] = [
        &[("--pid", me), ("--pid", tid)],
        &[("--pid", tid), ("--pid", tid)],
        &[("--tree", me), ("--pid", tid)],
        &[("--pid", p), ("--pid", t)],
        &[("--pid", t), ("--pid", t)],
        &[("--tree", p), ("--pid", t)],
    ];
    let mut twice = Vec::new();
    for case in cases {
        let mut cmd = Command::new(kcmp_under_test(KCMP));
        cmd.args(["scan", "--json", "--include-unshared"]);
        for (flag, pid) in case {
            cmd.arg(flag).arg(pid.to_string());
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{case:?}: {out:?}");
        let v: Value = serde_json::from_slice(&out.stdout).expect("scan JSON");
        let (pairs, groups) = listed_twice(&v);
        if !pairs.is_empty() || !groups.is_empty() {
            twice.push(format!("{case:?}: pairs {pairs:?}, groups {groups:?}"));
        }
    }
    odd.end();
    drop(stop_tx);
    thread.join().unwrap();
    assert!(twice.is_empty(), "listed twice:\n{}", twice.join("\n"));
}

/// The fd numbers a scan lists, by holder pid.
fn fds_listed(scan: &Value) -> Vec<(i64, i64)> {
    let mut fds: Vec<(i64, i64)> = scan["open_files"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["members"].as_array().unwrap().iter())
        .map(|m| (m["pid"].as_i64().unwrap(), m["fd"].as_i64().unwrap()))
        .collect();
    fds.sort_unstable();
    fds
}

/// A process whose main thread exited (`kcmp-leader-exit`) holds its fds
/// through its live thread: naming that thread (`--pid TID`, a thread
/// sharing its process's fd table, inspected as its process) must find
/// them as naming the process does, not read the exited main thread's
/// empty fd directory and report nothing.
#[test]
fn the_live_thread_of_an_exited_leader_named_by_tid_shows_its_fds() {
    let mut fixture = JsonFixture::spawn(testkit_bin_next_to(KCMP, "kcmp-leader-exit"), &[]);
    let truth = fixture.json.clone();
    let (pid, tid) = (
        truth["pid"].as_i64().unwrap(),
        truth["thread"].as_i64().unwrap(),
    );
    // The main thread is about to exit: wait until /proc says Z.
    let zombie = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, f)| f.trim_start().starts_with('Z'))
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !zombie() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(zombie(), "the fixture's main thread did not exit");
    let scan = |named: i64| {
        let out = Command::new(kcmp_under_test(KCMP))
            .args(["scan", "--json", "--include-unshared", "--pid"])
            .arg(named.to_string())
            .output()
            .unwrap();
        assert!(out.status.success(), "--pid {named}: {out:?}");
        let v: Value = serde_json::from_slice(&out.stdout).expect("scan JSON");
        fds_listed(&v)
    };
    let (by_pid, by_tid) = (scan(pid), scan(tid));
    fixture.end();
    assert!(!by_pid.is_empty(), "--pid {pid} found no fd");
    assert_eq!(
        by_tid, by_pid,
        "--pid {tid} (its live thread) versus --pid {pid}"
    );
}
