//! Never hang, never leave a process stopped (issue 10), against real
//! processes: a FUSE server that stops answering, a vfork parent in
//! uninterruptible sleep, kcmp stopped mid-freeze, `--freeze-timeout`, a
//! fake `cat` in PATH, a foreign /proc, a full stderr.
//!
//! `KCMP_TEST_BIN` runs these against another kcmp binary (to check that
//! they fail on an older one).

use kcmp_testkit::cli::{testkit_bin_next_to, text, Spawned};
use kcmp_testkit::process::JsonFixture;
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn kcmp() -> PathBuf {
    kcmp_testkit::cli::kcmp_under_test(env!("CARGO_BIN_EXE_kcmp"))
}

/// A kcmp-hang-fixture; ended (stdin closed, then killed) on drop.
struct Fixture(JsonFixture);

impl Fixture {
    fn start(mode: &str) -> Fixture {
        let bin = testkit_bin_next_to(env!("CARGO_BIN_EXE_kcmp"), "kcmp-hang-fixture");
        let mut command = Command::new(bin);
        command.arg(mode);
        Fixture(JsonFixture::start(&mut command, Duration::from_secs(10)))
    }

    fn pid(&self, key: &str) -> i32 {
        self.0.json[key].as_i64().unwrap() as i32
    }

    fn sleepers(&self) -> Vec<i32> {
        let s = self.0.json["sleepers"].as_array().unwrap();
        s.iter().map(|v| v.as_i64().unwrap() as i32).collect()
    }
}

/// A running kcmp whose output is collected on threads.
struct Run(Spawned);

fn spawn(args: &[String]) -> Run {
    Run(Spawned::start(kcmp(), args))
}

impl Run {
    /// Waits at most `limit`; kills kcmp and panics when it hangs.
    fn finish(self, what: &str, limit: Duration) -> (i32, String, String) {
        self.0.wait_within(limit).unwrap_or_else(|mut child| {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: kcmp hung for {limit:?}");
        })
    }
}

fn args(list: &[&str], pids: &[i32]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    for p in pids {
        v.push("--pid".into());
        v.push(p.to_string());
    }
    v
}

fn json_of(what: &str, (code, out, err): (i32, String, String)) -> Value {
    assert_eq!(code, 0, "{what}: exit {code}: {err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{what}: bad JSON {e}: {out}"))
}

fn state(pid: i32) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s[s.rfind(')')? + 2..].chars().next()
}

fn stopped(pid: i32) -> bool {
    matches!(state(pid), Some('t' | 'T'))
}

fn wait_until(limit: Duration, f: impl Fn() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn a_fuse_server_that_stops_answering_hangs_neither_scan_nor_epoll_targets() {
    let fx = Fixture::start("fuse");
    let (holder, server, epfd) = (fx.pid("holder"), fx.pid("server"), fx.pid("epfd"));
    let fifo = fx.0.json["fifo_fd"].as_i64().unwrap();
    for freeze in [false, true] {
        let mut a = args(&["scan", "--json"], &[holder, server]);
        if freeze {
            a.push("--freeze".into());
        }
        let what = format!("scan --freeze={freeze}");
        let map = json_of(&what, spawn(&a).finish(&what, LIMIT));
        let epoll = map["epoll"].as_array().expect("an epoll section");
        let mine = epoll
            .iter()
            .find(|e| e["pid"] == holder && e["epfd"] == epfd)
            .unwrap_or_else(|| panic!("{what}: no epoll {epfd} of {holder}: {epoll:?}"));
        // Both registrations resolved: the FIFO and the FUSE file.
        let fuse_fd = fx.0.json["fuse_fd"].as_i64().unwrap();
        let mut fds: Vec<i64> = mine["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["holders"][0]["fd"].as_i64().unwrap_or(-1))
            .collect();
        fds.sort_unstable();
        let mut want = vec![fifo, fuse_fd];
        want.sort_unstable();
        assert_eq!(fds, want, "{what}: {mine}");
        // The FUSE file and its dup: one description, grouped without
        // closing anything on the hung mount (a copy's close would FLUSH).
        let dup = fx.0.json["fuse_dup"].as_i64().unwrap();
        let holds = |d: &serde_json::Value, fd: i64| {
            let m = d["members"].as_array().unwrap();
            m.iter().any(|m| m["pid"] == holder && m["fd"] == fd)
        };
        let together = map["open_files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| holds(d, fuse_fd) && holds(d, dup));
        let together = together.unwrap_or_else(|| {
            panic!("{what}: FUSE fds {fuse_fd}/{dup} not one description: {map}")
        });
        // ... and said to be compared through a member, with no copy.
        assert_eq!(together["without_anchor"], true, "{what}: {together}");
        let schema = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/scan.schema.json");
        kcmp_testkit::schema::assert_valid(std::path::Path::new(schema), &map, &what);
        if freeze {
            assert_eq!(map["frozen"], true, "{what}: {map}");
        }
        let mut t = vec!["epoll-targets".to_string(), holder.to_string()];
        t.extend([epfd.to_string(), "--json".into()]);
        if freeze {
            t.push("--freeze".into());
        }
        let what = format!("epoll-targets --freeze={freeze}");
        let found = json_of(&what, spawn(&t).finish(&what, LIMIT));
        assert!(found.to_string().contains(".fifo"), "{what}: {found}");
        assert!(found.to_string().contains("kcmp-fuse-"), "{what}: {found}");
        let fuse_fd = fx.pid("fuse_fd").to_string();
        let mut h = vec!["holders".to_string(), holder.to_string(), fuse_fd.clone()];
        h.push("--json".into());
        if freeze {
            h.push("--freeze".into());
        }
        let what = format!("holders of the FUSE file, --freeze={freeze}");
        let found = json_of(&what, spawn(&h).finish(&what, LIMIT));
        assert_eq!(found["holders"][0]["pid"], holder, "{what}: {found}");
        let n = found["holders"].as_array().map_or(0, Vec::len);
        assert_eq!(n, 2, "{what}: the FUSE file and its dup: {found}");
        assert_eq!(
            found["without_anchor"], true,
            "{what}: no copy of a FUSE file"
        );
        assert!(!stopped(holder) && !stopped(server));
    }
    // An EBADF beside an fd on the FUSE file: the message says which fd is
    // not open without looking at the file.
    let fuse_fd = fx.pid("fuse_fd").to_string();
    let a: Vec<String> = [
        "file",
        &holder.to_string(),
        &fuse_fd,
        &holder.to_string(),
        "999",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (code, _, err) = spawn(&a).finish("file with EBADF", LIMIT);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("fd 999 is not open"), "{err}");
    // The human scan output too.
    let what = "human scan";
    let (code, out, err) = spawn(&args(&["scan"], &[holder, server])).finish(what, LIMIT);
    assert_eq!(code, 0, "{what}: {err}");
    assert!(out.contains("2 tasks"), "{what}: {out}");
    // A whole-host scan too (the FUSE file is on the host).
    let what = "whole-host scan";
    json_of(
        what,
        spawn(&args(&["scan", "--json"], &[])).finish(what, LIMIT),
    );
}

#[test]
fn a_vfork_parent_is_the_only_process_reported_not_frozen() {
    let fx = Fixture::start("vfork");
    let (parent, child) = (fx.pid("vfork_parent"), fx.pid("vfork_child"));
    let mut pids = fx.sleepers();
    pids.extend([parent, child]);
    let what = "scan --freeze beside a vfork parent";
    let a = args(&["scan", "--json", "--freeze"], &pids);
    let map = json_of(what, spawn(&a).finish(what, LIMIT));
    assert_eq!(map["frozen"], true, "{map}");
    let nf = map["not_frozen"].as_array().unwrap();
    assert_eq!(nf.len(), 1, "only the vfork parent: {nf:?}");
    assert_eq!(nf[0]["pid"], parent, "{nf:?}");
    assert_eq!(nf[0]["kind"], "vfork", "{nf:?}");
    for p in pids {
        assert!(!stopped(p), "{p} left stopped");
    }
}

/// A `sleep` in a cgroup v1 freezer cgroup of its own, frozen there (state
/// D, in `__refrigerator`); thawed, killed and removed on drop.
struct CgroupFrozen {
    dir: PathBuf,
    kid: Option<kcmp_testkit::process::Kid>,
}

impl CgroupFrozen {
    fn start() -> Option<CgroupFrozen> {
        let root = PathBuf::from("/sys/fs/cgroup/freezer");
        if !root.join("freezer.state").exists() && !root.join("tasks").exists() {
            return None;
        }
        let dir = root.join(format!("kcmp-test-{}", std::process::id()));
        std::fs::create_dir(&dir).ok()?;
        let kid = kcmp_testkit::process::sleeper(Stdio::null(), Stdio::null(), Stdio::null());
        let me = CgroupFrozen {
            dir,
            kid: Some(kid),
        };
        std::fs::write(me.dir.join("cgroup.procs"), me.pid().to_string()).unwrap();
        std::fs::write(me.dir.join("freezer.state"), "FROZEN").unwrap();
        let frozen = wait_until(Duration::from_secs(5), || state(me.pid()) == Some('D'));
        assert!(
            frozen.is_some(),
            "the cgroup freezer did not freeze {}",
            me.pid()
        );
        Some(me)
    }

    fn pid(&self) -> i32 {
        self.kid.as_ref().unwrap().pid()
    }
}

impl Drop for CgroupFrozen {
    fn drop(&mut self) {
        let _ = std::fs::write(self.dir.join("freezer.state"), "THAWED");
        drop(self.kid.take());
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[test]
fn a_process_in_uninterruptible_sleep_is_the_only_one_reported() {
    let Some(victim) = CgroupFrozen::start() else {
        eprintln!("no cgroup v1 freezer here: nothing to check");
        return;
    };
    let fx = Fixture::start("vfork");
    let mut pids = fx.sleepers();
    pids.push(victim.pid());
    let what = "scan --freeze beside a process frozen by the cgroup freezer";
    let a = args(&["scan", "--json", "--freeze"], &pids);
    let map = json_of(what, spawn(&a).finish(what, LIMIT));
    let nf = map["not_frozen"].as_array().unwrap();
    assert_eq!(nf.len(), 1, "only the D-state process: {nf:?}");
    assert_eq!(nf[0]["pid"], victim.pid(), "{nf:?}");
    assert_eq!(nf[0]["kind"], "uninterruptible", "{nf:?}");
    for p in fx.sleepers() {
        assert!(!stopped(p), "{p} left stopped");
    }
}

/// kcmp freezes sleepers beside a vfork parent (which keeps it waiting for
/// 2 s), gets `sig` while they are stopped, stays stopped for 3 s.
fn stopped_mid_freeze(sig: libc::c_int) {
    let fx = Fixture::start("vfork");
    let sleepers = fx.sleepers();
    let mut pids = sleepers.clone();
    pids.push(fx.pid("vfork_parent"));
    let run = spawn(&args(&["scan", "--json", "--freeze"], &pids));
    let kpid = run.0.id() as i32;
    let frozen = wait_until(Duration::from_secs(10), || {
        sleepers.iter().all(|&p| stopped(p))
    });
    assert!(frozen.is_some(), "the sleepers were never frozen");
    // SAFETY: kill takes integers.
    unsafe { libc::kill(kpid, sig) };
    let sent = Instant::now();
    if sig == libc::SIGTSTP {
        // Thaw first, then stop: once kcmp is stopped, nothing it froze is.
        let kcmp_stopped = wait_until(Duration::from_secs(3), || stopped(kpid));
        assert!(kcmp_stopped.is_some(), "kcmp did not stop on SIGTSTP");
        for &p in &sleepers {
            assert!(!stopped(p), "{p} still stopped when kcmp stopped");
        }
    }
    let released = wait_until(Duration::from_secs(3), || {
        sleepers.iter().all(|&p| !stopped(p))
    });
    assert!(
        stopped(kpid) || state(kpid).is_none(),
        "kcmp is not stopped"
    );
    std::thread::sleep(Duration::from_secs(3).saturating_sub(sent.elapsed()));
    // SAFETY: kill takes integers.
    unsafe { libc::kill(kpid, libc::SIGCONT) };
    let result = run.finish("scan --freeze after SIGCONT", LIMIT);
    let took = released.unwrap_or_else(|| panic!("still stopped 3 s after signal {sig}"));
    assert!(took < Duration::from_secs(1), "released after {took:?}");
    let map = json_of("scan --freeze, stopped", result);
    assert_eq!(map["frozen"], false, "{map}");
    assert_eq!(map["freeze_released"], "stopped", "{map}");
}

#[test]
fn sigkill_of_kcmp_mid_freeze_releases_every_process_within_a_second() {
    let fx = Fixture::start("vfork");
    let sleepers = fx.sleepers();
    let mut pids = sleepers.clone();
    pids.push(fx.pid("vfork_parent"));
    let mut run = spawn(&args(&["scan", "--json", "--freeze"], &pids));
    let frozen = wait_until(Duration::from_secs(10), || {
        sleepers.iter().all(|&p| stopped(p))
    });
    assert!(frozen.is_some(), "the sleepers were never frozen");
    // kcmp's freezer: its child named kcmp-freezer.
    let kpid = run.0.id() as i32;
    let freezer = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .find(|&p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            let ppid = stat
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().nth(1));
            stat.contains("(kcmp-freezer)") && ppid == Some(&kpid.to_string())
        })
        .expect("kcmp's freezer");
    run.0.child().kill().unwrap();
    let released = wait_until(Duration::from_secs(3), || {
        sleepers.iter().all(|&p| !stopped(p))
    });
    let _ = run.0.child().wait();
    let took = released.expect("still stopped 3 s after kcmp was killed");
    assert!(took < Duration::from_secs(1), "released after {took:?}");
    // The freezer ends too.
    let ended = wait_until(Duration::from_secs(3), || {
        matches!(state(freezer), None | Some('Z' | 'X'))
    });
    assert!(ended.is_some(), "the freezer {freezer} outlived kcmp");
}

#[test]
fn sigstop_of_kcmp_mid_freeze_releases_every_process_within_a_second() {
    stopped_mid_freeze(libc::SIGSTOP);
}

#[test]
fn sigtstp_of_kcmp_mid_freeze_thaws_then_stops() {
    stopped_mid_freeze(libc::SIGTSTP);
}

#[test]
fn freeze_timeout_caps_the_frozen_window_and_says_so() {
    let fx = Fixture::start("vfork");
    let mut pids = fx.sleepers();
    pids.push(fx.pid("vfork_parent"));
    let a = args(
        &["scan", "--json", "--freeze", "--freeze-timeout", "300ms"],
        &pids,
    );
    let what = "scan --freeze-timeout 300ms";
    let map = json_of(what, spawn(&a).finish(what, LIMIT));
    assert_eq!(map["frozen"], false, "{map}");
    assert_eq!(map["freeze_released"], "timeout", "{map}");
    assert!(map["tasks"].as_u64().unwrap() >= 2, "{map}");
}

#[test]
fn a_fake_cat_first_in_path_is_never_run() {
    let dir = std::env::temp_dir().join(format!("kcmp-fake-cat-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let marker = dir.join("ran");
    let script = format!(
        "#!/bin/sh\ntouch {}\nexec /bin/cat \"$@\"\n",
        marker.display()
    );
    let cat = dir.join("cat");
    std::fs::write(&cat, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&cat, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let me = std::process::id().to_string();
    let out = Command::new(kcmp())
        .args(["scan", "--json", "--pid", &me])
        .env("PATH", path)
        .output()
        .unwrap();
    let ran = marker.exists();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!ran, "kcmp ran the `cat` it found in PATH");
}

#[test]
fn a_proc_of_another_pid_namespace_is_refused() {
    let out = Command::new("unshare")
        .args(["-p", "-f"])
        .arg(kcmp())
        .args(["scan", "--json"])
        .output()
        .expect("unshare (util-linux) is needed, as root");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("another pid namespace"), "{err}");
    assert!(err.contains("--mount-proc"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // With its own /proc, the same scan works.
    let out = Command::new("unshare")
        .args(["-p", "-f", "--mount-proc"])
        .arg(kcmp())
        .args(["scan", "--json", "--pid", "1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn output_on_a_full_device_ends_with_status_2_not_a_panic() {
    let me = std::process::id().to_string();
    let full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap()
    };
    // An error message (EBADF) written to a full stderr.
    let out = Command::new(kcmp())
        .args(["file", &me, "999", &me, "998"])
        .stderr(full())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    // A scan written to a full stdout: one line on stderr, status 2.
    let out = Command::new(kcmp())
        .args(["scan", "--json", "--pid", &me])
        .stdout(full())
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("cannot write output: ENOSPC"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // A pipe nobody reads: 141 for stdout, and for stderr, silently.
    let closed = || {
        let (r, w) = rustix::pipe::pipe().unwrap();
        drop(r);
        Stdio::from(w)
    };
    let out = Command::new(kcmp())
        .args(["scan", "--json", "--pid", &me])
        .stdout(closed())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(141), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
    let out = Command::new(kcmp())
        .args(["file", &me, "999", &me, "998"])
        .stderr(closed())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(141), "{out:?}");
}

/// `audit --freeze` says how the freeze went, as scan does: past
/// `--freeze-timeout` the JSON has `"frozen": false` and
/// `"freeze_released": "timeout"` (and `not_frozen`), and a note on stderr
/// in human mode; a freeze that held says `"frozen": true`.
#[test]
fn audit_freeze_says_how_the_freeze_went() {
    let fx = Fixture::start("vfork");
    let sleepers = fx.sleepers();
    let mut pids = sleepers.clone();
    pids.push(fx.pid("vfork_parent"));
    let a = args(
        &[
            "audit",
            "--json",
            "--freeze",
            "--freeze-timeout",
            "300ms",
            "--fail-on",
            "critical",
        ],
        &pids,
    );
    let what = "audit --freeze-timeout 300ms";
    let v = json_of(what, spawn(&a).finish(what, LIMIT));
    assert_eq!(v["frozen"], false, "{v}");
    assert_eq!(v["freeze_released"], "timeout", "{v}");
    assert!(v["not_frozen"].is_array(), "{v}");
    let a = args(
        &[
            "audit",
            "--freeze",
            "--freeze-timeout",
            "300ms",
            "--fail-on",
            "critical",
        ],
        &pids,
    );
    let (code, _, err) = spawn(&a).finish(what, LIMIT);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("not frozen throughout (timeout)"), "{err}");
    let a = args(
        &["audit", "--json", "--freeze", "--fail-on", "critical"],
        &sleepers,
    );
    let v = json_of("audit --freeze", spawn(&a).finish("audit --freeze", LIMIT));
    assert_eq!(v["frozen"], true, "{v}");
    assert_eq!(v["not_frozen"], serde_json::json!([]), "{v}");
    for p in sleepers {
        assert!(!stopped(p), "{p} left stopped");
    }
}

/// A window shorter than the scan (`--freeze-timeout 1ms`): the processes
/// are released when it is over, and the report says so every time (the
/// freezer used to notice the deadline only every 50 ms, or when kcmp
/// asked for the thaw, and then said "frozen" for a 1 ms window).
#[test]
fn a_window_shorter_than_the_scan_is_always_reported_as_over() {
    let fx = Fixture::start("vfork");
    let sleepers = fx.sleepers();
    for round in 0..5 {
        let a = args(
            &["scan", "--json", "--freeze", "--freeze-timeout", "1ms"],
            &sleepers,
        );
        let what = "scan --freeze-timeout 1ms";
        let map = json_of(what, spawn(&a).finish(what, LIMIT));
        assert_eq!(map["frozen"], false, "round {round}: {map}");
        assert_eq!(map["freeze_released"], "timeout", "round {round}: {map}");
    }
}
