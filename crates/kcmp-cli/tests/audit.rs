//! `kcmp audit` run as a user would, against `kcmp-audit-fixture`: every
//! rule fires exactly on its plants (rule, severity, target, kind and
//! holders), sharing by design gives nothing above info, `--allow`,
//! `--fail-on`, the filters and the exit statuses, the JSON validated
//! against `schema/audit.schema.json`, and names escaped in human output.
//! The fixture runs as root (it mounts, unshares and changes uids).

use kcmp_testkit::audit::AuditFixture;
use kcmp_testkit::cli::{output_of, testkit_bin_next_to};
use serde_json::Value;
use std::collections::BTreeSet;
use std::process::Command;

const KCMP: &str = env!("CARGO_BIN_EXE_kcmp");

fn fixture(mode: &str) -> AuditFixture {
    AuditFixture::spawn(&testkit_bin_next_to(KCMP, "kcmp-audit-fixture"), mode)
}

/// Runs `kcmp audit --tree ROOT ARGS…`: (exit code, stdout, stderr).
fn audit(fx: &AuditFixture, args: &[&str]) -> (i32, String, String) {
    let root = fx.root().to_string();
    output_of(
        Command::new(KCMP)
            .args(["audit", "--tree", &root])
            .args(args)
            .env("NO_COLOR", "1"),
    )
}

fn audit_json(fx: &AuditFixture, args: &[&str], want_code: i32) -> Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let (code, out, err) = audit(fx, &a);
    assert!(!err.contains("panicked"), "panicked: {err}");
    assert_eq!(code, want_code, "kcmp audit {args:?}: {err}\n{out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad JSON ({e}): {out}"))
}

/// A finding as (rule, severity, target, kind, sorted (pid, fd) holders).
type Key = (String, String, String, String, Vec<(i64, i64)>);

fn key(f: &Value) -> Key {
    let mut holders: Vec<(i64, i64)> = f["holders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["pid"].as_i64().unwrap(), h["fd"].as_i64().unwrap()))
        .collect();
    holders.sort_unstable();
    let s = |k: &str| f[k].as_str().unwrap().to_string();
    (s("rule"), s("severity"), s("target"), s("kind"), holders)
}

fn keys(list: &Value) -> BTreeSet<Key> {
    list.as_array().unwrap().iter().map(key).collect()
}

fn validate(doc: &Value) {
    let schema_path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/audit.schema.json");
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(schema_path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "schema violations: {errors:?}\n{doc}");
}

/// The facts each planted finding stands on: namespaces, O_CLOEXEC and
/// executables, uids, the stale registration, the deleted sizes.
fn assert_rule_facts(doc: &Value, fx: &AuditFixture) {
    let find = |rule: &str| -> Vec<&Value> {
        doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["rule"] == rule)
            .collect()
    };
    let cross = find("cross-namespace")[0];
    let ns: BTreeSet<(&str, &str)> = cross["holders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["mnt_ns"].as_str().unwrap(),
                h["user_ns"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(ns.len(), 2, "two mount and user namespaces: {cross}");
    assert_eq!(cross["access"], "path");
    for leak in find("exec-leak") {
        let holders = leak["holders"].as_array().unwrap();
        assert!(holders.iter().all(|h| h["cloexec"] == false), "{leak}");
        let exes: BTreeSet<&str> = holders.iter().map(|h| h["exe"].as_str().unwrap()).collect();
        assert_eq!(exes.len(), 2, "{leak}");
    }
    // One leak outlived its opener: only the two programs hold it.
    let root = fx.root();
    let orphan = |f: &&&Value| {
        f["holders"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["pid"] != root)
    };
    assert_eq!(find("exec-leak").iter().filter(orphan).count(), 1);
    let uids: BTreeSet<i64> = find("cross-uid-write")[0]["holders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["uid"].as_i64().unwrap())
        .collect();
    assert_eq!(uids, BTreeSet::from([0, 65534]));
    let reg = &find("epoll-stale")[0]["registration"];
    let want_tfd = fx
        .expected()
        .iter()
        .find(|e| e["rule"] == "epoll-stale")
        .unwrap()["tfd"]
        .clone();
    assert_eq!(
        (reg["tfd"].clone(), reg["tfd_now"].clone()),
        (want_tfd, Value::Null)
    );
    let sizes: Vec<i64> = find("deleted-held")
        .iter()
        .map(|f| f["size"].as_i64().unwrap())
        .collect();
    assert_eq!(
        sizes.iter().sum::<i64>(),
        12345 * 2 + 1000,
        "sizes {sizes:?}"
    );
    assert_eq!(
        doc["summary"]["deleted_bytes"],
        fx.truth()["deleted_bytes"],
        "each inode once"
    );
}

#[test]
fn planted_findings_are_exactly_the_plants() {
    let fx = fixture("plant");
    let doc = audit_json(&fx, &["--fail-on", "info"], 1);
    let expected: BTreeSet<Key> = fx.expected().iter().map(key).collect();
    assert_eq!(keys(&doc["findings"]), expected, "findings:\n{doc:#}");
    assert_eq!(
        doc["findings"].as_array().unwrap().len(),
        expected.len(),
        "no duplicate"
    );
    for rule in [
        "cross-namespace",
        "foreign-mount",
        "exec-leak",
        "pipe-self-hold",
        "cross-uid-write",
        "epoll-stale",
        "deleted-held",
    ] {
        assert!(
            expected.iter().any(|k| k.0 == rule),
            "the fixture plants {rule}"
        );
    }
    assert_rule_facts(&doc, &fx);
    let s = &doc["summary"];
    assert_eq!(
        (
            s["critical"].as_u64(),
            s["warning"].as_u64(),
            s["info"].as_u64()
        ),
        (Some(3), Some(5), Some(4))
    );
    assert_eq!(s["failing"], 12);
    assert!(
        doc["skipped"].as_array().unwrap().is_empty(),
        "{}",
        doc["skipped"]
    );
    validate(&doc);
}

#[test]
fn clean_fixture_has_nothing_above_info() {
    let fx = fixture("clean");
    let (code, out, err) = audit(&fx, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        !out.contains("CRITICAL") && !out.contains("WARNING"),
        "{out}"
    );
    let doc = audit_json(&fx, &[], 0);
    let found = keys(&doc["findings"]);
    for k in &found {
        assert_eq!(
            (k.0.as_str(), k.1.as_str()),
            ("cross-namespace", "info"),
            "{k:?}"
        );
    }
    // The pipe and the socket crossing the namespace, exactly; the rest is
    // the fixture's stdio, shared with the child in the namespace.
    let expected: BTreeSet<Key> = fx.expected().iter().map(key).collect();
    assert!(expected.is_subset(&found), "{found:?}");
    let ns_child = fx.child_pid("ns_child");
    for k in found.difference(&expected) {
        assert!(k.4.iter().all(|&(_, fd)| fd <= 2), "only stdio: {k:?}");
        assert!(k.4.iter().any(|&(pid, _)| pid == ns_child), "{k:?}");
    }
    assert_eq!(doc["summary"]["failing"], 0);
    validate(&doc);
    // Info findings fail only when asked.
    audit_json(&fx, &["--fail-on", "info"], 1);
}

#[test]
fn allow_silences_and_fail_on_sets_the_bar() {
    let fx = fixture("plant");
    assert_eq!(audit(&fx, &["--fail-on", "critical"]).0, 1);
    let doc = audit_json(
        &fx,
        &[
            "--fail-on",
            "critical",
            "--allow",
            "cross-namespace",
            "--allow",
            "foreign-mount",
        ],
        0,
    );
    assert_eq!(doc["summary"]["allowed"], 3);
    assert_eq!(doc["summary"]["allowed_by_rule"]["foreign-mount"], 2);
    assert_eq!(doc["summary"]["critical"], 0);
    assert!(doc["allowed"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["severity"] == "critical"));
    validate(&doc);
    // A pattern silences only the targets it matches.
    let doc = audit_json(&fx, &["--allow", "deleted-held:*/deleted-a (deleted)"], 1);
    assert_eq!(doc["summary"]["allowed"], 2);
    let left: Vec<&Value> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "deleted-held")
        .collect();
    assert_eq!(left.len(), 1);
    assert!(left[0]["target"]
        .as_str()
        .unwrap()
        .contains("deleted-\u{1b}[31mb\nname"));
    // Everything at or above warning allowed: exit 0 although findings remain.
    let all = [
        "cross-namespace",
        "foreign-mount",
        "exec-leak",
        "pipe-self-hold",
        "epoll-stale",
    ];
    let mut args = vec![];
    for r in all {
        args.extend(["--allow", r]);
    }
    let doc = audit_json(&fx, &args, 0);
    assert_eq!(
        (
            doc["summary"]["allowed"].as_u64(),
            doc["summary"]["info"].as_u64()
        ),
        (Some(8), Some(4))
    );
    // A pid that does not exist: trouble, one line.
    let (code, out, err) = output_of(Command::new(KCMP).args(["audit", "--pid", "2147483646"]));
    assert_eq!(
        (code, out.as_str(), err.lines().count()),
        (2, "", 1),
        "{err}"
    );
    // Bad arguments: one line, exit 2.
    for bad in [
        &["--allow", "no-such-rule"][..],
        &["--fail-on", "severe"],
        &["--user", "no-such-user-kcmp"],
        &["--kind", "folder"],
    ] {
        let (code, out, err) = audit(&fx, bad);
        assert_eq!(code, 2, "{bad:?}: {out}{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(out.is_empty());
    }
}

#[test]
fn filters_of_scan_narrow_the_findings() {
    let fx = fixture("plant");
    // Exit 1 only when a warning or worse passes the filter.
    let rules = |args: &[&str], code: i32| -> Vec<String> {
        let doc = audit_json(&fx, args, code);
        let mut v: Vec<String> = doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["rule"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    // scan's filters select descriptions: a finding is kept when the
    // description of one of its holders is selected.
    let deleted = format!("/tmp/kcmp-audit.{}/deleted-", fx.root());
    assert_eq!(rules(&["--path", &deleted], 0), ["deleted-held"; 3]);
    // The stale registration's holder is the epoll fd (an anon_inode).
    assert_eq!(
        rules(&["--kind", "pipe"], 1),
        ["pipe-self-hold", "pipe-self-hold"]
    );
    assert_eq!(rules(&["--kind", "anon_inode"], 1), ["epoll-stale"]);
    assert_eq!(
        rules(&["--comm", "kcmp-audit-help"], 1),
        ["cross-uid-write", "exec-leak", "exec-leak"]
    );
    assert_eq!(rules(&["--user", "65534"], 0), ["cross-uid-write"]);
    // Held by two (pid, fd) pairs or more: the single-holder findings
    // (deleted files, the inner foreign mount, the epoll fd) go.
    assert_eq!(
        rules(&["--min-holders", "2"], 1),
        [
            "cross-namespace",
            "cross-uid-write",
            "exec-leak",
            "exec-leak",
            "foreign-mount",
            "pipe-self-hold",
            "pipe-self-hold"
        ]
    );
    let doc = audit_json(&fx, &["--min-holders", "2"], 1);
    assert_eq!(doc["summary"]["filtered_out"], 5);
}

#[test]
fn human_output_is_grouped_by_severity_and_escaped() {
    let fx = fixture("plant");
    let (code, out, err) = audit(&fx, &[]);
    assert_eq!(code, 1, "{err}");
    let pos = |s: &str| {
        out.find(s)
            .unwrap_or_else(|| panic!("{s:?} missing:\n{out}"))
    };
    assert!(pos("CRITICAL (3)") < pos("WARNING (5)") && pos("WARNING (5)") < pos("INFO (4)"));
    assert!(pos("WARNING (5)") < pos("pipe-self-hold") && pos("pipe-self-hold") < pos("INFO (4)"));
    // Control characters and invalid UTF-8 as `ls -b` shows them.
    assert!(
        !out.contains('\u{1b}') && !out.contains('\u{fffd}'),
        "raw escape in:\n{out}"
    );
    pos("deleted-\\x1b[31mb\\nname\\xff (deleted)");
    let writer = fx.child_pid("pipe_writer");
    pos(&format!("{writer} (w\\x1bq\\xff) fd"));
    pos("size 12345 bytes");
    pos("under fd 40 (toff 0), now closed");
    assert!(out.trim_end().lines().last().unwrap().starts_with("12 findings (3 critical, 5 warning, 4 info), 0 allowed; 8 at or above warning; deleted files held: 13345 bytes"), "{out}");
}

#[test]
fn freeze_gives_the_same_findings_and_resumes_everyone() {
    let fx = fixture("plant");
    let plain = audit_json(&fx, &[], 1);
    let frozen = audit_json(&fx, &["--freeze"], 1);
    assert_eq!(keys(&frozen["findings"]), keys(&plain["findings"]));
    let mut pids = vec![fx.root()];
    pids.extend(
        fx.truth()["children"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_i64().unwrap()),
    );
    for pid in pids {
        let status =
            kcmp_testkit::cli::text(&std::fs::read(format!("/proc/{pid}/status")).unwrap());
        let state = status.lines().find(|l| l.starts_with("State:")).unwrap();
        assert!(
            !state.contains("stopped") && !state.contains("tracing"),
            "{pid}: {state}"
        );
        assert!(status.contains("TracerPid:\t0"), "{pid} still traced");
    }
}

/// An executable whose path is longer than PATH_MAX (/proc/PID/exe cannot
/// be read: ENAMETOOLONG) still counts as an executable of its own: a
/// child running it from a deep directory, holding this test's file at fd
/// 5 without O_CLOEXEC, is an `exec-leak` (it used to be left out of the
/// comparison of executables, hiding the leak).
#[test]
fn an_executable_beyond_path_max_does_not_hide_an_exec_leak() {
    use rustix::fs::{mkdirat, openat, Mode, OFlags};
    let tmp = kcmp_testkit::process::TempDir::new("kcmp-deep-exe");
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut dir = openat(rustix::fs::CWD, tmp.path(), dir_flags, Mode::empty()).unwrap();
    let part = "d".repeat(250);
    for _ in 0..20 {
        mkdirat(&dir, part.as_str(), Mode::from_raw_mode(0o700)).unwrap();
        dir = openat(&dir, part.as_str(), dir_flags, Mode::empty()).unwrap();
    }
    let sleep = ["/usr/bin/sleep", "/bin/sleep"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file())
        .expect("sleep");
    {
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC;
        let copy = openat(&dir, "sleep", flags, Mode::from_raw_mode(0o700)).unwrap();
        let mut copy = std::fs::File::from(copy);
        std::io::copy(&mut std::fs::File::open(sleep).unwrap(), &mut copy).unwrap();
    }
    // The copy, open here: sh runs it through this process's fd link, with
    // the leaked file at fd 5 (no O_CLOEXEC).
    let exe_fd = openat(
        &dir,
        "sleep",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .unwrap();
    let via = format!(
        "/proc/{}/fd/{}",
        std::process::id(),
        std::os::fd::AsRawFd::as_raw_fd(&exe_fd)
    );
    let leaked = std::fs::File::create(tmp.path().join("leaked")).unwrap();
    let child = kcmp_testkit::process::Kid(
        Command::new("/bin/sh")
            .args(["-c", "exec \"$0\" 60 5<&0", &via])
            .stdin(std::process::Stdio::from(leaked.try_clone().unwrap()))
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = child.pid();
    // Once it runs the copy, its exe link cannot be read.
    let deep = (0..200).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(10));
        let exe = std::fs::read_link(format!("/proc/{pid}/exe"));
        exe.is_err_and(|e| e.raw_os_error() == Some(libc::ENAMETOOLONG))
    });
    assert!(deep, "the child never ran the copy");
    let me = std::process::id().to_string();
    let (code, out, err) = output_of(Command::new(KCMP).args([
        "audit",
        "--pid",
        &me,
        "--pid",
        &pid.to_string(),
        "--json",
        "--fail-on",
        "critical",
    ]));
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let leak = v["findings"].as_array().unwrap().iter().any(|f| {
        f["rule"] == "exec-leak"
            && f["target"].as_str().is_some_and(|t| t.ends_with("/leaked"))
            && f["holders"]
                .as_array()
                .unwrap()
                .iter()
                .any(|h| h["pid"] == pid && h["fd"] == 5)
    });
    assert!(leak, "no exec-leak for the deep executable: {v}");
    drop((child, leaked, exe_fd));
}
