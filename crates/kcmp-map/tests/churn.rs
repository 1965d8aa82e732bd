//! Stable fds stay exact under churn (issue 9): `kcmp-churn --stable MODE`
//! keeps eight (pid, fd) pairs on two descriptions of one file unchanged
//! while other fds of the same processes churn (dup2 between the two
//! descriptions, also next to forty more stable descriptions of the file,
//! open/close of new descriptions, fork/exit of children inheriting them,
//! renames of the file). Every scan, with and without
//! freezing, must report each stable fd in exactly its description, with
//! every other stable holder, and nothing in a description it never held.
//!
//! `KCMP_CHURN_SCANS=N` sets the scans per mode and freeze setting
//! (default 200). The counts are printed (`--nocapture`).

use kcmp::Pid;
use kcmp_map::{scan, ScanOptions, SharingMap};
use kcmp_testkit::process::JsonFixture;
use serde_json::Value;
use std::collections::BTreeSet;

/// The stable-churn fixture (ended when dropped) and its truth.
struct Fixture(JsonFixture);

impl Fixture {
    fn spawn(mode: &str) -> Fixture {
        let bin = kcmp_testkit::workspace_bin("kcmp-churn");
        Fixture(JsonFixture::spawn(bin, &["--stable", mode]))
    }

    fn truth(&self) -> &Value {
        &self.0.json
    }

    fn pid(&self, key: &str) -> i32 {
        self.truth()[key].as_i64().unwrap() as i32
    }

    fn group(&self, key: &str) -> BTreeSet<(i32, i32)> {
        self.truth()[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_i64().unwrap() as i32, p[1].as_i64().unwrap() as i32))
            .collect()
    }
}

/// Wrong and missing stable fds over a number of scans.
#[derive(Debug, Default)]
struct Tally {
    scans: u32,
    scans_wrong: u32,
    scans_missing: u32,
    wrong_fds: u32,
    missing_fds: u32,
}

/// May `m` be reported in the description of stable group `g` in `mode`?
fn allowed(mode: &str, m: (i32, i32), g: &BTreeSet<(i32, i32)>, stable_pids: &[i32]) -> bool {
    if g.contains(&m) {
        return true;
    }
    match mode {
        // Churn fds switch between A and B: either is a description they held.
        "dup2" | "dup2-many" | "memfd" | "pipe-many" | "pipe-swap-many" | "pipe-big-many" => {
            stable_pids.contains(&m.0) && (30..38).contains(&m.1)
        }
        // Short-lived children inherit the stable fds and dup2 one of them
        // onto another: their fds 40..43 held A or B.
        "fork-exit" => !stable_pids.contains(&m.0) && (40..44).contains(&m.1),
        _ => false,
    }
}

/// Checks one scan against the truth; adds to `tally`.
fn check(map: &SharingMap, fx: &Fixture, mode: &str, tally: &mut Tally) {
    let stable_pids = [fx.pid("parent"), fx.pid("child")];
    let groups = [fx.group("a"), fx.group("b")];
    let (mut wrong, mut missing) = (0, 0);
    for g in &groups {
        for &s in g {
            let d = map.description_of(Pid::new(s.0).unwrap(), kcmp::FdNum::new(s.1).unwrap());
            let Some(d) = d else {
                if tally.missing_fds == 0 && missing == 0 {
                    eprintln!(
                        "{mode}: {s:?} missing; skipped {:?}, skipped fds {:?}, changed {:?}",
                        map.skipped, map.skipped_fds, map.changed_fds
                    );
                }
                missing += 1;
                continue;
            };
            let members: BTreeSet<(i32, i32)> = d
                .members
                .iter()
                .map(|m| (m.pid.get(), m.fd.get()))
                .collect();
            let stable_here: BTreeSet<(i32, i32)> = members
                .iter()
                .copied()
                .filter(|m| groups.iter().any(|g| g.contains(m)))
                .collect();
            if &stable_here != g || members.iter().any(|&m| !allowed(mode, m, g, &stable_pids)) {
                if tally.wrong_fds == 0 && wrong == 0 {
                    eprintln!(
                        "{mode}: {s:?} reported with {members:?}; changed {:?}",
                        map.changed_fds
                    );
                }
                wrong += 1;
            }
        }
    }
    // dup2-many: each extra description is exactly (P, n) and (C, n);
    // pipe-swap-many: (P, n), (P, n + dups), (C, n ^ 1) and (C, n + dups).
    let swap = fx.truth()["swap"].as_bool() == Some(true);
    let dups = fx.truth()["dups"].as_i64().unwrap_or(0) as i32;
    let base = fx.truth()["many"]
        .get(0)
        .and_then(Value::as_i64)
        .unwrap_or(0) as i32;
    for n in fx.truth()["many"].as_array().into_iter().flatten() {
        let n = n.as_i64().unwrap() as i32;
        let want: BTreeSet<(i32, i32)> = match swap {
            false => stable_pids.iter().map(|&p| (p, n)).collect(),
            true => BTreeSet::from([
                (stable_pids[0], n),
                (stable_pids[0], n + dups),
                (stable_pids[1], base + ((n - base) ^ 1)),
                (stable_pids[1], n + dups),
            ]),
        };
        for &(p, f) in &want {
            match map.description_of(Pid::new(p).unwrap(), kcmp::FdNum::new(f).unwrap()) {
                None => missing += 1,
                Some(d) => {
                    let got: BTreeSet<(i32, i32)> = d
                        .members
                        .iter()
                        .map(|m| (m.pid.get(), m.fd.get()))
                        .collect();
                    wrong += (got != want) as u32;
                }
            }
        }
    }
    tally.scans += 1;
    tally.wrong_fds += wrong;
    tally.missing_fds += missing;
    tally.scans_wrong += (wrong > 0) as u32;
    tally.scans_missing += (missing > 0) as u32;
}

fn scans() -> u32 {
    std::env::var("KCMP_CHURN_SCANS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

/// One churn test at a time: two busy churners per test already fill the
/// two cores of a CI machine.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Scans the fixture of `mode` again and again, without and with freezing.
fn churn(mode: &str) {
    churn_as(mode, false);
}

/// [`churn`], with this process holding a POSIX record lock (on a file of
/// its own) when `locked`: the engine then never copies that file.
fn churn_as(mode: &str, locked: bool) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let _lock = locked.then(|| {
        let path = std::env::temp_dir().join(format!("kcmp-churn-lock-{}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .unwrap();
        let _ = std::fs::remove_file(&path);
        rustix::fs::fcntl_lock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
            .expect("F_SETLK");
        file
    });
    let fx = Fixture::spawn(mode);
    let (p, c) = (fx.pid("parent"), fx.pid("child"));
    let mut results = Vec::new();
    for freeze in [false, true] {
        let options = ScanOptions {
            pids: if mode == "fork-exit" {
                vec![]
            } else {
                vec![Pid::new(p).unwrap(), Pid::new(c).unwrap()]
            },
            trees: if mode == "fork-exit" {
                vec![Pid::new(p).unwrap()]
            } else {
                vec![]
            },
            freeze,
            skip_epoll: true,
            workers: 2,
            ..ScanOptions::default()
        };
        let mut tally = Tally::default();
        for _ in 0..scans() {
            match scan(&options) {
                Ok(map) => check(&map, &fx, mode, &mut tally),
                Err(e) => panic!("{mode}: scan failed: {e}"),
            }
        }
        eprintln!("churn {mode} freeze={freeze}: {tally:?}");
        results.push((freeze, tally));
    }
    for (freeze, t) in results {
        assert!(
            t.wrong_fds == 0 && t.missing_fds == 0,
            "{mode} (freeze {freeze}): {} wrong and {} missing stable fds in {} of {} scans",
            t.wrong_fds,
            t.missing_fds,
            t.scans_wrong.max(t.scans_missing),
            t.scans
        );
    }
}

#[test]
fn dup2_churn_never_merges_or_drops_stable_fds() {
    churn("dup2");
}

/// The file's bucket mostly distinct descriptions: its fds are placed by
/// searching with the engine's copy first (`pipeline::tactics`).
#[test]
fn dup2_churn_with_many_descriptions_copy_first_stays_exact() {
    churn("dup2-many");
}

#[test]
fn open_close_churn_never_merges_or_drops_stable_fds() {
    churn("open-close");
}

#[test]
fn fork_exit_churn_never_merges_or_drops_stable_fds() {
    churn("fork-exit");
}

#[test]
fn rename_churn_never_splits_a_description() {
    churn("rename");
}

/// Two memfds of one name while fds 30..37 switch between them: their
/// mount (the kernel's internal shmem mount) is in no mount table, and is
/// known as safe to copy from the engine's own memfd. Before that, members
/// stood in as representatives and 9 to 46 of 50 scans were wrong.
#[test]
fn memfd_dup2_churn_stays_exact() {
    churn("memfd");
}

/// dup2 churn while the caller holds a POSIX lock on a file of its own:
/// only that file is never copied. Before, no copies at all were taken and
/// members standing in made most scans wrong.
#[test]
fn dup2_churn_with_a_posix_lock_held_stays_exact() {
    churn_as("dup2", true);
}

/// One pipe's bucket of mostly distinct descriptions (its two ends and
/// forty reopens), no path: copied first, with dup2 churn between the ends.
#[test]
fn pipe_dup2_churn_with_many_descriptions_stays_exact() {
    churn("pipe-many");
}

/// `pipe-many` where the child's inheritance hints for the extra
/// descriptions miss (it swapped them in pairs) and the parent holds a dup
/// of each (found among its own descriptions).
#[test]
fn pipe_dup2_churn_with_failing_hints_and_own_dups_stays_exact() {
    churn("pipe-swap-many");
}

/// A pipe's bucket of over 1024 fds (600 extra descriptions): grouped in
/// parts on both workers and merged back, under dup2 churn.
#[test]
fn pipe_dup2_churn_in_a_split_bucket_stays_exact() {
    churn("pipe-big-many");
}
