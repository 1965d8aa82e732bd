//! Under load: processes fork, exit, start threads and open, dup and close
//! fds continuously (`kcmp-churn`) while `kcmp scan --json` runs again and
//! again, with and without `--freeze`, and is SIGKILLed at random moments
//! while freezing. A stable reference topology running alongside must be
//! reported exactly every time; no panic, no error exit, and no process is
//! left stopped.
//!
//! Short by default (about 8 s, for CI); `KCMP_STRESS_SECS=N` runs longer.
//! Whole-host scans run without `--freeze` (freezing a whole shared machine
//! from a test would be rude); frozen scans cover the churn and the
//! reference trees.

use kcmp_testkit::process::close_and_reap;
use kcmp_testkit::{cli, scan_json, Topology, Truth};
use serde_json::Value;
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// A binary of kcmp-testkit, next to `kcmp`; built on demand when absent.
fn testkit_bin(name: &str) -> PathBuf {
    cli::testkit_bin_next_to(env!("CARGO_BIN_EXE_kcmp"), name)
}

/// The churner; EOF on its stdin (drop) makes it kill and reap its children.
struct Churn {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Churn {
    fn spawn(procs: usize) -> Churn {
        let mut child = Command::new(testkit_bin("kcmp-churn"))
            .args(["--procs", &procs.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn kcmp-churn");
        let stdin = child.stdin.take();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("ready"), "kcmp-churn said {line:?}");
        Churn { child, stdin }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for Churn {
    fn drop(&mut self) {
        close_and_reap(&mut self.child, self.stdin.take(), Duration::from_secs(20));
    }
}

fn kcmp(args: &[&str]) -> (i32, String, String) {
    cli::output_of(
        Command::new(env!("CARGO_BIN_EXE_kcmp"))
            .args(args)
            .stdin(Stdio::null()),
    )
}

/// The scan, restricted to the reference topology, equals its truth.
fn assert_reference_exact(scan: &Value, truth: &Truth, what: &str) {
    scan_json::assert_exact(scan, truth, what);
    // Nothing of the reference may be skipped.
    for s in scan["skipped"].as_array().unwrap() {
        let p = s["pid"].as_i64().unwrap() as i32;
        assert!(
            !truth.live_pids().contains(&p),
            "{what}: reference process {p} skipped: {s}"
        );
    }
}

/// Every descendant of this test process (pid, state), from /proc.
fn descendants() -> Vec<(i32, char, String)> {
    let me = std::process::id() as i32;
    let mut info = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let comm = stat[stat.find('(').unwrap() + 1..close].to_string();
        let f: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let state = f[0].chars().next().unwrap();
        let ppid: i32 = f[1].parse().unwrap();
        info.push((pid, ppid, state, comm));
    }
    let mut set: HashSet<i32> = HashSet::from([me]);
    loop {
        let before = set.len();
        for (pid, ppid, _, _) in &info {
            if set.contains(ppid) {
                set.insert(*pid);
            }
        }
        if set.len() == before {
            break;
        }
    }
    info.into_iter()
        .filter(|(pid, _, _, _)| *pid != me && set.contains(pid))
        .map(|(pid, _, state, comm)| (pid, state, comm))
        .collect()
}

/// No process of this test is stopped (t or T). Retries briefly: the kernel
/// releases a dead tracer's tracees as the tracer exits.
fn assert_nothing_stopped(what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stopped: Vec<_> = descendants()
            .into_iter()
            .filter(|(_, s, _)| matches!(s, 't' | 'T'))
            .collect();
        if stopped.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            panic!("{what}: processes left stopped: {stopped:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stress_secs() -> u64 {
    std::env::var("KCMP_STRESS_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8)
}

fn scan_ok(args: &[&str], what: &str) -> Value {
    cli::success_json(&format!("{what}: kcmp {args:?}"), kcmp(args))
}

#[test]
fn scans_under_churn_stay_exact_and_leave_nothing_stopped() {
    let reference = Topology::spawn("general", &["--seed", "11"]);
    let churn = Churn::spawn(6);
    let (r, c) = (reference.root().to_string(), churn.pid().to_string());
    let deadline = Instant::now() + Duration::from_secs(stress_secs());
    let mut rounds = 0u32;
    let mut kills = 0u32;
    while Instant::now() < deadline || rounds < 4 {
        let what = format!("round {rounds}");
        match rounds % 4 {
            // The whole host, unfrozen.
            0 => {
                let scan = scan_ok(&["scan", "--json", "--include-unshared"], &what);
                assert_reference_exact(&scan, reference.truth(), &what);
            }
            // Both trees, frozen.
            1 => {
                let scan = scan_ok(
                    &[
                        "scan",
                        "--tree",
                        &r,
                        "--tree",
                        &c,
                        "--freeze",
                        "--json",
                        "--include-unshared",
                    ],
                    &what,
                );
                assert_eq!(scan["frozen"], true, "{what}: no \"frozen\": true");
                assert_reference_exact(&scan, reference.truth(), &what);
            }
            // Both trees, unfrozen, with threads as tasks.
            2 => {
                scan_ok(
                    &["scan", "--tree", &r, "--tree", &c, "--threads", "--json"],
                    &what,
                );
            }
            // A frozen scan SIGKILLed at a random moment: the kernel must
            // release everything it stopped.
            _ => {
                let mut child = Command::new(env!("CARGO_BIN_EXE_kcmp"))
                    .args(["scan", "--tree", &r, "--tree", &c, "--freeze", "--json"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap();
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .subsec_nanos() as u64;
                std::thread::sleep(Duration::from_micros(nanos % 30_000));
                let _ = child.kill();
                let _ = child.wait();
                kills += 1;
                assert_nothing_stopped(&what);
            }
        }
        rounds += 1;
    }
    assert_nothing_stopped("after the churn");
    drop(churn);
    // The reference is still intact after all of it.
    let scan = scan_ok(
        &["scan", "--tree", &r, "--json", "--include-unshared"],
        "final",
    );
    assert_reference_exact(&scan, reference.truth(), "final");
    eprintln!("stress: {rounds} scans ({kills} killed mid-freeze)");
    assert!(
        reference.finish() == Some(0),
        "the reference fixture did not exit cleanly"
    );
    assert_nothing_stopped("at the end");
}
