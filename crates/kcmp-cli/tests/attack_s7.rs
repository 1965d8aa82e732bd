//! Attacks on tree and pid selection: processes are known by their parent
//! through their pidfd first (`PIDFD_GET_INFO`), and the trees' stats are
//! read after the walk.

use kcmp_testkit::cli::{kcmp_under_test, testkit_bin_next_to};
use serde_json::Value;
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
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
        let mut fixture = Command::new(&orphans)
            .args(["150", "40"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn kcmp-orphans");
        let mut line = String::new();
        BufReader::new(fixture.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let truth: Value = serde_json::from_str(&line).expect("the fixture's JSON");
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
        let mut to_fixture = fixture.stdin.take().unwrap();
        writeln!(to_fixture, "go").unwrap();
        let out = scan.wait_with_output().unwrap();
        drop(to_fixture);
        fixture.wait().unwrap();
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
