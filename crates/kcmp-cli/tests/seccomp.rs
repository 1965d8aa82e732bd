//! Life without kcmp: the tool runs under a seccomp filter
//! (`kcmp-seccomp-run`) that makes kcmp fail with ENOSYS, or with EPERM, and
//! must still give exact same/different answers through its fallbacks, say
//! which method answered, and have `kcmp doctor` name the cause.

use kcmp_testkit::cli;
use kcmp_testkit::process::{sleeper, Kid};
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// A binary of kcmp-testkit, next to `kcmp`; built on demand when absent
/// (`cargo test -p kcmp-cli` builds only this package's binaries).
fn testkit_bin(name: &str) -> PathBuf {
    cli::testkit_bin_next_to(env!("CARGO_BIN_EXE_kcmp"), name)
}

/// `kcmp-seccomp-run MODE [--no-dupfd-query] -- kcmp ARGS...`
fn kcmp_under(mode: &[&str], args: &[&str]) -> Output {
    Command::new(testkit_bin("kcmp-seccomp-run"))
        .args(mode)
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_kcmp"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// A: fd 0 and 1 one description of a file, fd 2 a second open() of it.
/// B: fd 0 and 2 the read end of a pipe, fd 1 its write end.
/// Plus this process's own copies (the file's first description, the read end).
struct Fixture {
    a: Kid,
    b: Kid,
    _file: File,
    _read: OwnedFd,
    path: PathBuf,
}

impl Fixture {
    fn new(tag: &str) -> Fixture {
        let path = std::env::temp_dir().join(format!("kcmp-seccomp-{}-{tag}", std::process::id()));
        std::fs::write(&path, b"data").unwrap();
        let f = File::open(&path).unwrap();
        let a = sleeper(
            Stdio::from(f.try_clone().unwrap()),
            Stdio::from(f.try_clone().unwrap()),
            Stdio::from(File::open(&path).unwrap()),
        );
        let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
        let b = sleeper(
            Stdio::from(r.try_clone().unwrap()),
            Stdio::from(w),
            Stdio::from(r.try_clone().unwrap()),
        );
        Fixture {
            a,
            b,
            _file: f,
            _read: r,
            path,
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// Every pair of the fixture's fds, with the expected answer.
fn cases(fx: &Fixture) -> Vec<([String; 4], bool)> {
    let (a, b) = (fx.a.pid().to_string(), fx.b.pid().to_string());
    let c = |p1: &str, f1: &str, p2: &str, f2: &str, same| {
        ([p1.into(), f1.into(), p2.into(), f2.into()], same)
    };
    vec![
        c(&a, "0", &a, "1", true),  // inherited twice: one description
        c(&a, "0", &a, "2", false), // a second open() of the same file
        c(&a, "1", &a, "2", false),
        c(&b, "0", &b, "2", true),  // the same pipe end twice
        c(&b, "0", &b, "1", false), // the other end of the same pipe
        c(&a, "0", &b, "0", false), // across processes
        c(&b, "2", &b, "0", true),
    ]
}

fn check_file_answers(mode: &[&str], want_method: &str) {
    let fx = Fixture::new(&mode.join(""));
    for (args, same) in cases(&fx) {
        let mut argv = vec!["file"];
        argv.extend(args.iter().map(String::as_str));
        let out = kcmp_under(mode, &argv);
        let (word, code) = if same { ("same", 0) } else { ("different", 1) };
        assert_eq!(
            (stdout(&out).as_str(), out.status.code()),
            (word, Some(code)),
            "{mode:?} kcmp {argv:?}: stderr {}",
            String::from_utf8_lossy(&out.stderr)
        );
        argv.push("--json");
        let out = kcmp_under(mode, &argv);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{mode:?} {argv:?}: bad JSON ({e}): {}", stdout(&out)));
        assert_eq!(v["same"], same, "{v}");
        assert_eq!(v["method"], want_method, "{mode:?} {argv:?}: {v}");
        assert_eq!(out.status.code(), Some(code));
    }
}

#[test]
fn without_a_filter_kcmp_answers() {
    let fx = Fixture::new("none");
    let out = Command::new(env!("CARGO_BIN_EXE_kcmp"))
        .args([
            "file",
            &fx.a.pid().to_string(),
            "0",
            &fx.a.pid().to_string(),
            "1",
            "--json",
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["method"], "kcmp", "{v}");
    assert_eq!(v["same"], true);
}

#[test]
fn enosys_file_answers_are_exact() {
    check_file_answers(&["enosys"], "pidfd_getfd+f_dupfd_query");
}

#[test]
fn eperm_file_answers_are_exact() {
    check_file_answers(&["eperm"], "pidfd_getfd+f_dupfd_query");
}

#[test]
fn epoll_trick_answers_when_dupfd_query_is_missing_too() {
    // Only pollable files (the pipe fixture B) can be decided by the trick.
    let fx = Fixture::new("epoll");
    let b = fx.b.pid().to_string();
    for (f1, f2, same) in [("0", "2", true), ("0", "1", false), ("1", "1", true)] {
        let out = kcmp_under(
            &["enosys", "--no-dupfd-query"],
            &["file", &b, f1, &b, f2, "--json"],
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "bad JSON ({e}): {} / {}",
                stdout(&out),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        assert_eq!(v["same"], same, "{v}");
        assert_eq!(v["method"], "pidfd_getfd+epoll", "{v}");
        assert_eq!(out.status.code(), Some(if same { 0 } else { 1 }));
    }
    // A regular file cannot be decided without kcmp or F_DUPFD_QUERY: the
    // tool says so (one line naming the errno) instead of guessing.
    let a = fx.a.pid().to_string();
    let out = kcmp_under(&["enosys", "--no-dupfd-query"], &["file", &a, "0", &a, "1"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stdout(&out).is_empty(), "guessed: {}", stdout(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("EPERM"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn own_fds_use_the_same_process_methods() {
    // The tool's own fds: fd 1 a pipe to this test, fd 2 /dev/null.
    let out = Command::new(testkit_bin("kcmp-seccomp-run"))
        .args(["enosys", "--", "sh", "-c"])
        .arg(format!(
            "exec {} file --json $$ 1 $$ 2 2>/dev/null",
            env!("CARGO_BIN_EXE_kcmp")
        ))
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("bad JSON ({e}): {}", stdout(&out));
    });
    // fd 1 is the pipe to us, fd 2 is /dev/null: different, decided in-process.
    assert_eq!(v["same"], false, "{v}");
    assert_eq!(v["method"], "f_dupfd_query", "{v}");
}

fn doctor_under(mode: &[&str]) -> (serde_json::Value, Option<i32>) {
    let out = kcmp_under(mode, &["doctor", "--json"]);
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("bad JSON ({e}): {}", stdout(&out)));
    (v, out.status.code())
}

#[test]
fn doctor_names_the_cause() {
    for (mode, errno) in [("enosys", "ENOSYS"), ("eperm", "EPERM")] {
        let (v, code) = doctor_under(&[mode]);
        assert_eq!(v["kcmp"]["works"], false, "{v}");
        assert_eq!(v["kcmp"]["errno"], errno, "{v}");
        assert_eq!(v["kcmp"]["cause"], "seccomp_filter", "{v}");
        assert!(
            v["kcmp"]["detail"].as_str().unwrap().contains("seccomp"),
            "{v}"
        );
        assert_eq!(v["seccomp"]["mode"], 2);
        assert_eq!(v["fallbacks"]["f_dupfd_query"]["works"], true);
        assert_eq!(v["usable"], true);
        assert_eq!(code, Some(0), "a fallback works: exit 0");
    }
    let (v, code) = doctor_under(&["enosys", "--no-dupfd-query"]);
    assert_eq!(v["fallbacks"]["f_dupfd_query"]["works"], false, "{v}");
    assert_eq!(v["fallbacks"]["epoll_trick"]["works"], true, "{v}");
    assert_eq!(code, Some(0));
    let out = kcmp_under(&["eperm"], &["doctor"]);
    let text = stdout(&out);
    assert!(text.contains("unavailable (EPERM)"), "{text}");
    assert!(text.contains("seccomp"), "{text}");
}

#[test]
fn scan_lists_process_kinds_as_unavailable() {
    let fx = Fixture::new("scan");
    let out = kcmp_under(
        &["enosys"],
        &[
            "scan",
            "--pid",
            &fx.a.pid().to_string(),
            "--pid",
            &fx.b.pid().to_string(),
            "--json",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // Exact descriptions from the fallbacks: A's 0+1, B's 0+2.
    let a: i64 = fx.a.pid().into();
    let b: i64 = fx.b.pid().into();
    let mut groups: Vec<Vec<(i64, i64)>> = v["open_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            g["members"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| (m["pid"].as_i64().unwrap(), m["fd"].as_i64().unwrap()))
                // Only the fixture's own fds: the test harness may leak
                // others (cargo's jobserver) into children.
                .filter(|&(_, fd)| fd <= 2)
                .collect::<Vec<_>>()
        })
        .filter(|g: &Vec<(i64, i64)>| g.len() >= 2)
        .collect();
    groups.sort();
    let mut want = vec![vec![(a, 0), (a, 1)], vec![(b, 0), (b, 2)]];
    want.sort();
    assert_eq!(groups, want, "{v}");
    // No process-level kind is guessed.
    for kind in ["vm", "files", "fs", "sighand", "io", "sysvsem"] {
        assert!(
            v["unavailable"][kind].is_string(),
            "{kind} not listed as unavailable: {v}"
        );
        assert!(
            v["shared"]
                .get(kind)
                .is_none_or(|g| g.as_array().unwrap().is_empty()),
            "{kind} guessed: {v}"
        );
    }
}

/// The (pid, fd) members of a scan's descriptions, each description's
/// members sorted, the descriptions sorted.
fn descriptions(scan: &serde_json::Value) -> Vec<Vec<(i64, i64)>> {
    let mut all: Vec<Vec<(i64, i64)>> = scan["open_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let mut m: Vec<(i64, i64)> = f["members"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| (m["pid"].as_i64().unwrap(), m["fd"].as_i64().unwrap()))
                .collect();
            m.sort_unstable();
            m
        })
        .collect();
    all.sort();
    all
}

/// A kernel before 6.13 (here `PIDFD_GET_INFO` refused with `ENOTTY` by a
/// filter): tree scans find the trees from every process's stat instead of
/// each parent through its pidfd, and give the same answer, the one the
/// topology was built to have.
#[test]
fn a_tree_scan_without_pidfd_get_info_gives_the_same_answer() {
    let bin = kcmp_testkit::topology_bin().expect("kcmp-topology");
    let args = ["shape", "--procs", "30", "--fds", "8", "--inherit", "4"];
    let fx = kcmp_testkit::process::JsonFixture::spawn(&bin, &args);
    let root = fx.json["root"].to_string();
    let scan_args = ["scan", "--json", "--include-unshared", "--tree", &root];
    let scan = |out: Output| -> serde_json::Value {
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice(&out.stdout).expect("scan JSON")
    };
    let plain = scan(kcmp_under(&["allow"], &scan_args));
    let older = scan(kcmp_under(&["allow", "--no-pidfd-info"], &scan_args));
    assert_eq!(older["fds"], fx.json["fds"], "{}", older["stats"]);
    assert_eq!(older["tasks"], plain["tasks"]);
    assert_eq!(descriptions(&older), descriptions(&plain));
    assert_eq!(older["skipped"], plain["skipped"]);
}
