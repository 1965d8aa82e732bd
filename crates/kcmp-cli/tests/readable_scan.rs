//! `kcmp scan` for people at host scale: one line per shared description
//! (counted against a topology of 321 processes whose sharing is known by
//! construction), filters that agree across text, JSON, NDJSON and DOT,
//! and the kind a filter sees for a file held across mount namespaces.

mod readable_common;

use kcmp_testkit::process::sleeper;
use kcmp_testkit::{Topology, Truth};
use readable_common::{counts, json, ok, schema};
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Stdio;

/// The description lines of a human scan: the lines before the
/// process-level section, blank ones left out.
fn description_lines(out: &str) -> Vec<&str> {
    out.lines()
        .take_while(|l| !l.starts_with("process-level sharing"))
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn a_host_scale_scan_is_one_line_per_shared_description() {
    let topo = Topology::spawn("prefork", &["--procs", "320"]);
    let truth = topo.truth();
    assert!(truth.tasks.len() >= 300, "{} tasks", truth.tasks.len());
    let root = topo.root().to_string();
    let out = ok(&["scan", "--tree", &root]);
    let lines = description_lines(&out);
    // The truth: every description held by two or more (pid, fd) pairs,
    // with its holder and process counts.
    let mut want: Vec<(usize, usize)> = truth
        .files
        .iter()
        .filter(|f| f.members.len() >= 2)
        .map(|f| {
            let mut pids: Vec<i32> = f.members.iter().map(|m| m.pid).collect();
            pids.dedup();
            (f.members.len(), pids.len())
        })
        .collect();
    want.sort_unstable_by(|a, b| b.cmp(a));
    let got: Vec<(usize, usize)> = lines.iter().map(|l| counts(l)).collect();
    // Most shared first: the counts come out sorted, and equal the truth.
    assert_eq!(got, want, "{out}");
    let total = out.lines().count();
    assert!(
        total <= 200,
        "{total} lines for {} tasks:\n{out}",
        truth.tasks.len()
    );
    assert_eq!(
        total,
        lines.len() + 5,
        "descriptions, groups, summary:\n{out}"
    );
    assert!(out.contains("process-level sharing"), "{out}");
    let summary = out.lines().last().unwrap();
    assert!(
        summary.starts_with(&format!("{} tasks, ", truth.tasks.len())),
        "{summary}"
    );
    // Each line summarises its holders by command with pid ranges and fds.
    let workers = truth.tasks.len();
    for l in &lines {
        assert!(l.contains(&format!("kcmp-topology ×{workers} (")), "{l}");
        assert!(l.contains(") fd "), "{l}");
    }
    // --long: every holder on a line of its own, `PID (COMM) fd N`.
    let long = ok(&["scan", "--tree", &root, "-l"]);
    let holder_lines = long
        .lines()
        .filter(|l| l.starts_with("    ") && l.contains(" (kcmp-topology) fd "))
        .count();
    assert_eq!(holder_lines, want.iter().map(|w| w.0).sum::<usize>());
    // DOT: the workers hold the same descriptions under the same fds, so
    // they collapse into one node; the graph says how to narrow it.
    let dot = ok(&["scan", "--tree", &root, "--dot"]);
    assert_eq!(dot.matches("shape=box").count(), 1, "{dot}");
    assert!(dot.contains(&format!("kcmp-topology ×{workers}")), "{dot}");
    assert!(dot.contains("--min-holders"), "{dot}");
    assert!(dot.lines().count() < 40, "{dot}");
}

/// The kinds of the shared descriptions of `truth`, as `scan` names them,
/// by construction (the root's stderr is whatever the test runner gave it:
/// read its link).
fn shared_kinds<'a>(truth: &'a Truth, root: &str) -> BTreeMap<&'a str, usize> {
    let stderr = std::fs::read_link(format!("/proc/{root}/fd/2")).unwrap();
    let stderr = stderr.to_string_lossy();
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for f in truth.files.iter().filter(|f| f.members.len() >= 2) {
        let k = match f.kind.as_str() {
            "pipe-r" | "pipe-w" => "pipe",
            "eventfd" | "epoll" => "anon_inode",
            "stderr" if stderr.starts_with("pipe:") => "pipe",
            "stderr" if stderr.starts_with("socket:") => "socket",
            "stderr" if stderr.starts_with("/dev/") => "chardev",
            "stderr" => "file",
            other => other,
        };
        *kinds.entry(k).or_default() += 1;
    }
    kinds
}

/// The real uid of process `pid`.
fn uid_of(pid: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// `kcmp scan --tree root FILTER` shows `n` descriptions in every format:
/// text, JSON (valid against its schema), NDJSON and DOT.
fn assert_filter_selects(root: &str, filter: &[String], n: usize) {
    let mut args: Vec<&str> = vec!["scan", "--tree", root];
    args.extend(filter.iter().map(String::as_str));
    let human = ok(&args);
    assert_eq!(description_lines(&human).len(), n, "{filter:?}:\n{human}");
    let mut j = args.clone();
    j.push("--json");
    let v = json(&j);
    assert_eq!(v["open_files"].as_array().unwrap().len(), n, "{filter:?}");
    kcmp_testkit::schema::assert_valid(&schema("scan"), &v, "scan --json");
    let mut l = args.clone();
    l.push("--json-lines");
    let lines = ok(&l);
    let descs = lines
        .lines()
        .filter(|l| l.contains("\"type\":\"description\""))
        .count();
    assert_eq!(descs, n, "{filter:?}: {lines}");
    let mut d = args.clone();
    d.push("--dot");
    let dot = ok(&d);
    assert_eq!(dot.matches("shape=note").count(), n, "{filter:?}: {dot}");
}

#[test]
fn filters_select_descriptions_alike_in_every_format() {
    let topo = Topology::spawn("prefork", &["--procs", "4"]);
    let truth = topo.truth();
    let root = topo.root().to_string();
    let kinds = shared_kinds(truth, &root);
    assert_eq!(kinds.get("socket"), Some(&4), "{kinds:?}");
    let uid = uid_of(&root);
    let cases: Vec<(Vec<String>, usize)> = vec![
        (vec!["--kind".into(), "socket".into()], kinds["socket"]),
        (vec!["--kind".into(), "pipe".into()], kinds["pipe"]),
        (
            vec!["--kind".into(), "anon_inode".into()],
            kinds["anon_inode"],
        ),
        (vec!["--path".into(), "socket:".into()], kinds["socket"]),
        (vec!["--min-holders".into(), "6".into()], 0),
        (vec!["--comm".into(), "no-such-comm".into()], 0),
        (
            vec![
                "--user".into(),
                uid.clone(),
                "--kind".into(),
                "socket".into(),
            ],
            kinds["socket"],
        ),
        (vec!["--user".into(), "65534".into()], 0),
    ];
    let log = truth.file_of(truth.fd("log")).unwrap();
    for (filter, n) in cases {
        assert_filter_selects(&root, &filter, n);
    }
    // The log file's kind is told by a statx of a holder's fd.
    let v = json(&["scan", "--tree", &root, "--kind", "file", "--json"]);
    assert!(v["open_files"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["holder_count"].as_u64() == Some(log.members.len() as u64)));
}

#[test]
fn json_lines_are_records_written_one_per_line() {
    let topo = Topology::spawn("prefork", &["--procs", "3"]);
    let root = topo.root().to_string();
    let out = ok(&["scan", "--tree", &root, "--json-lines"]);
    let records: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    for r in &records {
        kcmp_testkit::schema::assert_valid(&schema("scan-lines"), r, "scan --json-lines");
    }
    let types: Vec<&str> = records
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    let order = ["description", "group", "epoll", "skipped", "summary"];
    let rank = |t: &str| order.iter().position(|o| *o == t).unwrap();
    assert!(
        types.windows(2).all(|w| rank(w[0]) <= rank(w[1])),
        "{types:?}"
    );
    assert_eq!(types.last(), Some(&"summary"));
    assert_eq!(types.iter().filter(|t| **t == "summary").count(), 1);
    let whole = json(&["scan", "--tree", &root, "--json"]);
    let descs = types.iter().filter(|t| **t == "description").count();
    assert_eq!(descs, whole["open_files"].as_array().unwrap().len());
    assert_eq!(
        records.last().unwrap()["shown"].as_u64(),
        Some(descs as u64)
    );
}

/// The kind of a file held across mount namespaces: its first holder runs
/// in a new mount namespace (unshare -m) that lacks the file's mount, the
/// second in ours. It is still a `file` (not `path`), so `--kind file`
/// shows it.
#[test]
fn the_kind_of_a_file_held_across_mount_namespaces() {
    let unshare = ["/usr/bin/unshare", "/bin/unshare"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("unshare");
    let sleep = ["/usr/bin/sleep", "/bin/sleep"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file())
        .expect("sleep");
    let tmp = kcmp_testkit::process::TempDir::new("kcmp-kind-ns");
    let file = std::fs::File::create(tmp.path().join("f")).unwrap();
    // A new mount namespace: its mounts are copies with new mount ids, so
    // the file's mnt_id (fdinfo) is not in its table.
    let inner = kcmp_testkit::process::Kid(
        std::process::Command::new(unshare)
            .args(["-m", "--propagation", "private", sleep, "60"])
            .stdin(Stdio::from(file.try_clone().unwrap()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let outer = sleeper(Stdio::from(file), Stdio::null(), Stdio::null());
    let ours = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    for _ in 0..200 {
        let comm =
            std::fs::read_to_string(format!("/proc/{}/comm", inner.pid())).unwrap_or_default();
        let ns = std::fs::read_link(format!("/proc/{}/ns/mnt", inner.pid())).ok();
        if comm.trim() == "sleep" && ns.is_some_and(|n| n != ours) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let (pi, po) = (inner.pid().to_string(), outer.pid().to_string());
    let v = json(&[
        "scan", "--pid", &pi, "--pid", &po, "--kind", "file", "--json",
    ]);
    let found = v["open_files"].as_array().unwrap().iter().any(|d| {
        d["target"].as_str().is_some_and(|t| t.ends_with("/f"))
            && d["members"][0]["pid"].as_i64() == Some(inner.pid() as i64)
    });
    assert!(found, "the shared file is not shown as a file: {v}");
    drop((inner, outer));
}
