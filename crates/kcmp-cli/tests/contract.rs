//! What every command promises, through the real binary: no lost output
//! (a write error exits 2 naming the errno, a closed pipe 141), usage
//! errors naming the argument, messages that say what happened, JSON that
//! matches the schema in `crates/kcmp-cli/schema/`, help that works, and
//! no file left behind by `demo`.

use kcmp_testkit::{cli, reaped_pid, Topology};
use serde_json::Value;
use std::process::{Command, Stdio};

const KCMP: &str = env!("CARGO_BIN_EXE_kcmp");

fn run(args: &[String], stdout: Stdio) -> (i32, String, String) {
    cli::output_of(
        Command::new(KCMP)
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(stdout),
    )
}

fn kcmp(args: &[String]) -> (i32, String, String) {
    run(args, Stdio::piped())
}

fn v(args: &[&dyn ToString]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

fn schema(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("schema/{name}.schema.json"))
}

/// A process of the "basic" topology with a file, a pipe and an epoll
/// instance watching the pipe's read end: (pid, file fd, pipe read fd,
/// epoll fd).
fn basic() -> (Topology, i32, i32, i32, i32) {
    let t = Topology::spawn("basic", &[]);
    let child = t.truth().pid("child");
    let fd = |n: &str| t.truth().fd(n).fd;
    let (f, r, e) = (fd("child_inherited"), fd("child_pipe_r"), fd("child_epoll"));
    (t, child, f, r, e)
}

/// Every command, as one run each that writes to stdout.
fn every_command(p: i32, f: i32, r: i32, e: i32) -> Vec<Vec<String>> {
    let mut all = vec![
        v(&[&"file", &p, &f, &p, &f]),
        v(&[&"file", &p, &f, &p, &r, &"--json"]),
        v(&[&"epoll-tfd", &p, &r, &p, &e, &r, &"--json"]),
        v(&[&"scan", &"--pid", &p]),
        v(&[&"scan", &"--pid", &p, &"--json"]),
        v(&[&"scan", &"--pid", &p, &"--json-lines"]),
        v(&[&"scan", &"--pid", &p, &"--dot"]),
        v(&[&"holders", &p, &r, &"--peer"]),
        v(&[&"holders", &p, &r, &"--json"]),
        v(&[&"epoll-targets", &p, &e]),
        v(&[&"epoll-targets", &p, &e, &"--json"]),
        v(&[&"doctor"]),
        v(&[&"doctor", &"--json"]),
        v(&[&"demo"]),
        v(&[&"help", &"scan"]),
        v(&[&"audit", &"--pid", &p]),
        v(&[&"audit", &"--pid", &p, &"--json"]),
        v(&[&"scan", &"--help"]),
        v(&[&"--version"]),
    ];
    for kind in ["vm", "files", "fs", "sighand", "io", "sysvsem"] {
        all.push(v(&[&kind, &p, &p, &"--json"]));
    }
    all
}

#[test]
fn a_full_disk_is_trouble_naming_the_errno_for_every_command() {
    let (_t, p, f, r, e) = basic();
    for args in every_command(p, f, r, e) {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let (code, _, err) = run(&args, Stdio::from(full));
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(
            err.lines()
                .any(|l| l == "kcmp: cannot write output: ENOSPC (No space left on device)"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn a_closed_pipe_ends_every_command_quietly_with_141() {
    let (_t, p, f, r, e) = basic();
    for args in every_command(p, f, r, e) {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let (code, _, err) = run(&args, Stdio::from(writer));
        assert_eq!(code, 141, "{args:?}: {err}");
        assert!(!err.contains("cannot write"), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn usage_errors_name_the_argument_and_the_help_to_read() {
    let me = std::process::id().to_string();
    let m = me.as_str();
    let cases: &[(&[&str], &str, &str)] = &[
        (&["file", m, "4", m], "<FD2>", "file"),
        (&["file"], "<PID1>", "file"),
        (&["vm", m], "<PID2>", "vm"),
        (&["files"], "<PID1>", "files"),
        (&["fs", m], "<PID2>", "fs"),
        (&["sighand"], "<PID2>", "sighand"),
        (&["io", m], "<PID2>", "io"),
        (&["sysvsem", m], "<PID2>", "sysvsem"),
        (&["epoll-tfd", m, "0", m, "1"], "<TFD>", "epoll-tfd"),
        (&["holders", m], "<FD>", "holders"),
        (&["epoll-targets", m], "<EPFD>", "epoll-targets"),
        (&["scan", "--pid"], "--pid <PID>", "scan"),
        (
            &["scan", "--min-holders", "-1"],
            "--min-holders <N>",
            "scan",
        ),
        (&["vm", "+5", m], "not a decimal number", "vm"),
        (&["vm", m, "18446744073709551616"], "out of range", "vm"),
        (&["vm", m, "2147483648"], "out of range", "vm"),
        (
            &["file", m, "99999999999999999999999", m, "0"],
            "out of range",
            "file",
        ),
        (
            &["epoll-tfd", m, "0", m, "1", "2", "--toff", "+1"],
            "not a decimal",
            "epoll-tfd",
        ),
        (&["scan", "--kind", "bogus"], "--kind <KIND>", "scan"),
        (
            &["scan", "--freeze", "--freeze-timeout", "-1s"],
            "--freeze-timeout <DURATION>",
            "scan",
        ),
        (
            &["audit", "--freeze-timeout", "-5ms", "--freeze"],
            "--freeze-timeout <DURATION>",
            "audit",
        ),
    ];
    for (args, needle, sub) in cases {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let (code, out, err) = kcmp(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert_eq!(out, "", "{args:?}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("kcmp: usage error: "), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(
            err.contains(&format!("(see kcmp {sub} --help)")),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn help_works_for_every_command_and_states_exit_statuses() {
    let (code, out, err) = kcmp(&v(&[&"help", &"--help"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("kcmp help"), "{out}");
    let subs = [
        "file",
        "vm",
        "files",
        "fs",
        "sighand",
        "io",
        "sysvsem",
        "epoll-tfd",
        "scan",
        "holders",
        "epoll-targets",
        "doctor",
        "demo",
        "help",
    ];
    for sub in subs {
        let (code, help, err) = kcmp(&v(&[&"help", &sub]));
        assert_eq!(code, 0, "help {sub}: {err}");
        let (_, direct, _) = kcmp(&v(&[&sub, &"--help"]));
        assert_eq!(help, direct, "kcmp help {sub} and kcmp {sub} --help differ");
        assert!(help.contains("Exit status:"), "{sub}: {help}");
        assert!(help.contains("Examples:"), "{sub}: {help}");
        assert!(!help.contains("Example:\n"), "{sub}: {help}");
    }
    let (_, scan, _) = kcmp(&v(&[&"help", &"scan"]));
    for word in [
        "--pid <PID>",
        "--comm <NAME>",
        "--user <USER>",
        "--kind <KIND>",
        "holders in",
    ] {
        assert!(scan.contains(word), "{word}: {scan}");
    }
    let (_, epoll, _) = kcmp(&v(&[&"help", &"epoll-targets"]));
    assert!(
        epoll.contains("STALE") && epoll.contains("EPOLLIN"),
        "{epoll}"
    );
    let (code, _, err) = kcmp(&v(&[&"help", &"nosuch"]));
    assert_eq!(code, 2, "{err}");
}

#[test]
fn messages_say_what_happened() {
    let gone = reaped_pid();
    let me = std::process::id();
    for args in [
        v(&[&"vm", &gone, &me]),
        v(&[&"file", &me, &0, &gone, &0]),
        v(&[&"scan", &"--pid", &gone]),
        v(&[&"scan", &"--tree", &gone]),
        v(&[&"audit", &"--pid", &gone]),
        v(&[&"audit", &"--tree", &gone]),
        v(&[&"holders", &gone, &0]),
        v(&[&"epoll-targets", &gone, &3]),
    ] {
        let (code, _, err) = kcmp(&args);
        assert_eq!(code, 2, "{args:?}");
        assert_eq!(
            err,
            format!("kcmp: no process {gone}: ESRCH (No such process)\n"),
            "{args:?}"
        );
    }
    // A thread id (of a thread of this test) works wherever a pid does
    // (issue 9): the scan and the audit inspect that thread's fd table.
    let (tx, rx) = std::sync::mpsc::channel();
    let (done, wait) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        tx.send(rustix::thread::gettid().as_raw_nonzero().get())
            .unwrap();
        let _ = wait.recv();
    });
    let tid = rx.recv().unwrap();
    for sub in ["scan", "audit"] {
        let (code, _, err) = kcmp(&v(&[&sub, &"--pid", &tid]));
        assert!(code == 0 || code == 1, "{sub} --pid {tid}: {code}: {err}");
        assert!(!err.contains("no process"), "{sub}: {err}");
    }
    drop(done);
    thread.join().unwrap();
    let t = Topology::spawn("clone", &[]);
    let zombie = t.truth().zombies()[0];
    let (code, _, err) = kcmp(&v(&[&"file", &zombie, &0, &me, &0]));
    assert_eq!(code, 2);
    assert!(
        err.contains(&format!("process {zombie} is a zombie")),
        "{err}"
    );
}

#[test]
fn json_of_every_command_matches_its_schema() {
    let (_t, p, f, r, e) = basic();
    let check = |name: &str, args: Vec<String>| -> Value {
        let (code, out, err) = kcmp(&args);
        // Compare commands answer 0 (same) or 1 (different).
        let compare = !["scan", "holders", "epoll-targets", "doctor"].contains(&name);
        assert!(
            code == 0 || (compare && code == 1),
            "{args:?}: exit {code}: {err}"
        );
        let out: Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"));
        kcmp_testkit::schema::assert_valid(&schema(name), &out, &format!("{args:?}"));
        out
    };
    for kind in ["vm", "files", "fs", "sighand", "io", "sysvsem"] {
        let out = check(kind, v(&[&kind, &p, &p, &"--json"]));
        assert_eq!(out["method"], "kcmp");
    }
    check("file", v(&[&"file", &p, &f, &p, &r, &"--json"]));
    let frozen = check(
        "file",
        v(&[&"file", &p, &f, &p, &f, &"--json", &"--freeze"]),
    );
    assert!(frozen["not_frozen"].is_array(), "{frozen}");
    let tfd = check(
        "epoll-tfd",
        v(&[&"epoll-tfd", &p, &r, &p, &e, &r, &"--json"]),
    );
    assert_eq!(
        (tfd["epfd"].as_i64(), tfd["efd"].as_i64()),
        (Some(e as i64), Some(e as i64))
    );
    let scan = check("scan", v(&[&"scan", &"--pid", &p, &"--json"]));
    assert!(!scan["epoll"].as_array().unwrap().is_empty(), "{scan}");
    check(
        "scan",
        v(&[
            &"scan",
            &"--pid",
            &p,
            &"--json",
            &"--freeze",
            &"--include-unshared",
        ]),
    );
    let h = check("holders", v(&[&"holders", &p, &r, &"--json", &"--peer"]));
    assert!(h["peer"].is_object(), "{h}");
    let h = check("holders", v(&[&"holders", &p, &r, &"--json", &"--freeze"]));
    assert!(h["not_frozen"].is_array(), "{h}");
    let t = check("epoll-targets", v(&[&"epoll-targets", &p, &e, &"--json"]));
    let names = &t["targets"][0]["events_names"];
    assert!(
        names.as_array().unwrap().iter().any(|n| n == "EPOLLIN"),
        "{t}"
    );
    let t = check(
        "epoll-targets",
        v(&[&"epoll-targets", &p, &e, &"--json", &"--freeze"]),
    );
    assert!(t["not_frozen"].is_array(), "{t}");
    check("doctor", v(&[&"doctor", &"--json"]));
    // --freeze on our own process (an ancestor of kcmp): the note names it
    // and why, and the JSON lists it.
    let me = std::process::id();
    let (code, out, err) = kcmp(&v(&[&"scan", &"--pid", &me, &"--freeze", &"--json"]));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(&format!("not frozen: {me} (")), "{err}");
    let scan: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(scan["not_frozen"][0]["pid"], me, "{scan}");
    let (code, out, err) = kcmp(&v(&[&"scan", &"--pid", &p, &"--json-lines"]));
    assert_eq!(code, 0, "{err}");
    for line in out.lines() {
        let rec: Value = serde_json::from_str(line).unwrap();
        kcmp_testkit::schema::assert_valid(&schema("scan-lines"), &rec, line);
    }
    // Human epoll output names the flags.
    let (_, text, _) = kcmp(&v(&[&"epoll-targets", &p, &e]));
    assert!(text.contains("EPOLLIN"), "{text}");
}

#[test]
fn demo_leaves_nothing_in_the_temp_dir_on_any_exit() {
    let tmp = kcmp_testkit::process::TempDir::new("kcmp-demo-litter");
    let dir = tmp.path().to_path_buf();
    let outs: Vec<(Stdio, i32)> = vec![
        (Stdio::piped(), 0),
        (
            Stdio::from(
                std::fs::OpenOptions::new()
                    .write(true)
                    .open("/dev/full")
                    .unwrap(),
            ),
            2,
        ),
        (
            {
                let (r, w) = std::io::pipe().unwrap();
                drop(r);
                Stdio::from(w)
            },
            141,
        ),
    ];
    for (stdout, want) in outs {
        let (code, _, err) = cli::output_of(
            Command::new(KCMP)
                .arg("demo")
                .env("TMPDIR", &dir)
                .stdout(stdout),
        );
        assert_eq!(code, want, "{err}");
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert!(left.is_empty(), "demo (exit {code}) left {left:?}");
    }
    std::fs::remove_dir(&dir).unwrap();
}

#[test]
fn one_wording_per_flag_across_commands() {
    let mut seen: std::collections::BTreeMap<String, (String, String)> = Default::default();
    for sub in kcmp_cli::command().get_subcommands() {
        for a in sub.get_arguments() {
            let (Some(long), Some(help)) = (a.get_long(), a.get_help()) else {
                continue;
            };
            let help = help.to_string();
            if let Some((first, cmd)) = seen.get(long) {
                assert_eq!(
                    first,
                    &help,
                    "--{long} worded differently in {cmd} and {}",
                    sub.get_name()
                );
            } else {
                seen.insert(long.to_string(), (help, sub.get_name().to_string()));
            }
        }
    }
    assert!(seen.contains_key("json") && seen.contains_key("freeze"));
}

/// `demo` without a usable temporary directory: one line naming the
/// directory and the errno, exit 2.
#[test]
fn demo_names_the_errno_when_the_temp_dir_is_missing() {
    let out = Command::new(KCMP)
        .arg("demo")
        .env("TMPDIR", "/nonexistent-kcmp-dir")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("/nonexistent-kcmp-dir"), "{err}");
    assert!(err.contains("ENOENT (No such file or directory)"), "{err}");
}

/// Arguments that are not UTF-8, in the command's place or a value's: a
/// usage error (2, one line), never a panic.
#[test]
fn non_utf8_arguments_are_usage_errors_not_panics() {
    use std::os::unix::ffi::OsStrExt;
    let bad = std::ffi::OsStr::from_bytes(b"\xff");
    for args in [
        vec![bad],
        vec![
            std::ffi::OsStr::new("scan"),
            std::ffi::OsStr::new("--path"),
            bad,
        ],
    ] {
        let out = Command::new(KCMP)
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.starts_with("kcmp: usage error: "), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
}
