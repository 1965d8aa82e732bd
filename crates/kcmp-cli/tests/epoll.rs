//! `kcmp epoll-targets` and the scan's epoll section, run as a user would,
//! against `kcmp-epoll-fixture` (registrations known by construction).
//! Needs the workspace's binaries: `cargo test --workspace`.

use kcmp_testkit::epoll::{holders, EpollFixture as Fixture};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Output};

const KCMP: &str = env!("CARGO_BIN_EXE_kcmp");

fn kcmp(args: &[String]) -> Output {
    Command::new(KCMP)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run kcmp")
}

fn args(v: &[&dyn ToString]) -> Vec<String> {
    v.iter().map(|a| a.to_string()).collect()
}

fn hex(s: &str) -> u64 {
    u64::from_str_radix(s.strip_prefix("0x").expect("0x… hex"), 16).unwrap()
}

const ERR_HUP: u64 = (libc::EPOLLERR | libc::EPOLLHUP) as u64;

/// (tfd, data, events without ERR|HUP, stale, holders).
type Row = (i64, u64, u64, bool, Vec<(i64, i64)>);

fn expected_rows(epoll: &Value, viewer: i64) -> BTreeSet<Row> {
    epoll["registrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["tfd"].as_i64().unwrap(),
                hex(r["data"].as_str().unwrap()),
                r["events"].as_u64().unwrap(),
                r["stale_in"][viewer.to_string()].as_bool().unwrap(),
                holders(&r["holders"]),
            )
        })
        .collect()
}

/// The rows of a JSON "targets" array; also checks its keys and the toffs.
fn actual_rows(targets: &Value) -> BTreeSet<Row> {
    let targets = targets.as_array().expect("targets is an array");
    let mut toffs: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    let rows = targets
        .iter()
        .map(|t| {
            toffs
                .entry(t["tfd"].as_i64().unwrap())
                .or_default()
                .push(t["toff"].as_i64().unwrap());
            let h = holders(&t["holders"]);
            assert_eq!(t["held"].as_bool().unwrap(), !h.is_empty());
            (
                t["tfd"].as_i64().unwrap(),
                hex(t["data"].as_str().unwrap()),
                hex(t["events"].as_str().unwrap()) & !ERR_HUP,
                t["stale"].as_bool().unwrap(),
                h,
            )
        })
        .collect::<BTreeSet<Row>>();
    assert_eq!(rows.len(), targets.len(), "one row per registration");
    for (tfd, mut v) in toffs {
        v.sort_unstable();
        assert_eq!(
            v,
            (0..v.len() as i64).collect::<Vec<_>>(),
            "toffs of tfd {tfd}"
        );
    }
    rows
}

#[test]
fn json_matches_the_truth_for_every_epoll_and_holder() {
    let fx = Fixture::spawn(10);
    for epoll in fx.epolls() {
        for (pid, fd) in holders(&epoll["holders"]) {
            let out = kcmp(&args(&[&"epoll-targets", &pid, &fd, &"--json"]));
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
            assert_eq!(
                (v["pid"].as_i64(), v["epfd"].as_i64()),
                (Some(pid), Some(fd))
            );
            assert_eq!(
                actual_rows(&v["targets"]),
                expected_rows(epoll, pid),
                "epoll {} seen from {pid}",
                epoll["name"]
            );
        }
    }
}

#[test]
fn human_output_is_a_table_with_stale_rows() {
    let k = 6;
    let fx = Fixture::spawn(k);
    let epfd = fx.epfd("classic");
    let out = kcmp(&args(&[&"epoll-targets", &fx.root(), &epfd]));
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let title = lines.next().unwrap();
    assert!(
        title.contains(&format!("{k} registrations, {k} stale")),
        "{text}"
    );
    let header = lines.next().unwrap();
    for col in [
        "TFD", "TOFF", "EVENTS", "DATA", "STALE", "TARGET", "HOLDERS",
    ] {
        assert!(header.contains(col), "{header}");
    }
    let rows: Vec<&str> = lines.filter(|l| l.starts_with("900 ")).collect();
    assert_eq!(rows.len(), k, "{text}");
    for r in &fx.epoll("classic")["registrations"].as_array().unwrap()[..] {
        let (pid, fd) = holders(&r["holders"])[0];
        let data = r["data"].as_str().unwrap();
        let row = rows
            .iter()
            .find(|l| l.split_whitespace().nth(3) == Some(data))
            .unwrap_or_else(|| panic!("no row with data {data}: {text}"));
        assert!(row.contains("closed"), "{row}");
        assert!(
            row.ends_with(&format!("{pid} (kcmp-epoll-fixt) fd {fd}")),
            "{row}"
        );
    }
}

#[test]
fn not_open_is_ebadf_and_not_epoll_is_einval_exit_2() {
    let fx = Fixture::spawn(2);
    let closed = fx.truth()["closed_fd"].as_i64().unwrap();
    let out = kcmp(&args(&[&"epoll-targets", &fx.root(), &closed]));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("EBADF"), "{err}");
    assert!(out.stdout.is_empty());

    let eventfd = fx.truth()["not_epoll_fd"].as_i64().unwrap();
    let out = kcmp(&args(&[&"epoll-targets", &fx.root(), &eventfd, &"--json"]));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("is not an epoll instance"), "{err}");
    assert!(err.contains("EINVAL"), "{err}");

    let gone = kcmp_testkit::reaped_pid();
    let out = kcmp(&args(&[&"epoll-targets", &gone, &3]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ESRCH"));
}

fn state_of(pid: i64) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.chars().next().unwrap()
}

#[test]
fn freeze_gives_the_same_answer_and_resumes_the_process() {
    let fx = Fixture::spawn(4);
    let epfd = fx.epfd("reuse");
    let out = kcmp(&args(&[
        &"epoll-targets",
        &fx.root(),
        &epfd,
        &"--json",
        &"--freeze",
    ]));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        actual_rows(&v["targets"]),
        expected_rows(fx.epoll("reuse"), fx.root())
    );
    assert!(
        !matches!(state_of(fx.root()), 'T' | 't'),
        "the fixture was left stopped"
    );
}

#[test]
fn scan_json_has_the_epoll_section() {
    let fx = Fixture::spawn(5);
    let out = kcmp(&args(&[&"scan", &"--tree", &fx.root(), &"--json"]));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let section = v["epoll"].as_array().expect("an \"epoll\" key");
    assert_eq!(
        section.len(),
        fx.epolls().len(),
        "one entry per epoll description"
    );
    for epoll in fx.epolls() {
        let hs = holders(&epoll["holders"]);
        let (pid, fd) = hs[0];
        let entry = section
            .iter()
            .find(|e| e["pid"].as_i64() == Some(pid) && e["epfd"].as_i64() == Some(fd))
            .unwrap_or_else(|| panic!("epoll {} not under its first holder", epoll["name"]));
        assert_eq!(holders(&entry["holders"]), hs);
        assert_eq!(
            actual_rows(&entry["targets"]),
            expected_rows(epoll, pid),
            "epoll {}",
            epoll["name"]
        );
    }
}

#[test]
fn scan_human_lists_stale_and_unheld_registrations_as_findings() {
    let fx = Fixture::spawn(3);
    let out = kcmp(&args(&[&"scan", &"--tree", &fx.root()]));
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("epoll findings"), "{text}");
    let mut want = 0;
    for epoll in fx.epolls() {
        let (pid, fd) = holders(&epoll["holders"])[0];
        for r in epoll["registrations"].as_array().unwrap() {
            let stale = r["stale_in"][pid.to_string()].as_bool().unwrap();
            let unheld = r["holders"].as_array().unwrap().is_empty();
            let prefix = format!("epfd {fd}: tfd {} toff ", r["tfd"]);
            if stale || unheld {
                want += 1;
                assert!(
                    text.lines().any(|l| l.contains(&prefix)),
                    "no finding for {prefix}: {text}"
                );
            }
        }
    }
    let found = text
        .lines()
        .filter(|l| l.contains(" is stale (") || l.contains("held by no scanned fd"))
        .count();
    assert_eq!(found, want, "{text}");
}

#[test]
fn epoll_tfd_toff_past_the_end_is_enoent() {
    let k = 3;
    let fx = Fixture::spawn(k);
    let root = fx.root();
    let epfd = fx.epfd("classic");
    let tfd = fx.truth()["closed_fd"].as_i64().unwrap();
    let (pid, fd) = holders(&fx.epoll("classic")["registrations"][0]["holders"])[0];
    // Every toff below K names one of the K pipes; K names none.
    let mut same = 0;
    for toff in 0..k {
        let out = kcmp(&args(&[
            &"epoll-tfd",
            &pid,
            &fd,
            &root,
            &epfd,
            &tfd,
            &"--toff",
            &toff,
        ]));
        match out.status.code() {
            Some(0) => same += 1,
            Some(1) => {}
            other => panic!(
                "toff {toff}: {other:?} {}",
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }
    assert_eq!(same, 1, "exactly one toff is this pipe");
    let out = kcmp(&args(&[
        &"epoll-tfd",
        &pid,
        &fd,
        &root,
        &epfd,
        &tfd,
        &"--toff",
        &k,
    ]));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("ENOENT"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}
