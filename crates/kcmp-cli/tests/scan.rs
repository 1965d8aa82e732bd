//! `kcmp scan` and `kcmp holders` against generated topologies whose true
//! sharing is known by construction (kcmp-testkit), compared exactly.

use kcmp_testkit::process::JsonFixture;
use kcmp_testkit::scan_json::{self, groups, partition, refs_among, sorted_groups};
use kcmp_testkit::{cli, FdRef, Topology, Truth, RESOURCES};
use serde_json::Value;
use std::collections::{BTreeSet, HashSet};

fn kcmp(args: &[&str]) -> (i32, String, String) {
    cli::run(env!("CARGO_BIN_EXE_kcmp"), args)
}

fn scan_json(args: &[&str]) -> Value {
    cli::success_json(&format!("kcmp {args:?}"), kcmp(args))
}

fn assert_matches_truth(scan: &Value, truth: &Truth) {
    scan_json::assert_exact(scan, truth, "scan");
    // Zombies are tasks, but never sharing anything.
    for z in truth.zombies() {
        for kind in RESOURCES {
            for g in scan["shared"][kind].as_array().unwrap() {
                assert!(
                    !g.as_array()
                        .unwrap()
                        .iter()
                        .any(|p| p.as_i64() == Some(z as i64)),
                    "zombie {z} reported sharing {kind}"
                );
            }
        }
    }
}

#[test]
fn tree_scan_matches_the_truth_exactly() {
    let topo = Topology::spawn("general", &[]);
    let root = topo.root().to_string();
    let scan = scan_json(&["scan", "--tree", &root, "--json", "--include-unshared"]);
    assert_eq!(scan["schema"], 1);
    assert_matches_truth(&scan, topo.truth());
    // Exactly the topology's tasks were scanned, nothing skipped.
    assert_eq!(
        scan["tasks"].as_u64().unwrap() as usize,
        topo.truth().tasks.len(),
        "{}",
        scan["skipped"]
    );
    assert_eq!(
        scan["skipped"].as_array().unwrap().len(),
        0,
        "{}",
        scan["skipped"]
    );
    assert_eq!(
        scan["fds"].as_u64().unwrap() as usize,
        topo.truth().all_fds().len()
    );
    assert!(
        scan["unavailable"].as_object().unwrap().is_empty(),
        "{}",
        scan["unavailable"]
    );
}

#[test]
fn whole_host_scan_restricted_to_the_topology_matches_the_truth() {
    let topo = Topology::spawn("general", &["--seed", "7"]);
    let scan = scan_json(&["scan", "--json", "--include-unshared"]);
    assert_matches_truth(&scan, topo.truth());
}

#[test]
fn default_output_lists_only_shared_descriptions_sorted() {
    let topo = Topology::spawn("general", &[]);
    let root = topo.root().to_string();
    let scan = scan_json(&["scan", "--tree", &root, "--json"]);
    let files = scan["open_files"].as_array().unwrap();
    assert!(!files.is_empty());
    let mut firsts = Vec::new();
    for d in files {
        let members: Vec<(i64, i64)> = d["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["pid"].as_i64().unwrap(), m["fd"].as_i64().unwrap()))
            .collect();
        assert!(members.len() >= 2, "unshared description listed: {d}");
        assert!(
            members.windows(2).all(|w| w[0] < w[1]),
            "members not sorted: {d}"
        );
        assert!(d["target"].as_str().is_some_and(|t| !t.is_empty()));
        firsts.push(members[0]);
    }
    assert!(
        firsts.windows(2).all(|w| w[0] < w[1]),
        "descriptions not sorted by first member"
    );
    let shared_in_truth = topo
        .truth()
        .files
        .iter()
        .filter(|f| f.members.len() >= 2)
        .count();
    assert_eq!(files.len(), shared_in_truth);
    for kind in RESOURCES {
        for g in scan["shared"][kind].as_array().unwrap() {
            let pids: Vec<i64> = g
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_i64().unwrap())
                .collect();
            assert!(
                pids.len() >= 2 && pids.windows(2).all(|w| w[0] < w[1]),
                "{kind}: {g}"
            );
        }
    }
    assert!(scan["stats"]["kcmp_calls"].as_u64().unwrap() > 0);
    assert!(scan["stats"]["elapsed_ms"].as_f64().is_some());
}

#[test]
fn threads_as_tasks_match_the_thread_truth() {
    let topo = Topology::spawn("general", &[]);
    let truth = topo.truth();
    let root = topo.root().to_string();
    let scan = scan_json(&["scan", "--tree", &root, "--threads", "--json"]);
    let tids: HashSet<i32> = truth
        .live_tids()
        .into_iter()
        .chain(truth.zombies())
        .collect();
    for kind in RESOURCES {
        let got = groups(&scan, kind, &tids);
        let want = sorted_groups(truth.shared_threads.groups(kind));
        assert_eq!(got, want, "--threads: kind {kind} differs from the truth");
    }
}

#[test]
fn pid_selection_scans_exactly_those_processes() {
    let topo = Topology::spawn("general", &[]);
    let truth = topo.truth();
    let live = truth.live_pids();
    let (a, b) = (live[1], live[2]);
    let scan = scan_json(&[
        "scan",
        "--pid",
        &a.to_string(),
        "--pid",
        &b.to_string(),
        "--json",
        "--include-unshared",
    ]);
    assert_eq!(scan["tasks"], 2);
    let mut seen = BTreeSet::new();
    for d in scan["open_files"].as_array().unwrap() {
        for m in d["members"].as_array().unwrap() {
            seen.insert(m["pid"].as_i64().unwrap() as i32);
        }
    }
    assert!(seen.iter().all(|p| *p == a || *p == b), "{seen:?}");
    // Restricted to a and b, the truth's partition must match.
    let pids: HashSet<i32> = [a, b].into_iter().collect();
    let want: BTreeSet<Vec<FdRef>> = truth
        .partition()
        .into_iter()
        .map(|m| {
            m.into_iter()
                .filter(|r| pids.contains(&r.pid))
                .collect::<Vec<_>>()
        })
        .filter(|m| !m.is_empty())
        .collect();
    assert_eq!(partition(&scan, &pids), want);
}

#[test]
fn kcmp_calls_grow_linearly_not_pairwise() {
    // Large enough that the separately opened data file's bucket has over
    // 1024 descriptions, so it is grouped in halves on two cores and merged.
    let topo = Topology::spawn("bench", &["--procs", "200", "--fds", "60"]);
    let root = topo.root().to_string();
    let scan = scan_json(&["scan", "--tree", &root, "--json", "--include-unshared"]);
    assert_matches_truth(&scan, topo.truth());
    let fds = scan["fds"].as_u64().unwrap();
    let tasks = scan["tasks"].as_u64().unwrap();
    let calls = scan["stats"]["kcmp_calls"].as_u64().unwrap();
    assert!(
        scan["stats"]["buckets_split"].as_u64().unwrap() >= 1,
        "no bucket took the split-and-merge path: {}",
        scan["stats"]
    );
    // Pairwise would be ~fds²/2; sorted representatives need about one call
    // per fd plus a log factor in buckets with several descriptions, and
    // ~6·tasks·log2(tasks) for the process-level kinds.
    let budget = 4 * fds + 6 * tasks * 9 + 64;
    assert!(
        calls <= budget,
        "{calls} kcmp calls for {fds} fds and {tasks} tasks (budget {budget})"
    );
}

#[test]
fn human_and_dot_output() {
    let topo = Topology::spawn("general", &[]);
    let root = topo.root().to_string();
    let (code, out, err) = kcmp(&["scan", "--tree", &root]);
    assert_eq!(code, 0, "{err}");
    let last = out.lines().last().unwrap();
    assert!(
        last.contains(" tasks, ")
            && last.contains(" fds, ")
            && last.contains(" shared descriptions, ")
            && last.contains(" skipped"),
        "{last}"
    );
    assert!(
        !out.contains('\x1b'),
        "colour when stdout is not a terminal"
    );
    assert!(out.contains("process-level sharing"));
    let (code, dot, err) = kcmp(&["scan", "--tree", &root, "--dot"]);
    assert_eq!(code, 0, "{err}");
    assert!(dot.starts_with("digraph kcmp {") && dot.trim_end().ends_with('}'));
    assert!(dot.contains(" -> d"), "no holder edges: {dot}");
    assert_eq!(dot.matches('{').count(), dot.matches('}').count());
}

#[test]
fn nothing_to_scan_is_trouble() {
    let (code, out, err) = kcmp(&["scan", "--pid", "2147483646", "--json"]);
    assert_eq!(code, 2, "{out}{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("ESRCH"), "{err}");
    let (code, _, err) = kcmp(&["scan", "--pid", "-3"]);
    assert_eq!(code, 2);
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn holders_lists_exactly_the_description_and_the_pipe_peer() {
    let topo = Topology::spawn("general", &[]);
    let truth = topo.truth();
    // Every shared description with at least one member: holders == members.
    let mut checked = 0;
    for f in truth.files.iter().filter(|f| f.members.len() >= 2).take(6) {
        let m = f.members[0];
        let (code, out, err) = kcmp(&["holders", &m.pid.to_string(), &m.fd.to_string(), "--json"]);
        assert_eq!(code, 0, "{err}");
        let v: Value = serde_json::from_str(&out).unwrap();
        let pids: HashSet<i32> = truth.pids().into_iter().collect();
        let got = refs_among(&v["holders"], &pids);
        let want: BTreeSet<FdRef> = f.members.iter().copied().collect();
        assert_eq!(got, want, "holders of {m:?} ({})", f.label);
        assert_eq!(v["pid"], m.pid);
        assert_eq!(v["fd"], m.fd);
        assert!(v["holders"][0]["comm"].is_string());
        // Files on /tmp, pipes, sockets: the engine's own copy was the
        // representative.
        assert!(v.get("without_anchor").is_none(), "{v}");
        checked += 1;
    }
    assert!(checked > 0);
    // --peer on a pipe's read end: the holders of the write end(s) of the
    // same pipe (which pipe an end belongs to is its inode).
    let link = |r: FdRef| std::fs::read_link(format!("/proc/{}/fd/{}", r.pid, r.fd)).unwrap();
    let read = truth
        .files
        .iter()
        .find(|f| f.kind == "pipe-r")
        .expect("a pipe read end");
    let m = read.members[0];
    let want: BTreeSet<FdRef> = truth
        .files
        .iter()
        .filter(|f| f.kind == "pipe-w" && link(f.members[0]) == link(m))
        .flat_map(|f| f.members.iter().copied())
        .collect();
    assert!(!want.is_empty(), "the fixture's pipe has a write end");
    let (code, out, err) = kcmp(&[
        "holders",
        &m.pid.to_string(),
        &m.fd.to_string(),
        "--peer",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let pids: HashSet<i32> = truth.pids().into_iter().collect();
    let got = refs_among(&v["peer"]["holders"], &pids);
    assert_eq!(got, want);
    // Not open: EBADF, exit 2, one line.
    let (code, _, err) = kcmp(&["holders", &topo.root().to_string(), "999", "--json"]);
    assert_eq!(code, 2);
    assert!(err.contains("EBADF") && err.lines().count() == 1, "{err}");
}

/// State letter of a process from /proc/PID/stat.
fn state(pid: i32) -> char {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    s.rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .chars()
        .next()
        .unwrap()
}

#[test]
fn freeze_flag_gives_the_same_answers_and_resumes_everything() {
    let topo = Topology::spawn("general", &[]);
    let truth = topo.truth();
    let root = topo.root().to_string();
    // A shared description of two processes, and two separate ones.
    let shared = truth
        .files
        .iter()
        .find(|f| f.members.len() >= 2 && f.members.iter().any(|m| m.pid != f.members[0].pid));
    let shared = shared.expect("a description held by two processes");
    let (a, b) = (
        shared.members[0],
        *shared
            .members
            .iter()
            .find(|m| m.pid != shared.members[0].pid)
            .unwrap(),
    );
    let (code, out, err) = kcmp(&[
        "file",
        "--freeze",
        "--json",
        &a.pid.to_string(),
        &a.fd.to_string(),
        &b.pid.to_string(),
        &b.fd.to_string(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\"same\":true"), "{out}");
    let (code, out, err) = kcmp(&[
        "holders",
        "--freeze",
        "--json",
        &a.pid.to_string(),
        &a.fd.to_string(),
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["frozen"], true);
    let frozen = scan_json(&[
        "scan",
        "--tree",
        &root,
        "--freeze",
        "--json",
        "--include-unshared",
    ]);
    assert_eq!(frozen["frozen"], true);
    assert_eq!(
        frozen["not_frozen"].as_array().unwrap().len(),
        0,
        "{}",
        frozen["not_frozen"]
    );
    assert_matches_truth(&frozen, truth);
    // Nothing was left stopped.
    for p in truth.live_pids() {
        let st = state(p);
        assert!(st != 'T' && st != 't', "process {p} left in state {st}");
    }
}

/// The children of `pid`, from /proc.
fn children_of(pid: i32) -> Vec<i32> {
    let path = format!("/proc/{pid}/task/{pid}/children");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

#[test]
fn a_pid_named_inside_a_tree_keeps_its_descendants() {
    let topo = Topology::spawn("general", &[]);
    let root = topo.root();
    let inner = children_of(root)
        .into_iter()
        .find(|&c| !children_of(c).is_empty())
        .expect("a child of the root with children of its own");
    let tasks = |args: &[&str]| scan_json(args)["tasks"].as_u64().unwrap();
    let (r, i) = (root.to_string(), inner.to_string());
    let tree = tasks(&["scan", "--tree", &r, "--json"]);
    assert_eq!(tasks(&["scan", "--pid", &i, "--tree", &r, "--json"]), tree);
    assert_eq!(tasks(&["scan", "--pid", &r, "--tree", &r, "--json"]), tree);
}

/// One bucket of 1,200 distinct descriptions (20 processes, each opening
/// one path 60 times) scanned under an fd limit of 2,048: half the free fds
/// (the library's default share for anchors) is not enough, every free fd
/// but a reserve is (`ScanOptions::all_free_fds`, which the CLI sets). Each
/// description keeps the engine's own copy as representative, and the
/// numbers of fds and descriptions are the fixture's.
#[test]
fn a_big_bucket_keeps_an_anchor_per_description_under_a_low_fd_limit() {
    let bin = kcmp_testkit::topology_bin().unwrap();
    let shape = ["shape", "--procs", "20", "--fds", "60", "--inherit", "0"];
    let fx = JsonFixture::spawn(&bin, &[&shape[..], &["--opens", "60"]].concat());
    let root = fx.json["root"].to_string();
    let out = cli::output_of(
        std::process::Command::new("/bin/sh")
            .args(["-c", "ulimit -n 2048 && exec \"$0\" \"$@\""])
            .args([env!("CARGO_BIN_EXE_kcmp"), "scan", "--tree", &root])
            .args(["--json", "--include-unshared"]),
    );
    let scan = cli::success_json("kcmp scan under ulimit -n 2048", out);
    assert_eq!(scan["fds"], fx.json["fds"]);
    let descriptions = scan["open_files"].as_array().unwrap().len();
    assert_eq!(Some(descriptions as u64), fx.json["descriptions"].as_u64());
    assert!(descriptions > 1200, "{descriptions}");
    assert_eq!(
        scan["stats"]["descriptions_without_anchor"], 0,
        "{}",
        scan["stats"]
    );
}

/// On a host where no close can wait on a server (no FUSE connection, no
/// network filesystem type; fusectl mounted, as systemd does, so that FUSE
/// connections can be counted: `kcmp-with-fusectl`), copies skip the
/// per-copy mount check (fdinfo and mount table). The answer stays exact,
/// every description keeps its anchor, and the stats say how many copies
/// were kept that way.
#[test]
fn a_server_free_host_scan_skips_mount_checks_and_matches_the_truth() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: not root (a mount namespace with fusectl)");
        return;
    }
    let topo = Topology::spawn("general", &[]);
    let root = topo.root().to_string();
    let wrapper = cli::testkit_bin_next_to(env!("CARGO_BIN_EXE_kcmp"), "kcmp-with-fusectl");
    let args = [
        env!("CARGO_BIN_EXE_kcmp"),
        "scan",
        "--tree",
        &root,
        "--json",
        "--include-unshared",
    ];
    let (code, out, err) = cli::run(&wrapper, &args);
    if code == 77 {
        eprintln!("skipped: {err}");
        return;
    }
    let scan = cli::success_json("kcmp scan under kcmp-with-fusectl", (code, out, err));
    assert_matches_truth(&scan, topo.truth());
    assert_server_free_copies(&scan["stats"], &wrapper);
}

/// A scan's stats on a host without FUSE connections (counted in a mount
/// namespace where fusectl is mounted: `wrapper`, `kcmp-with-fusectl`) nor
/// network filesystem types: copies kept without a mount check, every
/// description anchored, no copy left open.
fn assert_server_free_copies(stats: &Value, wrapper: &std::path::Path) {
    let (_, listed, _) = cli::run(wrapper, &["/bin/ls", "/sys/fs/fuse/connections"]);
    if listed.lines().count() == 0 && !kcmp_testkit::process::network_filesystem_registered() {
        assert!(
            stats["copies_on_server_free_host"].as_u64().unwrap() > 0,
            "{stats}"
        );
    }
    assert_eq!(stats["descriptions_without_anchor"], 0, "{stats}");
    assert_eq!(stats["copies_left_open"], 0, "{stats}");
}

/// Where fusectl is mounted nowhere (no systemd), kcmp as root counts FUSE
/// connections with a fusectl mount of its own that is attached to no
/// mount namespace (`fsopen`, `fsmount`): the host is server-free all the
/// same, the answer exact, and no mount table changed.
#[test]
fn without_fusectl_mounted_a_detached_fusectl_counts_the_fuse_connections() {
    let mountinfo = || std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    if !rustix::process::geteuid().is_root() || mountinfo().contains(" - fusectl ") {
        eprintln!("skipped: not root, or fusectl is mounted here");
        return;
    }
    let topo = Topology::spawn("general", &[]);
    let root = topo.root().to_string();
    let before = mountinfo();
    let scan = scan_json(&["scan", "--tree", &root, "--json", "--include-unshared"]);
    assert_eq!(mountinfo(), before, "a mount table changed");
    assert_matches_truth(&scan, topo.truth());
    let wrapper = cli::testkit_bin_next_to(env!("CARGO_BIN_EXE_kcmp"), "kcmp-with-fusectl");
    let (code, _, err) = cli::run(&wrapper, &["/bin/true"]);
    if code == 77 {
        eprintln!("skipped: {err}");
        return;
    }
    assert_server_free_copies(&scan["stats"], &wrapper);
}

/// Few processes with thousands of fds each: their links are read in
/// chunks on all workers (`pipeline::list`), and put back together. The
/// scan finds exactly the fixture's fds and descriptions: none lost, none
/// listed twice.
#[test]
fn few_processes_with_thousands_of_fds_each_are_listed_whole() {
    let bin = cli::testkit_bin_next_to(env!("CARGO_BIN_EXE_kcmp"), "kcmp-topology");
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    if limit.maximum.is_some_and(|m| m < 4000) {
        eprintln!("skipped: the fd limit ({:?}) is below 4000", limit.maximum);
        return;
    }
    let fx = JsonFixture::spawn(bin, &["shape", "--procs", "3", "--fds", "3000"]);
    let root = fx.json["root"].to_string();
    let scan = scan_json(&["scan", "--tree", &root, "--json", "--include-unshared"]);
    assert_eq!(scan["fds"], fx.json["fds"], "{}", scan["stats"]);
    let descriptions = scan["open_files"].as_array().unwrap().len();
    assert_eq!(Some(descriptions as u64), fx.json["descriptions"].as_u64());
    assert_eq!(scan["skipped_fds"].as_array().unwrap().len(), 0);
    let mut members: Vec<(i64, i64)> = scan["open_files"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| d["members"].as_array().unwrap().clone())
        .map(|m| (m["pid"].as_i64().unwrap(), m["fd"].as_i64().unwrap()))
        .collect();
    let all = members.len();
    members.sort_unstable();
    members.dedup();
    assert_eq!(members.len(), all, "an fd listed twice");
}

/// With more than 2,048 tasks, vm, files and fs are sorted in parts on all
/// workers and the parts merged in kcmp order (`pipeline::kinds`; tasks are
/// split in pid order). Two topologies with every kind of process-level
/// sharing, started before and after 2,100 prefork children (so in the
/// first part and the last, unless pids wrapped), scanned together with
/// them, still match their truths exactly, and so do the children.
#[test]
fn process_kinds_sorted_in_parts_match_the_truth() {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    if limit.maximum.is_some_and(|m| m < 8192) {
        eprintln!("skipped: the fd limit ({:?}) is below 8192", limit.maximum);
        return;
    }
    let first = Topology::spawn("general", &[]);
    let many = Topology::spawn("prefork", &["--procs", "2100"]);
    let last = Topology::spawn("general", &[]);
    let roots = [&first, &many, &last].map(|t| t.root().to_string());
    let mut args = vec!["scan", "--json", "--include-unshared"];
    for root in &roots {
        args.extend(["--tree", root.as_str()]);
    }
    let scan = scan_json(&args);
    assert!(scan["tasks"].as_u64().unwrap() > 2048, "{}", scan["tasks"]);
    scan_json::assert_exact(
        &scan,
        first.truth(),
        "general (first), with 2,100 more tasks",
    );
    scan_json::assert_exact(&scan, last.truth(), "general (last), with 2,100 more tasks");
    scan_json::assert_exact(&scan, many.truth(), "2,100 prefork children");
}
