//! Checks the `shape` scenario of the fixture (the benchmark suite's
//! topology generator): its count truth against /proc and a raw kcmp(2),
//! its tree depth, and fd-number reuse by children (on: no inherited number
//! names the parent's description; off: every one does).

use kcmp_testkit::process::JsonFixture;
use kcmp_testkit::{proc_fds, topology_bin};
use std::collections::BTreeMap;
use std::process::{Command, Stdio};

const KCMP_FILE: i32 = 0;

/// A running `kcmp-topology shape …` and its truth.
struct Shape(JsonFixture);

impl Shape {
    fn spawn(args: &[&str]) -> Shape {
        let bin = topology_bin().expect("kcmp-topology");
        Shape(JsonFixture::spawn(bin, &[&["shape"], args].concat()))
    }

    fn pids(&self) -> Vec<i32> {
        self.0.json["pids"]
            .as_array()
            .expect("pids")
            .iter()
            .map(|p| p.as_i64().expect("pid") as i32)
            .collect()
    }

    fn count(&self, key: &str) -> usize {
        self.0.json[key].as_u64().expect(key) as usize
    }
}

impl Drop for Shape {
    fn drop(&mut self) {
        let code = self.0.end();
        if !std::thread::panicking() {
            assert_eq!(code, Some(0), "the fixture exits 0 on EOF");
        }
    }
}

fn kcmp_file(p1: i32, fd1: i32, p2: i32, fd2: i32) -> std::cmp::Ordering {
    // SAFETY: kcmp with integer arguments reads no user memory.
    let r = unsafe { libc::syscall(libc::SYS_kcmp, p1, p2, KCMP_FILE, fd1, fd2) };
    match r {
        0 => std::cmp::Ordering::Equal,
        1 => std::cmp::Ordering::Less,
        2 => std::cmp::Ordering::Greater,
        _ => panic!("kcmp({p1}, {p2}, FILE, {fd1}, {fd2}) = {r}"),
    }
}

fn ppid(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    stat[stat.rfind(')').expect(")") + 2..]
        .split_whitespace()
        .nth(1)
        .expect("ppid")
        .parse()
        .expect("ppid number")
}

#[test]
fn counts_match_proc_and_kcmp() {
    let s = Shape::spawn(&[
        "--procs",
        "12",
        "--fds",
        "24",
        "--inherit",
        "70",
        "--reuse",
        "50",
        "--opens",
        "6",
        "--depth",
        "3",
        "--seed",
        "7",
    ]);
    let pids = s.pids();
    assert_eq!(pids.len(), 13);
    assert_eq!(s.count("tasks"), 13);
    let mut all = Vec::new();
    for &pid in &pids {
        let fds = proc_fds(pid).expect("/proc/PID/fd");
        assert!(
            fds.len() >= 24,
            "pid {pid} holds {} fds, at least 24 asked",
            fds.len()
        );
        all.extend(fds.into_iter().map(|fd| (pid, fd)));
    }
    assert_eq!(all.len(), s.count("fds"), "fds in /proc vs the truth");
    // kcmp's order is total on open file descriptions: sort, count runs.
    all.sort_by(|a, b| kcmp_file(a.0, a.1, b.0, b.1));
    let distinct = 1 + all
        .windows(2)
        .filter(|w| kcmp_file(w[0].0, w[0].1, w[1].0, w[1].1).is_ne())
        .count();
    assert_eq!(
        distinct,
        s.count("descriptions"),
        "descriptions by kcmp vs the truth"
    );
    // Three levels: 4 children of the root, each level forked by the one above.
    let root = pids[0];
    let mut depth: BTreeMap<i32, usize> = BTreeMap::from([(root, 0)]);
    for &pid in &pids[1..] {
        let parent = ppid(pid);
        let d = *depth.get(&parent).expect("parent listed before its child") + 1;
        depth.insert(pid, d);
    }
    let per_level = |l| depth.values().filter(|&&d| d == l).count();
    assert_eq!((per_level(1), per_level(2), per_level(3)), (4, 4, 4));
}

/// Every fd number (above 2) that a child shares with its parent: with
/// reuse on, none names the parent's description; with reuse off, all do.
fn inherited_numbers(reuse: &str) -> (usize, usize) {
    let s = Shape::spawn(&[
        "--procs",
        "6",
        "--fds",
        "20",
        "--inherit",
        "100",
        "--reuse",
        reuse,
        "--opens",
        "3",
        "--depth",
        "2",
    ]);
    let (mut same, mut differ) = (0, 0);
    for &pid in &s.pids()[1..] {
        let parent = ppid(pid);
        let theirs = proc_fds(parent).expect("parent fds");
        for fd in proc_fds(pid).expect("fds") {
            if fd > 2 && theirs.contains(&fd) {
                if kcmp_file(pid, fd, parent, fd).is_eq() {
                    same += 1;
                } else {
                    differ += 1;
                }
            }
        }
    }
    (same, differ)
}

#[test]
fn children_reuse_fd_numbers_for_unrelated_files() {
    let (same, differ) = inherited_numbers("100");
    assert_eq!(
        same, 0,
        "reuse 100: no fd number keeps the parent's description"
    );
    assert!(
        differ >= 6 * 17,
        "every child reuses its inherited numbers ({differ})"
    );
    let (same, differ) = inherited_numbers("0");
    assert_eq!(
        differ, 0,
        "reuse 0: every shared number is the parent's description"
    );
    assert!(same >= 6 * 17, "every child inherits ({same})");
}

#[test]
fn bad_parameters_exit_2_with_one_line() {
    let bin = topology_bin().expect("kcmp-topology");
    for args in [
        &["shape", "--depth", "0"][..],
        &["shape", "--procs", "2", "--depth", "3"],
        &["shape", "--reuse", "101"],
        &["general", "--reuse", "5"],
        &["shape", "--opens", "x"],
    ] {
        let out = Command::new(&bin)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}
