//! Attacks on the early pins of a whole-host selection: a pid listed in
//! /proc as a process may be reused before its stat is read, and by a
//! thread of another process (/proc/TID/stat reads as well as a process's).

use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

/// Makes `p` the next pid given out (root; `ns_last_pid`).
fn next_pid_is(p: u32) -> bool {
    std::fs::write("/proc/sys/kernel/ns_last_pid", (p - 1).to_string()).is_ok()
}

/// The fds each holder pid holds, in a scan's `open_files`.
fn holdings(scan: &Value) -> HashMap<i32, HashSet<i64>> {
    let mut held: HashMap<i32, HashSet<i64>> = HashMap::new();
    for f in scan["open_files"].as_array().unwrap() {
        for m in f["members"].as_array().unwrap() {
            let pid = m["pid"].as_i64().unwrap() as i32;
            held.entry(pid)
                .or_default()
                .insert(m["fd"].as_i64().unwrap());
        }
    }
    held
}

/// The fd numbers `pid` holds now.
fn fds_of(pid: u32) -> HashSet<i64> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// While whole-host scans run, pids are turned from processes into threads
/// of this test process: a child is started and reaped, then a thread is
/// made with its pid (`ns_last_pid`) and kept alive to the end. A scan that
/// listed the child in /proc and read the stat of the thread must not
/// select the thread as a process: its fds (this process's table) would be
/// reported twice, held by a process that does not exist. A child that a
/// fast scan saw alive from start to end (SIGKILL takes effect when it
/// next runs) is reported with its own fds, which are a few of this
/// process's (inherited): only fds beyond those it held are a phantom's.
#[test]
fn a_listed_pid_reused_by_a_thread_is_not_scanned_as_a_process() {
    threads_made_of_listed_pids_during_scans(&[], &[]);
}

/// The same in a scan of the tree of pid 1: processes are known by their
/// parent first (`PIDFD_GET_INFO`), and a thread's parent is its process's
/// parent, inside the tree: a pidfd of the thread must not pass for the
/// process listed.
#[test]
fn in_a_tree_scan_a_listed_pid_reused_by_a_thread_is_not_scanned_as_a_process() {
    threads_made_of_listed_pids_during_scans(&[], &["--tree", "1"]);
}

/// The same with no pidfd to spare (`ulimit -n 64`: every task is pinned
/// by its start time): no pidfd tells the thread from a process there, the
/// stat read does (`exit_signal`), at selection and again when a process
/// is pinned and verified by its start time (a pid reused by a thread
/// within the same clock tick has the same start time).
#[test]
fn without_pidfds_a_listed_pid_reused_by_a_thread_is_not_scanned_as_a_process() {
    threads_made_of_listed_pids_during_scans(&["ulimit -n 64"], &[]);
}

fn threads_made_of_listed_pids_during_scans(setup: &[&str], selection: &[&str]) {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: not root (ns_last_pid)");
        return;
    }
    let me = std::process::id() as i32;
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let stop_rx = Arc::new(Mutex::new(stop_rx));
    let (mut threads, mut tids, mut phantoms) = (Vec::new(), HashSet::new(), Vec::new());
    let mut children: HashMap<i32, HashSet<i64>> = HashMap::new();
    for run in 0..10 {
        let script = setup.iter().map(|s| format!("{s} && ")).collect::<String>();
        let mut scan = Command::new("/bin/sh")
            .args(["-c", &format!("{script}exec \"$0\" \"$@\"")])
            .arg(env!("CARGO_BIN_EXE_kcmp"))
            .args(["scan", "--json", "--include-unshared"])
            .args(selection)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = scan.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            stdout.read_to_string(&mut s).unwrap();
            s
        });
        while scan.try_wait().unwrap().is_none() {
            let mut child = Command::new("/bin/sleep").arg("5").spawn().unwrap();
            let p = child.id();
            children.insert(p as i32, fds_of(p));
            child.kill().unwrap();
            child.wait().unwrap();
            next_pid_is(p);
            let (tx, rx) = mpsc::channel();
            let stop = stop_rx.clone();
            threads.push(std::thread::spawn(move || {
                let _ = tx.send(rustix::thread::gettid().as_raw_nonzero().get());
                let _ = stop.lock().unwrap().recv();
            }));
            tids.insert(rx.recv().unwrap());
        }
        let out = reader.join().unwrap();
        let v: Value = serde_json::from_str(&out).expect("scan JSON");
        let mut found: Vec<i32> = holdings(&v)
            .into_iter()
            .filter(|(p, _)| *p != me && tids.contains(p))
            .filter(|(p, fds)| !children.get(p).is_some_and(|own| fds.is_subset(own)))
            .map(|(p, _)| p)
            .collect();
        found.sort_unstable();
        phantoms.extend(found.into_iter().map(|p| (run, p)));
    }
    drop(stop_tx);
    for t in threads {
        t.join().unwrap();
    }
    assert!(
        phantoms.is_empty(),
        "(scan, thread of this process scanned as a process): {phantoms:?}"
    );
}
