//! Absent is never same (issue 9): compare commands on real zombies, kernel
//! threads (pid 2 and kthreadd's children), tasks without an I/O context or
//! undo list, and a process whose main thread exited. When neither task has
//! the object: `different`, exit 1, one stderr line naming both, and JSON
//! `"result": "absent"`, `"absent": [pids]`.

use kcmp_testkit::{cli::testkit_bin_next_to, Topology};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const KCMP: &str = env!("CARGO_BIN_EXE_kcmp");

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn kcmp(args: &[String]) -> Run {
    let out = Command::new(KCMP)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run kcmp");
    Run {
        code: out.status.code().expect("exited"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn args(cmd: &str, a: i32, b: i32, json: bool) -> Vec<String> {
    let mut v = vec![cmd.to_string(), a.to_string(), b.to_string()];
    if json {
        v.push("--json".into());
    }
    v
}

/// Neither has the object: `different`, exit 1, one stderr line naming
/// both pids; with `--json`, result "absent" and both pids under "absent".
fn assert_absent(cmd: &str, a: i32, b: i32) {
    let r = kcmp(&args(cmd, a, b, false));
    assert_eq!(
        (r.stdout.as_str(), r.code),
        ("different\n", 1),
        "{cmd} {a} {b}: {}",
        r.stderr
    );
    assert_eq!(r.stderr.lines().count(), 1, "{cmd} {a} {b}: {:?}", r.stderr);
    assert!(
        r.stderr.contains(&a.to_string()) && r.stderr.contains(&b.to_string()),
        "{cmd}: {:?}",
        r.stderr
    );
    assert!(r.stderr.contains("neither task"), "{cmd}: {:?}", r.stderr);
    let r = kcmp(&args(cmd, a, b, true));
    assert_eq!(r.code, 1, "{cmd} --json");
    let v: Value = serde_json::from_str(r.stdout.trim()).expect("one JSON line");
    assert_eq!(v["result"], "absent", "{cmd}: {v}");
    assert_eq!(v["same"], false, "{cmd}: {v}");
    assert_eq!(v["absent"], serde_json::json!([a, b]), "{cmd}: {v}");
}

/// A plain answer with no absence: `same` or `different`, no stderr.
fn assert_plain(cmd: &str, a: i32, b: i32, same: bool) {
    let r = kcmp(&args(cmd, a, b, false));
    let want = if same {
        ("same\n", 0)
    } else {
        ("different\n", 1)
    };
    assert_eq!(
        (r.stdout.as_str(), r.code),
        want,
        "{cmd} {a} {b}: {}",
        r.stderr
    );
    assert_eq!(r.stderr, "", "{cmd} {a} {b}");
}

#[test]
fn two_zombies_share_nothing_on_every_compare_command() {
    let topo = Topology::spawn("clone", &[]);
    let t = topo.truth();
    let (z1, z2) = (t.pid("zombie_1"), t.pid("zombie_2"));
    for cmd in ["vm", "files", "fs", "io", "sysvsem"] {
        assert_absent(cmd, z1, z2);
        // The same task given twice is the same task.
        assert_plain(cmd, z1, z1, true);
    }
    // A zombie keeps its own signal handlers until it is reaped.
    assert_plain("sighand", z1, z2, false);
    // No fds at all: EBADF, never `same`.
    let r = kcmp(&[
        "file".into(),
        z1.to_string(),
        "0".into(),
        z2.to_string(),
        "0".into(),
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("EBADF"), "{}", r.stderr);
    // A zombie against a live task: a plain `different`, the zombie listed.
    let live = t.pid("fork_parent");
    for cmd in ["vm", "files", "fs"] {
        assert_plain(cmd, z1, live, false);
        let r = kcmp(&args(cmd, z1, live, true));
        let v: Value = serde_json::from_str(r.stdout.trim()).unwrap();
        assert_eq!(v["absent"], serde_json::json!([z1]), "{cmd}: {v}");
        assert_ne!(v["result"], "absent", "{cmd}: {v}");
    }
}

#[test]
fn io_and_sysvsem_absent_versus_shared() {
    let topo = Topology::spawn("clone", &[]);
    let t = topo.truth();
    // Plain forks own no I/O context and no undo list.
    let (a, b) = (t.pid("fork_parent"), t.pid("fork_child"));
    assert_absent("io", a, b);
    assert_absent("sysvsem", a, b);
    // Shared ones (CLONE_IO, CLONE_SYSVSEM twins) are `same`, with no note.
    assert_plain("io", t.pid("io_parent"), t.pid("io_child"), true);
    assert_plain(
        "sysvsem",
        t.pid("sysvsem_parent"),
        t.pid("sysvsem_child"),
        true,
    );
    // Its own undo list against none: different, no note.
    assert_plain("sysvsem", t.pid("undo_alone"), a, false);
}

/// Kernel threads: pid 2 (kthreadd) and one of its children.
fn kernel_threads() -> (i32, i32) {
    let child = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .find(|&p| {
            std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|s| {
                let after = &s[s.rfind(')').unwrap() + 2..];
                after.split(' ').nth(1) == Some("2")
            })
        })
        .expect("a child of kthreadd");
    (2, child)
}

#[test]
fn kernel_threads_have_no_address_space_or_undo_list() {
    let (k1, k2) = kernel_threads();
    assert_absent("vm", k1, k2);
    assert_absent("sysvsem", k1, k2);
    assert_plain("vm", k1, k1, true);
    // A kernel thread against this process: a plain `different`.
    assert_plain("vm", k1, std::process::id() as i32, false);
}

/// A process whose main thread exited (`Z` in /proc/PID/stat) while a
/// thread lives on, and that thread's tid. Dropping it ends the process.
struct LeaderExited {
    child: std::process::Child,
    pid: i32,
    thread: i32,
}

impl LeaderExited {
    fn spawn() -> LeaderExited {
        let mut child = Command::new(testkit_bin_next_to(KCMP, "kcmp-leader-exit"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn kcmp-leader-exit");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let v: Value = serde_json::from_str(line.trim()).expect("fixture JSON");
        let (pid, thread) = (v["pid"].as_i64().unwrap(), v["thread"].as_i64().unwrap());
        let deadline = Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap()
            .contains(") Z ")
        {
            assert!(Instant::now() < deadline, "the main thread did not exit");
            std::thread::sleep(Duration::from_millis(5));
        }
        LeaderExited {
            child,
            pid: pid as i32,
            thread: thread as i32,
        }
    }
}

impl Drop for LeaderExited {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

#[test]
fn an_exited_leader_still_has_what_its_live_thread_has() {
    let p = LeaderExited::spawn();
    let topo = Topology::spawn("clone", &[]);
    let z = topo.truth().pid("zombie_1");
    // The leader is inspected through its live thread: one process.
    for cmd in ["vm", "files", "fs", "sighand"] {
        assert_plain(cmd, p.pid, p.thread, true);
        assert_plain(cmd, p.thread, p.pid, true);
    }
    // Against a real zombie: the zombie alone has none.
    for cmd in ["vm", "files", "fs"] {
        assert_plain(cmd, p.pid, z, false);
        let r = kcmp(&args(cmd, p.pid, z, true));
        let v: Value = serde_json::from_str(r.stdout.trim()).unwrap();
        assert_eq!(v["absent"], serde_json::json!([z]), "{cmd}: {v}");
    }
}
