//! `kcmp scan` for people at host scale: one line per shared description
//! (counted against a topology of 321 processes whose sharing is known by
//! construction), filters that agree across text, JSON, NDJSON and DOT,
//! and names that cannot write into a terminal or forge lines.

use kcmp_testkit::process::sleeper;
use kcmp_testkit::{cli, Topology};
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Stdio;

fn kcmp(args: &[&str]) -> (i32, String, String) {
    cli::output_of(
        std::process::Command::new(env!("CARGO_BIN_EXE_kcmp"))
            .args(args)
            .env("NO_COLOR", "1"),
    )
}

fn ok(args: &[&str]) -> String {
    let (code, out, err) = kcmp(args);
    assert_eq!(code, 0, "kcmp {args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    out
}

fn json(args: &[&str]) -> Value {
    cli::success_json(&format!("kcmp {args:?}"), kcmp(args))
}

fn schema(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("schema/{name}.schema.json"))
}

/// The description lines of a human scan: the lines before the
/// process-level section, blank ones left out.
fn description_lines(out: &str) -> Vec<&str> {
    out.lines()
        .take_while(|l| !l.starts_with("process-level sharing"))
        .filter(|l| !l.is_empty())
        .collect()
}

/// "N holders in M processes" of a description line.
fn counts(line: &str) -> (usize, usize) {
    let words: Vec<&str> = line.split_whitespace().collect();
    let i = words
        .iter()
        .position(|w| w.starts_with("holder"))
        .unwrap_or_else(|| panic!("no holder count: {line}"));
    (words[i - 1].parse().unwrap(), words[i + 2].parse().unwrap())
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

#[test]
fn filters_select_descriptions_alike_in_every_format() {
    let topo = Topology::spawn("prefork", &["--procs", "4"]);
    let truth = topo.truth();
    let root = topo.root().to_string();
    // The kinds of the shared descriptions, by construction (the root's
    // stderr is whatever the test runner gave it: read its link).
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
    assert_eq!(kinds.get("socket"), Some(&4), "{kinds:?}");
    let uid = std::fs::read_to_string(format!("/proc/{root}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
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
        let mut args: Vec<&str> = vec!["scan", "--tree", &root];
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

/// A file whose name holds an escape sequence, a newline that would forge
/// a holder line, and a byte that is not UTF-8; one open file description
/// of it is held by two processes.
#[test]
fn names_are_escaped_for_people_and_kept_exactly_in_json() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = kcmp_testkit::process::TempDir::new("kcmp-escape");
    let dir = tmp.path().to_path_buf();
    let mut raw = dir.as_os_str().as_bytes().to_vec();
    raw.extend_from_slice(b"/red\x1b[31mname\n    1 (init) fd 3\xff");
    let path = std::path::PathBuf::from(std::ffi::OsStr::from_bytes(&raw));
    let file = std::fs::File::create(&path).unwrap();
    let null = std::fs::File::options()
        .write(true)
        .open("/dev/null")
        .unwrap();
    let a = sleeper(
        Stdio::from(file.try_clone().unwrap()),
        Stdio::from(null.try_clone().unwrap()),
        Stdio::null(),
    );
    let b = sleeper(Stdio::from(file), Stdio::from(null), Stdio::null());
    let (pa, pb) = (a.pid().to_string(), b.pid().to_string());
    let scan = ["scan", "--pid", &pa, "--pid", &pb];
    let human = ok(&scan);
    let escaped = "red\\x1b[31mname\\n    1 (init) fd 3\\xff";
    for (what, out) in [
        ("scan", human.clone()),
        ("scan -l", ok(&[&scan[..], &["-l"]].concat())),
        ("scan --dot", ok(&[&scan[..], &["--dot"]].concat())),
        ("holders", ok(&["holders", &pa, "0"])),
    ] {
        assert!(!out.contains('\x1b'), "{what}: raw ESC: {out:?}");
        assert!(
            !out.contains("\n    1 (init)"),
            "{what}: forged line: {out:?}"
        );
        assert!(
            !out.lines().any(|l| l.starts_with("    1 (init)")),
            "{what}: {out:?}"
        );
        let want = if what == "scan --dot" {
            escaped.replace('\\', "\\\\")
        } else {
            escaped.to_string()
        };
        assert!(out.contains(&want), "{what}: {out:?}");
    }
    let line = human.lines().find(|l| l.contains("red\\x1b")).unwrap();
    assert_eq!(counts(line), (2, 2), "{line}");
    // JSON: the name as a string (U+FFFD for the bad byte) and its bytes.
    let v = json(&[&scan[..], &["--json"]].concat());
    let d = v["open_files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["holder_count"] == 2 && d["target_bytes"].is_array())
        .unwrap_or_else(|| panic!("no description with target_bytes: {v}"));
    assert_eq!(
        d["target"],
        Value::from(String::from_utf8_lossy(&raw).into_owned())
    );
    let bytes: Vec<u8> = d["target_bytes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_u64().unwrap() as u8)
        .collect();
    assert_eq!(bytes, raw);
    let h = json(&["holders", &pa, "0", "--json"]);
    assert_eq!(h["target_bytes"], d["target_bytes"]);
    drop((a, b));
}

/// A command name (comm) with an escape sequence and a newline: two
/// processes run a copy of sleep named so, and share their stdin.
#[test]
fn command_names_are_escaped_too() {
    let tmp = kcmp_testkit::process::TempDir::new("kcmp-comm");
    let dir = tmp.path().to_path_buf();
    let sleep = ["/usr/bin/sleep", "/bin/sleep"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file())
        .expect("sleep");
    let exe = dir.join("z\x1b[1m\nz");
    std::fs::copy(sleep, &exe).unwrap();
    let (r, _w) = std::io::pipe().unwrap();
    let r = std::os::fd::OwnedFd::from(r);
    let spawn = |fd: std::os::fd::OwnedFd| {
        kcmp_testkit::process::Kid(
            std::process::Command::new(&exe)
                .arg("60")
                .stdin(Stdio::from(fd))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let a = spawn(r.try_clone().unwrap());
    let b = spawn(r);
    let (pa, pb) = (a.pid().to_string(), b.pid().to_string());
    // The kernel sets comm when exec completes: wait for it.
    for _ in 0..200 {
        let comm = std::fs::read(format!("/proc/{pb}/comm")).unwrap_or_default();
        if comm.starts_with(b"z\x1b") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let scan = ["scan", "--pid", &pa, "--pid", &pb];
    for (what, out) in [
        ("scan", ok(&scan)),
        ("scan -l", ok(&[&scan[..], &["-l"]].concat())),
        ("scan --dot", ok(&[&scan[..], &["--dot"]].concat())),
        ("holders", ok(&["holders", &pa, "0"])),
    ] {
        assert!(!out.contains('\x1b'), "{what}: raw ESC: {out:?}");
        // DOT quotes each backslash once more.
        let want = if what == "scan --dot" {
            "z\\\\x1b[1m\\\\nz ×2"
        } else {
            "z\\x1b[1m\\nz"
        };
        assert!(out.contains(want), "{what}: {out:?}");
    }
    let v = json(&[&scan[..], &["--json"]].concat());
    let comm = &v["open_files"][0]["members"][0]["comm"];
    assert_eq!(comm, "z\u{1b}[1m\nz", "{v}");
    drop((a, b));
}

fn valid(schema_name: &str, doc: &Value) {
    let s: Value =
        serde_json::from_str(&std::fs::read_to_string(schema(schema_name)).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&s).expect("the schema compiles");
    let errors: Vec<String> = validator.iter_errors(doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{schema_name}: {errors:?}\n{doc}");
}

/// `audit` and `epoll-targets` keep non-UTF-8 names lossless too: two
/// FIFOs whose names differ only in an invalid byte, watched by an epoll of
/// this test process, and a deleted file of such a name held open here.
#[test]
fn audit_and_epoll_targets_keep_invalid_utf8_names_exactly() {
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    let tmp = kcmp_testkit::process::TempDir::new("kcmp-bytes");
    let name = |last: u8| {
        let mut raw = tmp.path().as_os_str().as_bytes().to_vec();
        raw.extend_from_slice(b"/f\x1b\n");
        raw.push(last);
        raw
    };
    let path = |raw: &[u8]| std::path::PathBuf::from(std::ffi::OsStr::from_bytes(raw));
    let (fe, ff) = (name(0xfe), name(0xff));
    let mut fifos = Vec::new();
    for raw in [&fe, &ff] {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            path(raw),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        fifos.push(
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path(raw))
                .unwrap(),
        );
    }
    use rustix::event::epoll;
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC).unwrap();
    for f in &fifos {
        let data = epoll::EventData::new_u64(f.as_raw_fd() as u64);
        epoll::add(&ep, f, data, epoll::EventFlags::IN).unwrap();
    }
    let me = std::process::id().to_string();
    let epfd = ep.as_raw_fd().to_string();
    let (code, human, err) = kcmp(&["epoll-targets", &me, &epfd]);
    assert_eq!(code, 0, "{err}");
    assert!(!human.contains('\u{fffd}'), "lossy: {human:?}");
    assert!(
        human.contains("f\\x1b\\n\\xfe") && human.contains("f\\x1b\\n\\xff"),
        "{human:?}"
    );
    let v = json(&["epoll-targets", &me, &epfd, "--json"]);
    valid("epoll-targets", &v);
    let mut seen: Vec<Vec<u8>> = v["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let b = t["target_bytes"]
                .as_array()
                .unwrap_or_else(|| panic!("{t}"));
            b.iter().map(|x| x.as_u64().unwrap() as u8).collect()
        })
        .collect();
    seen.sort();
    assert_eq!(seen, vec![fe.clone(), ff.clone()]);
    // A deleted file of a non-UTF-8 name, held here: `deleted-held`.
    let del = name(0xfd);
    let held = std::fs::File::create(path(&del)).unwrap();
    std::fs::remove_file(path(&del)).unwrap();
    let (code, out, err) = kcmp(&["audit", "--pid", &me, "--json"]);
    assert_eq!(code, 0, "{err}");
    let a: Value = serde_json::from_str(&out).unwrap();
    valid("audit", &a);
    let mut want = del.clone();
    want.extend_from_slice(b" (deleted)");
    let found = a["findings"].as_array().unwrap().iter().any(|f| {
        f["rule"] == "deleted-held"
            && f["target_bytes"].as_array().is_some_and(|b| {
                b.iter()
                    .map(|x| x.as_u64().unwrap() as u8)
                    .collect::<Vec<_>>()
                    == want
            })
    });
    assert!(found, "no deleted-held finding with the exact bytes: {a}");
    drop((ep, fifos, held));
}

/// A file whose path is longer than PATH_MAX (its /proc/PID/fd link cannot
/// be read: ENAMETOOLONG) must not make its holders unscannable: with it,
/// any process could hide from `scan` and `audit`. It is listed (its name
/// unknown), and its sharing found by kcmp.
#[test]
fn a_path_longer_than_path_max_hides_nothing() {
    use rustix::fs::{mkdirat, openat, Mode, OFlags};
    let tmp = kcmp_testkit::process::TempDir::new("kcmp-long");
    let mut dir = openat(
        rustix::fs::CWD,
        tmp.path(),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .unwrap();
    let part = "d".repeat(250);
    for _ in 0..20 {
        mkdirat(&dir, part.as_str(), Mode::from_raw_mode(0o700)).unwrap();
        dir = openat(
            &dir,
            part.as_str(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap();
    }
    let file = openat(
        &dir,
        "file",
        OFlags::RDWR | OFlags::CREATE | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .unwrap();
    let file = std::fs::File::from(file);
    let null = std::fs::File::options()
        .write(true)
        .open("/dev/null")
        .unwrap();
    let a = sleeper(
        Stdio::from(file.try_clone().unwrap()),
        Stdio::from(null.try_clone().unwrap()),
        Stdio::null(),
    );
    let b = sleeper(Stdio::from(file), Stdio::from(null), Stdio::null());
    let (pa, pb) = (a.pid().to_string(), b.pid().to_string());
    let v = json(&["scan", "--pid", &pa, "--pid", &pb, "--json"]);
    // Neither process is hidden: the unreadable fd is one skipped fd each
    // (issue 9's contract), and the rest of each process is scanned.
    assert_eq!(v["skipped"], serde_json::json!([]), "{v}");
    for p in [a.pid(), b.pid()] {
        let one = v["skipped_fds"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["pid"] == p && s["fd"] == 0 && s["reason"] == "ENAMETOOLONG");
        assert!(one, "{p}: fd 0 not listed as ENAMETOOLONG: {v}");
    }
    let shared = v["open_files"].as_array().unwrap().iter().any(|d| {
        let fds: Vec<(i64, i64)> = d["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["pid"].as_i64().unwrap(), m["fd"].as_i64().unwrap()))
            .collect();
        fds.contains(&(a.pid() as i64, 1)) && fds.contains(&(b.pid() as i64, 1))
    });
    assert!(shared, "their shared /dev/null (fd 1) is not found: {v}");
    let (code, _, err) = kcmp(&["audit", "--pid", &pa, "--pid", &pb]);
    assert!(code == 0 || code == 1, "audit: {code}: {err}");
    // holders on the long-path fd: one line naming the errno, never an
    // empty answer.
    let (code, out, err) = kcmp(&["holders", &pa, "0"]);
    assert_eq!(code, 2, "holders: {out}");
    assert!(err.contains("ENAMETOOLONG"), "{err}");
    drop((a, b));
}

/// On a terminal, colour unless NO_COLOR is set or the terminal is `dumb`
/// (which shows escape codes as garbage). Run on a pseudo-terminal by
/// script(1).
#[test]
fn no_colour_on_a_dumb_terminal() {
    let script = "/usr/bin/script";
    if !std::path::Path::new(script).exists() {
        eprintln!("skipped: no {script}");
        return;
    }
    let on_tty = |term: &str, no_color: Option<&str>| -> String {
        let mut c = std::process::Command::new(script);
        c.args([
            "-qec",
            &format!("{} doctor", env!("CARGO_BIN_EXE_kcmp")),
            "/dev/null",
        ])
        .env("TERM", term)
        .env_remove("NO_COLOR")
        .stdin(Stdio::null());
        if let Some(v) = no_color {
            c.env("NO_COLOR", v);
        }
        String::from_utf8_lossy(&c.output().unwrap().stdout).into_owned()
    };
    assert!(
        on_tty("xterm", None).contains("\x1b["),
        "no colour on xterm"
    );
    assert!(
        !on_tty("xterm", Some("1")).contains("\x1b["),
        "colour with NO_COLOR"
    );
    let dumb = on_tty("dumb", None);
    assert!(
        !dumb.contains("\x1b["),
        "colour on a dumb terminal: {dumb:?}"
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
