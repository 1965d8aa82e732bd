//! Never hang on a copy switched under the scan: a holder switches two fds
//! (`dup2`) between a pipe / a regular file on a local filesystem and a
//! file on a FUSE mount whose server never answers anyone but the holder
//! (`kcmp-hang-fixture fuse-swap`). An fd classified safe to copy (a pipe,
//! a path on a local mount) may be the FUSE file by the time
//! `pidfd_getfd` copies it; closing that copy sends FLUSH, which waits
//! forever. kcmp must still finish every run.
//!
//! `KCMP_TEST_BIN` runs this against another kcmp binary (to check that it
//! fails on an older one).

use kcmp_testkit::cli::{testkit_bin_next_to, Spawned};
use kcmp_testkit::process::{kernel_stacks, no_fuse, reap_within, JsonFixture};
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The longest one kcmp run may take (a scan of one process takes
/// milliseconds).
const LIMIT: Duration = Duration::from_secs(10);
/// At most this many runs...
const RUNS: usize = 100;
/// ...started within this time.
const BUDGET: Duration = Duration::from_secs(20);

fn kcmp() -> PathBuf {
    kcmp_testkit::cli::kcmp_under_test(env!("CARGO_BIN_EXE_kcmp"))
}

/// The fixture; its stdin is closed (it aborts the FUSE connection and
/// kills its server: every waiter is released), then it is reaped.
struct Fixture(JsonFixture);

impl Fixture {
    fn start() -> Fixture {
        let bin = testkit_bin_next_to(env!("CARGO_BIN_EXE_kcmp"), "kcmp-hang-fixture");
        let mut command = Command::new(bin);
        command.arg("fuse-swap");
        Fixture(JsonFixture::start(&mut command, Duration::from_secs(10)))
    }
}

/// A kcmp run whose output is collected on threads; `with_fusectl`: in a
/// mount namespace where fusectl is mounted (`kcmp-with-fusectl`), as on a
/// systemd host, where kcmp can count FUSE connections.
fn spawn(args: &[String], with_fusectl: bool) -> Spawned {
    if !with_fusectl {
        return Spawned::start(kcmp(), args);
    }
    let wrapper = testkit_bin_next_to(env!("CARGO_BIN_EXE_kcmp"), "kcmp-with-fusectl");
    let mut all = vec![kcmp().to_string_lossy().into_owned()];
    all.extend(args.iter().cloned());
    Spawned::start(wrapper, &all)
}

/// How a run ended.
enum Ended {
    Exited(i32, String, String),
    /// Did not end within [`LIMIT`]: killed (SIGKILL), not yet reaped (a
    /// task waiting on a FUSE FLUSH ends only when the connection is
    /// aborted). With where each of its threads waited.
    Hung(Child, String),
}

fn finish(run: Spawned) -> Ended {
    match run.wait_within(LIMIT) {
        Ok((code, out, err)) => Ended::Exited(code, out, err),
        Err(mut child) => {
            let stacks = kernel_stacks(child.id());
            let _ = child.kill();
            Ended::Hung(child, stacks)
        }
    }
}

/// The args of run `i`: mostly whole scans of the holder, every fourth a
/// `holders` of A or B.
fn args_of(i: usize, holder: i64, swap: &[i64]) -> Vec<String> {
    let (h, mut v) = (holder.to_string(), Vec::new());
    if i % 4 == 3 {
        let fd = swap[(i / 4) % swap.len()].to_string();
        v.extend(["holders".into(), h, fd, "--json".into()]);
    } else {
        v.extend(["scan".into(), "--json".into(), "--pid".into(), h]);
    }
    v
}

/// Checks a run that ended: exit 0, no panic, JSON of the right shape for
/// the process or fd asked about (what it finds depends on what the fds
/// were when it looked).
fn check_exited(what: &str, code: i32, out: &str, err: &str, holder: i64, args: &[String]) {
    assert_eq!(code, 0, "{what}: exit {code}: {err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
    let v: Value =
        serde_json::from_str(out).unwrap_or_else(|e| panic!("{what}: bad JSON {e}: {out}"));
    if args[0] == "holders" {
        let fd: i64 = args[2].parse().unwrap();
        assert!(v["pid"] == holder && v["fd"] == fd, "{what}: {v}");
        assert!(
            v["holders"].is_array() && v["target"].is_string(),
            "{what}: {v}"
        );
        // The queried fd is its own holder unless it changed under the
        // search, and then the answer says so.
        let held = v["holders"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["pid"] == holder && h["fd"] == fd);
        assert!(held || v["queried_changed"] == true, "{what}: {v}");
    } else {
        // Unfrozen, a scan of fds that change under it may find no shared
        // description: only the shape is checked.
        assert!(v["open_files"].is_array(), "{what}: {v}");
        assert_eq!(v["tasks"], 1, "{what}: {v}");
        // A FUSE connection is live: no copy skips its mount check.
        assert_eq!(v["stats"]["copies_on_server_free_host"], 0, "{what}: {v}");
    }
}

#[test]
fn an_fd_switched_onto_a_hung_fuse_file_under_the_scan_never_hangs_kcmp() {
    race(false);
}

/// The same where kcmp can count FUSE connections (fusectl mounted): the
/// live connection of the fixture's server keeps every copy's mount check.
#[test]
fn with_fusectl_mounted_a_live_fuse_connection_keeps_the_mount_checks() {
    race(true);
}

fn race(with_fusectl: bool) {
    if let Some(why) = no_fuse() {
        eprintln!("skipped: {why}");
        return;
    }
    let mut fx = Fixture::start();
    let holder = fx.0.json["holder"].as_i64().unwrap();
    let swap: Vec<i64> = fx.0.json["swap_fds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let (start, mut hung, mut runs) = (Instant::now(), Vec::new(), 0);
    while runs < RUNS && start.elapsed() < BUDGET {
        let args = args_of(runs, holder, &swap);
        let what = format!("run {runs}: kcmp {}", args.join(" "));
        runs += 1;
        match finish(spawn(&args, with_fusectl)) {
            Ended::Exited(code, out, err) => check_exited(&what, code, &out, &err, holder, &args),
            Ended::Hung(child, stacks) => hung.push((what, child, stacks)),
        }
    }
    // Abort the FUSE connection: the hung runs end and can be reaped.
    fx.0.end();
    assert_none_hung(hung, runs);
    eprintln!("{runs} runs, none hung, in {:?}", start.elapsed());
}

/// A FUSE connection made during a scan that found the host server-free
/// (fusectl mounted, no connection): the copies taken after it keep their
/// mount checks, since the connections are counted again after each copy
/// (a FUSE file keeps its connection alive). The holder's fds A and B hold
/// a pipe and a file on /tmp, then, at "go", are switched onto the FUSE
/// file of a server that answers nobody else, while kcmp scans the holder
/// and a topology of 20,000 fds (grouped first: bigger buckets); "go" is
/// sent at several points of the scan. A copy of the FUSE file kept
/// without its check would be closed, and wait forever.
#[test]
fn with_fusectl_mounted_a_fuse_connection_made_during_the_scan_never_hangs_kcmp() {
    fuse_made_during_the_scan(true);
}

/// The same where fusectl is mounted nowhere: kcmp (root) counts the FUSE
/// connections with a fusectl mount of its own attached to no namespace.
#[test]
fn with_a_detached_fusectl_a_fuse_connection_made_during_the_scan_never_hangs_kcmp() {
    fuse_made_during_the_scan(false);
}

fn fuse_made_during_the_scan(with_fusectl: bool) {
    if let Some(why) = no_fuse() {
        eprintln!("skipped: {why}");
        return;
    }
    let topology = testkit_bin_next_to(env!("CARGO_BIN_EXE_kcmp"), "kcmp-topology");
    let topo = JsonFixture::spawn(topology, &["shape", "--procs", "200", "--fds", "100"]);
    let root = topo.json["root"].to_string();
    let bin = testkit_bin_next_to(env!("CARGO_BIN_EXE_kcmp"), "kcmp-hang-fixture");
    let mut report = Vec::new();
    let mut left_open = 0;
    for delay in [0u64, 10, 25, 50, 75, 100, 125, 150, 200, 250, 300, 400] {
        let mut command = Command::new(&bin);
        command.arg("fuse-swap-late");
        let mut fx = JsonFixture::start(&mut command, Duration::from_secs(10));
        let holder = fx.json["holder"].as_i64().unwrap();
        let args: Vec<String> = [
            "scan",
            "--json",
            "--pid",
            &holder.to_string(),
            "--tree",
            &root,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let run = spawn(&args, with_fusectl);
        std::thread::sleep(Duration::from_millis(delay));
        fx.send_line("go")
            .expect("tell the fixture to start its server");
        let what = format!("\"go\" after {delay} ms");
        match finish(run) {
            Ended::Exited(code, out, err) => {
                assert_eq!(code, 0, "{what}: exit {code}: {err}");
                let v: Value = serde_json::from_str(&out).expect("JSON");
                left_open += v["stats"]["copies_left_open"].as_u64().unwrap();
            }
            Ended::Hung(mut child, stacks) => {
                fx.end();
                let reaped = reap_within(&mut child, Duration::from_secs(5));
                report.push(format!(
                    "{what}: hung (reaped after the abort: {reaped})\n{stacks}"
                ));
            }
        }
        fx.end();
    }
    assert!(report.is_empty(), "{}", report.join("\n"));
    eprintln!("no scan hung; copies left open (FUSE files caught by their check): {left_open}");
}

/// Without kcmp(2) (`kcmp-seccomp-run enosys`), `kcmp file` compares by
/// `pidfd_getfd` copies: an fd checked as a pipe or a local file may be the
/// FUSE file once copied. The fallback then leaves that copy open, and the
/// exit must not close it either (closing sends FLUSH, never answered).
#[test]
fn without_kcmp_a_switched_copy_left_open_never_hangs_the_exit_of_kcmp_file() {
    if let Some(why) = no_fuse() {
        eprintln!("skipped: {why}");
        return;
    }
    let seccomp = testkit_bin_next_to(env!("CARGO_BIN_EXE_kcmp"), "kcmp-seccomp-run");
    let mut fx = Fixture::start();
    let h = fx.0.json["holder"].as_i64().unwrap().to_string();
    let swap = &fx.0.json["swap_fds"];
    let (a, b) = (swap[0].to_string(), swap[1].to_string());
    let (start, mut hung, mut runs) = (Instant::now(), Vec::new(), 0);
    while runs < 40 && start.elapsed() < BUDGET {
        let args: Vec<String> = ["enosys", "--", &kcmp().to_string_lossy(), "file"]
            .iter()
            .map(|s| s.to_string())
            .chain([h.clone(), a.clone(), h.clone(), b.clone()])
            .collect();
        runs += 1;
        match finish(Spawned::start(&seccomp, &args)) {
            Ended::Exited(_, _, err) => assert!(!err.contains("panicked"), "{err}"),
            Ended::Hung(child, stacks) => hung.push((format!("run {runs}"), child, stacks)),
        }
    }
    fx.0.end();
    assert_none_hung(hung, runs);
}

/// Fails, listing the runs that hung (`what`, the killed child, where its
/// threads waited), once the fixture has ended: each is reaped then if it
/// can be (a wait on FUSE ends when the connection is aborted).
fn assert_none_hung(hung: Vec<(String, Child, String)>, runs: usize) {
    let report: Vec<String> = hung
        .into_iter()
        .map(|(what, mut child, stacks)| {
            let reaped = reap_within(&mut child, Duration::from_secs(5));
            format!("{what}: hung for {LIMIT:?} (reaped after the abort: {reaped})\n{stacks}")
        })
        .collect();
    assert!(
        report.is_empty(),
        "{} of {runs} runs hung:\n{}",
        report.len(),
        report.join("\n")
    );
}
