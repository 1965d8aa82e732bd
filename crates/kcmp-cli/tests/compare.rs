//! The compare commands of the `kcmp` binary against real processes of the
//! `kcmp-topology` fixture: stdout words, `--json`, exit statuses (0 same,
//! 1 different, 2 trouble), errno names on stderr, usage errors, EPERM as an
//! unprivileged user, and `kcmp demo`.

use kcmp_testkit::{reaped_pid, FdRef, Topology, Truth};
use serde_json::Value;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};

const KCMP: &str = env!("CARGO_BIN_EXE_kcmp");

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn finish(out: Output) -> Run {
    Run {
        code: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("utf-8 stderr"),
    }
}

fn kcmp<S: AsRef<str>>(args: &[S]) -> Run {
    let out = Command::new(KCMP)
        .args(args.iter().map(|a| a.as_ref()))
        .stdin(Stdio::null())
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run kcmp");
    finish(out)
}

fn s(n: impl ToString) -> String {
    n.to_string()
}

fn file_args(a: FdRef, b: FdRef) -> Vec<String> {
    vec![s("file"), s(a.pid), s(a.fd), s(b.pid), s(b.fd)]
}

/// A `same`/`different` answer: one word on stdout, the right status.
fn assert_answer(r: &Run, same: bool, what: &str) {
    let (word, code) = if same { ("same", 0) } else { ("different", 1) };
    assert_eq!(r.stdout, format!("{word}\n"), "{what}: stderr {}", r.stderr);
    assert_eq!(r.code, code, "{what}");
}

/// Trouble: exit 2, nothing on stdout, exactly one line on stderr, no panic.
fn assert_trouble(r: &Run, needle: &str, what: &str) {
    assert_eq!(
        r.code, 2,
        "{what}: stdout {:?} stderr {:?}",
        r.stdout, r.stderr
    );
    assert_eq!(r.stdout, "", "{what}");
    assert_eq!(
        r.stderr.lines().count(),
        1,
        "{what}: one line: {:?}",
        r.stderr
    );
    assert!(r.stderr.ends_with('\n'));
    for bad in ["panicked", "backtrace", "RUST_BACKTRACE"] {
        assert!(!r.stderr.contains(bad), "{what}: {:?}", r.stderr);
    }
    assert!(
        r.stderr.contains(needle),
        "{what}: {needle:?} not in {:?}",
        r.stderr
    );
}

fn json(r: &Run) -> Value {
    assert_eq!(
        r.stdout.lines().count(),
        1,
        "one JSON object: {:?}",
        r.stdout
    );
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("bad JSON {e}: {}", r.stdout))
}

#[test]
fn file_same_and_different() {
    let topo = Topology::spawn("basic", &[]);
    let t = topo.truth();
    let cases = [
        ("parent_file", "child_inherited", true),
        ("child_inherited", "child_dup", true),
        ("child_reopen", "child_reopen_dup2", true),
        ("child_reopen", "child_inherited", false),
        ("parent_file", "child_reopen", false),
        ("child_pipe_r", "child_pipe_w", false),
        ("child_opath", "child_opath", true),
        ("child_epoll", "child_eventfd", false),
    ];
    for (a, b, same) in cases {
        assert_eq!(t.same_file(t.fd(a), t.fd(b)), same, "truth {a} {b}");
        let r = kcmp(&file_args(t.fd(a), t.fd(b)));
        assert_answer(&r, same, &format!("file {a} {b}"));
        assert_eq!(r.stderr, "", "no note for file");
    }
}

#[test]
fn file_json_keys_values_and_order() {
    let topo = Topology::spawn("basic", &[]);
    let t = topo.truth();
    let (a, b) = (t.fd("child_reopen"), t.fd("parent_file"));
    let mut args = file_args(a, b);
    args.push(s("--json"));
    let r = kcmp(&args);
    assert_eq!(r.code, 1);
    let v = json(&r);
    assert_eq!(v["type"], "file");
    assert_eq!(v["pid1"], a.pid);
    assert_eq!(v["pid2"], b.pid);
    assert_eq!(v["idx1"], a.fd);
    assert_eq!(v["idx2"], b.fd);
    assert_eq!(v["same"], false);
    let fwd = v["result"].as_str().unwrap().to_string();
    assert!(fwd == "less" || fwd == "greater", "{fwd}");
    // Swapping the sides reverses the order.
    let mut rev_args = file_args(b, a);
    rev_args.insert(1, s("--json"));
    let rev = json(&kcmp(&rev_args));
    let expected = if fwd == "less" { "greater" } else { "less" };
    assert_eq!(rev["result"], expected);
    // Equal.
    let mut eq_args = file_args(t.fd("parent_file"), t.fd("child_inherited"));
    eq_args.push(s("--json"));
    let r = kcmp(&eq_args);
    assert_eq!(r.code, 0);
    let v = json(&r);
    assert_eq!(v["result"], "equal");
    assert_eq!(v["same"], true);
}

fn pair(t: &Truth, cmd: &str, a: &str, b: &str) -> Run {
    kcmp(&[cmd, &s(t.pid(a)), &s(t.pid(b))])
}

#[test]
fn every_process_subcommand_same_and_different() {
    let topo = Topology::spawn("clone", &[]);
    let t = topo.truth();
    let twins = [
        ("vm", "vm_parent", "vm_child"),
        ("sighand", "vm_parent", "vm_child"),
        ("files", "files_parent", "files_child"),
        ("fs", "fs_parent", "fs_child"),
        ("io", "io_parent", "io_child"),
        ("sysvsem", "sysvsem_parent", "sysvsem_child"),
    ];
    for (cmd, a, b) in twins {
        let r = pair(t, cmd, a, b);
        assert_answer(&r, true, &format!("{cmd} {a} {b}"));
        // Different: against a plain fork (which owns no io context or undo
        // list, while the twins do).
        let r = pair(t, cmd, a, "fork_parent");
        assert_answer(&r, false, &format!("{cmd} {a} fork_parent"));
        assert_eq!(r.stderr, "", "no note on `different`");
        // JSON.
        let r = kcmp(&[cmd, &s(t.pid(a)), &s(t.pid(b)), "--json"]);
        assert_eq!(r.code, 0);
        let v = json(&r);
        assert_eq!(v["type"], cmd);
        assert_eq!(v["pid1"], t.pid(a));
        assert_eq!(v["pid2"], t.pid(b));
        assert_eq!(v["result"], "equal");
        assert_eq!(v["same"], true);
        assert!(v.get("idx1").is_some() && v.get("idx2").is_some(), "{v}");
    }
    // Threads by tid.
    let r = kcmp(&["vm", &s(t.pid("threaded_thread_1")), &s(t.pid("threaded"))]);
    assert_answer(&r, true, "vm thread leader");
}

#[test]
fn epoll_tfd_command() {
    let topo = Topology::spawn("epoll", &[]);
    let t = topo.truth();
    let ep = t.fd("epfd");
    let tgt = t.fd("epoll_target");
    let args = |f: FdRef, tfd: i32| {
        vec![
            s("epoll-tfd"),
            s(f.pid),
            s(f.fd),
            s(ep.pid),
            s(ep.fd),
            s(tfd),
        ]
    };
    assert_answer(&kcmp(&args(tgt, tgt.fd)), true, "plain target");
    assert_answer(
        &kcmp(&args(t.fd("not_target"), tgt.fd)),
        false,
        "not the target",
    );
    let closed = t.number("closed_tfd") as i32;
    assert_answer(
        &kcmp(&args(t.fd("closed_target_keep"), closed)),
        true,
        "closed tfd",
    );
    // --toff picks among registrations under one number; exactly one matches.
    let tfd = t.number("multi_tfd") as i32;
    for name in ["multi_x", "multi_y", "multi_z"] {
        let hits: Vec<i32> = (0..3)
            .filter(|toff| {
                let mut a = args(t.fd(name), tfd);
                a.extend([s("--toff"), s(toff)]);
                let r = kcmp(&a);
                assert!(
                    r.code == 0 || r.code == 1,
                    "{name} toff {toff}: {}",
                    r.stderr
                );
                r.code == 0
            })
            .collect();
        assert_eq!(hits.len(), 1, "{name}: {hits:?}");
    }
    // JSON adds efd, tfd, toff.
    let mut a = args(tgt, tgt.fd);
    a.extend([s("--json"), s("--toff"), s(0)]);
    let r = kcmp(&a);
    let v = json(&r);
    assert_eq!(v["type"], "epoll-tfd");
    assert_eq!(v["efd"], ep.fd);
    assert_eq!(v["tfd"], tgt.fd);
    assert_eq!(v["toff"], 0);
    assert_eq!(v["idx1"], tgt.fd);
    assert_eq!(v["same"], true);
    assert_eq!(v["result"], "equal");
    // ENOENT past the end, EINVAL for a non-epoll, EBADF for a closed efd.
    let mut a = args(t.fd("multi_x"), tfd);
    a.extend([s("--toff"), s(3)]);
    assert_trouble(&kcmp(&a), "ENOENT", "toff past the end");
    let reg = t.fd("regular_file");
    let r = kcmp(&[
        s("epoll-tfd"),
        s(tgt.pid),
        s(tgt.fd),
        s(reg.pid),
        s(reg.fd),
        s(tgt.fd),
    ]);
    assert_trouble(&r, "EINVAL", "efd not an epoll");
    let r = kcmp(&[
        s("epoll-tfd"),
        s(tgt.pid),
        s(tgt.fd),
        s(ep.pid),
        s(999),
        s(tgt.fd),
    ]);
    assert_trouble(&r, "EBADF", "efd not open");
}

#[test]
fn errno_troubles_exit_2_with_one_line() {
    let topo = Topology::spawn("basic", &[]);
    let t = topo.truth();
    let child = t.pid("child");
    let gone = reaped_pid();
    assert_trouble(&kcmp(&[s("vm"), s(gone), s(child)]), "ESRCH", "reaped pid");
    assert_trouble(
        &kcmp(&[s("file"), s(child), s(0), s(gone), s(0)]),
        "ESRCH",
        "reaped pid (file)",
    );
    assert_trouble(
        &kcmp(&[s("file"), s(child), s(999), s(child), s(2)]),
        "EBADF",
        "fd not open",
    );
    // --json does not change trouble: still nothing on stdout.
    assert_trouble(
        &kcmp(&[s("sighand"), s(gone), s(child), s("--json")]),
        "ESRCH",
        "json trouble",
    );
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    let me = s(std::process::id());
    let bad: Vec<Vec<String>> = vec![
        vec![s("vm"), s("abc"), me.clone()],
        vec![s("vm"), me.clone(), s("12x")],
        vec![s("vm"), s("-5"), me.clone()],
        vec![s("vm"), s("0"), me.clone()],
        vec![s("fs"), s("2147483648"), me.clone()],
        vec![s("io"), s("99999999999999999999"), me.clone()],
        vec![s("file"), me.clone(), s("-1"), me.clone(), s("0")],
        vec![s("file"), me.clone(), s("4294967296"), me.clone(), s("0")],
        vec![s("file"), me.clone(), s("0"), me.clone(), s("4294967299")],
        vec![s("file"), me.clone(), s("zero"), me.clone(), s("0")],
        vec![s("file"), me.clone(), s("0"), me.clone()],
        vec![s("files"), me.clone()],
        vec![s("sysvsem"), me.clone(), me.clone(), me.clone()],
        vec![
            s("epoll-tfd"),
            me.clone(),
            s("0"),
            me.clone(),
            s("1"),
            s("2"),
            s("--toff"),
            s("-1"),
        ],
        vec![
            s("epoll-tfd"),
            me.clone(),
            s("0"),
            me.clone(),
            s("1"),
            s("2"),
            s("--toff"),
            s("4294967296"),
        ],
        vec![s("epoll-tfd"), me.clone(), s("0"), me.clone(), s("1")],
    ];
    for args in bad {
        let r = kcmp(&args);
        assert_eq!(r.code, 2, "{args:?}: {:?}", r.stderr);
        assert_eq!(r.stdout, "", "{args:?}");
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {:?}", r.stderr);
        assert!(!r.stderr.contains("panicked"), "{args:?}");
    }
}

#[test]
fn eperm_as_an_unprivileged_user_against_root() {
    assert!(
        rustix::process::getuid().is_root(),
        "this test drops to an unused uid, which needs root (CI runs as root)"
    );
    let topo = Topology::spawn("basic", &[]);
    let root = s(topo.root());
    for cmd in ["vm", "files", "sighand"] {
        let out = Command::new(KCMP)
            .args([cmd, &root, &root])
            .uid(54321)
            .gid(54321)
            .stdin(Stdio::null())
            .output()
            .expect("run kcmp as uid 54321");
        let r = finish(out);
        assert_trouble(&r, "EPERM", &format!("{cmd} as uid 54321"));
    }
    // Compared with itself, the unprivileged process is fine.
    let out = Command::new("sh")
        .args(["-c", &format!("exec {KCMP} vm $$ $$")])
        .uid(54321)
        .gid(54321)
        .output()
        .expect("sh");
    let r = finish(out);
    assert_answer(&r, true, "self as uid 54321");
}

#[test]
fn demo_prints_the_man_page_lines() {
    let r = kcmp(&["demo"]);
    assert_eq!(r.code, 0, "demo: {}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().map(str::trim).collect();
    let find = |prefix: &str| -> &str {
        lines
            .iter()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line {prefix:?} in {}", r.stdout))
    };
    let num = |line: &str| -> i64 {
        line.rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap_or_else(|_| panic!("{line}"))
    };
    let parent = num(find("Parent PID is "));
    let pfd = num(find("Parent opened file on FD "));
    let child = num(find("PID of child of fork() is "));
    assert_ne!(parent, child);
    let child_fd = num(find("Child opened file on FD "));
    let dup_line = find("Child duplicated FD ");
    for heading in [
        "Compare duplicate FDs from different processes:",
        "Compare FDs from distinct open()s in same process:",
        "Compare duplicated FDs in same process:",
    ] {
        find(heading);
    }
    let calls: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("kcmp("))
        .collect();
    assert_eq!(calls.len(), 3, "{}", r.stdout);
    assert!(calls[0].starts_with(&format!("kcmp({child}, {parent}, KCMP_FILE, ")));
    assert!(
        calls[0].ends_with(&format!(", {pfd}) ==> same")),
        "{}",
        calls[0]
    );
    assert!(calls[1].starts_with(&format!("kcmp({child}, {child}, KCMP_FILE, ")));
    assert!(
        calls[1].ends_with(&format!(", {child_fd}) ==> different")),
        "{}",
        calls[1]
    );
    let dup_to = num(dup_line);
    assert!(
        calls[2].ends_with(&format!(", {dup_to}) ==> same")),
        "{}",
        calls[2]
    );
    // The child is reaped: its pid is gone.
    assert!(
        !std::path::Path::new(&format!("/proc/{child}")).exists()
            || std::fs::read_to_string(format!("/proc/{child}/stat"))
                .map(|st| !st.contains(&format!(" {parent} ")))
                .unwrap_or(true)
    );
}

/// A closed stdout (`kcmp demo | head -1`) ends the command quietly, as a
/// SIGPIPE would (status 141), never with a panic and a backtrace.
#[test]
fn a_closed_stdout_is_not_a_panic() {
    for args in [&["demo"][..], &["file", "1", "0", "1", "0"][..]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let me = std::process::id().to_string();
        let args: Vec<&str> = args
            .iter()
            .map(|a| if *a == "1" { me.as_str() } else { a })
            .collect();
        let out = Command::new(env!("CARGO_BIN_EXE_kcmp"))
            .args(&args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "kcmp {args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(141), "kcmp {args:?}: {stderr}");
    }
}
