//! Concurrent `--freeze` runs never deadlock (issue 10): rounds of two or
//! three (and last, three rounds of ten) `kcmp scan --freeze --tree
//! THIS_TEST` started together, each seeing
//! the others (and their freezers and sentinels) as processes to freeze.
//! Every run must finish within its time limit, and nothing may be left
//! stopped. A test binary of its own: the tree is this process's children.
//!
//! `KCMP_MUTUAL_ROUNDS` sets the number of rounds (default 60; the issue's
//! 300 were run once for the record); `KCMP_TEST_BIN` runs another kcmp.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn kcmp() -> PathBuf {
    kcmp_testkit::cli::kcmp_under_test(env!("CARGO_BIN_EXE_kcmp"))
}

fn state(pid: i32) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s[s.rfind(')')? + 2..].chars().next()
}

/// Every descendant of `pid` (from /proc/PID/task/*/children).
fn descendants(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let path = t.path().join("children");
            let kids = std::fs::read_to_string(path).unwrap_or_default();
            for k in kids.split_whitespace().filter_map(|k| k.parse().ok()) {
                out.push(k);
                todo.push(k);
            }
        }
    }
    out
}

/// Waits for every run; kills the ones still running at the deadline.
fn finish_all(runs: &mut [Child], limit: Duration) -> Vec<Option<i32>> {
    let deadline = Instant::now() + limit;
    let mut codes = vec![None; runs.len()];
    let mut done = vec![false; runs.len()];
    while done.iter().any(|d| !d) && Instant::now() < deadline {
        for (i, r) in runs.iter_mut().enumerate() {
            if !done[i] {
                if let Ok(Some(st)) = r.try_wait() {
                    codes[i] = st.code();
                    done[i] = true;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    for (i, r) in runs.iter_mut().enumerate() {
        if !done[i] {
            let _ = r.kill();
            let _ = r.wait();
        }
    }
    codes
}

#[test]
fn concurrent_freezes_of_each_other_never_deadlock() {
    let rounds: usize = std::env::var("KCMP_MUTUAL_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(60);
    let me = std::process::id().to_string();
    // Ordinary processes in the tree too.
    let mut sleepers: Vec<Child> = (0..2)
        .map(|_| {
            Command::new("sleep")
                .arg("600")
                .stdin(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut hangs = 0;
    let mut left_stopped = Vec::new();
    // Two or three runs a round, then three rounds of ten.
    for round in 0..rounds + 3 {
        let n = if round < rounds { 2 + round % 2 } else { 10 };
        let mut runs: Vec<Child> = (0..n)
            .map(|_| {
                Command::new(kcmp())
                    .args(["scan", "--freeze", "--json", "--tree", &me])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let codes = finish_all(&mut runs, Duration::from_secs(30));
        hangs += codes.iter().filter(|c| c.is_none()).count();
        for c in codes.iter().flatten() {
            assert_eq!(*c, 0, "round {round}: a run failed");
        }
        for p in descendants(std::process::id() as i32) {
            if matches!(state(p), Some('t' | 'T')) {
                left_stopped.push((round, p));
            }
        }
        if hangs > 0 || !left_stopped.is_empty() {
            break;
        }
    }
    for s in &mut sleepers {
        let _ = s.kill();
        let _ = s.wait();
    }
    assert_eq!(hangs, 0, "runs hung (killed after 30 s)");
    assert!(left_stopped.is_empty(), "left stopped: {left_stopped:?}");
}
