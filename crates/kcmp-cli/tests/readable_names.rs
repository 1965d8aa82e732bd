//! Names that cannot write into a terminal or forge lines: file and
//! command names escaped for people and kept exactly (as bytes) in JSON, in
//! `scan`, `holders`, `audit` and `epoll-targets`; a path longer than
//! PATH_MAX that hides nothing; no colour on a dumb terminal.

mod readable_common;

use kcmp_testkit::process::sleeper;
use readable_common::{counts, json, kcmp, ok, schema};
use serde_json::Value;
use std::process::Stdio;

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
    let (a, b) = two_holders(file);
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

/// Two sleepers holding `file` as stdin and one description of /dev/null
/// as stdout.
fn two_holders(file: std::fs::File) -> (kcmp_testkit::process::Kid, kcmp_testkit::process::Kid) {
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
    (a, b)
}

/// The path of the bytes `raw`.
fn byte_path(raw: &[u8]) -> std::path::PathBuf {
    use std::os::unix::ffi::OsStrExt;
    std::path::PathBuf::from(std::ffi::OsStr::from_bytes(raw))
}

/// A FIFO made at each path of `raws`, opened read-write.
fn fifos_at(raws: &[&Vec<u8>]) -> Vec<std::fs::File> {
    let mut fifos = Vec::new();
    for raw in raws {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            byte_path(raw),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        fifos.push(
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(byte_path(raw))
                .unwrap(),
        );
    }
    fifos
}

/// `kcmp audit --pid me --json` reports `deleted-held` for the file this
/// process holds whose name was the bytes `del`, with its exact bytes.
fn assert_deleted_held_kept_exactly(me: &str, del: &[u8]) {
    let (code, out, err) = kcmp(&["audit", "--pid", me, "--json"]);
    assert_eq!(code, 0, "{err}");
    let a: Value = serde_json::from_str(&out).unwrap();
    valid("audit", &a);
    let mut want = del.to_vec();
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
    let (fe, ff) = (name(0xfe), name(0xff));
    let fifos = fifos_at(&[&fe, &ff]);
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
    let held = std::fs::File::create(byte_path(&del)).unwrap();
    std::fs::remove_file(byte_path(&del)).unwrap();
    assert_deleted_held_kept_exactly(&me, &del);
    drop((ep, fifos, held));
}

/// A file whose path is longer than PATH_MAX (its /proc/PID/fd link cannot
/// be read: ENAMETOOLONG) must not make its holders unscannable: with it,
/// any process could hide from `scan` and `audit`. It is listed (its name
/// unknown), and its sharing found by kcmp.
#[test]
fn a_path_longer_than_path_max_hides_nothing() {
    let tmp = kcmp_testkit::process::TempDir::new("kcmp-long");
    let file = file_beyond_path_max(tmp.path());
    let (a, b) = two_holders(file);
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

/// A file created 20 directories of 250 bytes deep under `top`: its path
/// is longer than PATH_MAX, so its /proc/PID/fd link cannot be read
/// (`ENAMETOOLONG`).
fn file_beyond_path_max(top: &std::path::Path) -> std::fs::File {
    use rustix::fs::{mkdirat, openat, Mode, OFlags};
    let mut dir = openat(
        rustix::fs::CWD,
        top,
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
    std::fs::File::from(file)
}

/// `epoll-targets` on a process that also holds a file whose link cannot
/// be read (a path beyond PATH_MAX): the process is not dropped (its
/// registered FIFOs are still shown held by it), and the unreadable fd is
/// reported in `skipped_fds` and on stderr. (One such fd used to hide the
/// whole process: every target "held by no visible fd".)
#[test]
fn epoll_targets_shows_the_holders_of_a_process_with_an_unreadable_fd() {
    use std::os::fd::AsRawFd;
    let tmp = kcmp_testkit::process::TempDir::new("kcmp-long-epoll");
    let long = file_beyond_path_max(tmp.path());
    let (a, b) = (
        tmp.path().join("a").into_os_string().into_encoded_bytes(),
        tmp.path().join("b").into_os_string().into_encoded_bytes(),
    );
    let fifos = fifos_at(&[&a, &b]);
    use rustix::event::epoll;
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC).unwrap();
    for f in &fifos {
        let data = epoll::EventData::new_u64(f.as_raw_fd() as u64);
        epoll::add(&ep, f, data, epoll::EventFlags::IN).unwrap();
    }
    let me = std::process::id();
    let (pid, epfd) = (me.to_string(), ep.as_raw_fd().to_string());
    let v = json(&["epoll-targets", &pid, &epfd, "--json"]);
    valid("epoll-targets", &v);
    assert_eq!(v["skipped"], serde_json::json!([]), "{v}");
    for f in &fifos {
        let fd = f.as_raw_fd();
        let held_here = v["targets"].as_array().unwrap().iter().any(|t| {
            t["tfd"] == fd
                && t["holders"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|h| h["pid"] == me && h["fd"] == fd)
        });
        assert!(held_here, "fd {fd} not shown held by this process: {v}");
    }
    let long_fd = long.as_raw_fd();
    let listed = v["skipped_fds"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["pid"] == me && s["fd"] == long_fd && s["reason"] == "ENAMETOOLONG");
    assert!(listed, "fd {long_fd} not in skipped_fds: {v}");
    let (code, human, err) = kcmp(&["epoll-targets", &pid, &epfd]);
    assert_eq!(code, 0, "{err}");
    assert!(human.contains(", 0 held by no visible fd"), "{human}");
    assert!(err.contains("ENAMETOOLONG"), "{err}");
    drop((ep, fifos, long));
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
