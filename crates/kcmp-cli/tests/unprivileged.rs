//! Unprivileged use: `kcmp scan` and `kcmp holders` run as an unused uid
//! while one topology runs as that uid and another as root. The user's
//! processes are inspected exactly; root's are skipped with EPERM; exit 0.
//!
//! Needs root (to drop to the uid); without it the test says so and passes
//! nothing off as checked.

use kcmp_testkit::process::JsonFixture;
use kcmp_testkit::scan_json::{fd_ref, groups, partition};
use kcmp_testkit::{cli, topology_bin, FdRef, Topology, Truth};
use serde_json::Value;
use std::collections::{BTreeSet, HashSet};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

/// An unused uid and gid.
const UID: u32 = 54321;

/// A topology fixture running as [`UID`] (ended when dropped).
struct UserTopology {
    _running: JsonFixture,
    truth: Truth,
}

impl UserTopology {
    fn spawn(args: &[&str]) -> UserTopology {
        let bin = topology_bin().unwrap_or_else(|e| panic!("{e}"));
        let mut command = Command::new(bin);
        command.uid(UID).gid(UID);
        Self::start(command, args)
    }

    /// A topology running as root without `CAP_SYS_PTRACE`.
    fn spawn_without_ptrace(args: &[&str]) -> UserTopology {
        let bin = topology_bin().unwrap_or_else(|e| panic!("{e}"));
        let mut command = Command::new(bin);
        without_cap_sys_ptrace(&mut command);
        Self::start(command, args)
    }

    fn start(mut command: Command, args: &[&str]) -> UserTopology {
        command
            .arg("general")
            .args(args)
            .current_dir("/")
            .env("TMPDIR", "/tmp")
            .stderr(Stdio::inherit());
        let running = JsonFixture::start(&mut command, Duration::from_secs(120));
        let truth = Truth::from_json(&running.line)
            .unwrap_or_else(|e| panic!("bad truth ({e}): {}", running.line));
        UserTopology {
            _running: running,
            truth,
        }
    }
}

/// Runs kcmp as [`UID`].
fn kcmp_as_user(args: &[&str]) -> (i32, String, String) {
    cli::output_of(
        Command::new(env!("CARGO_BIN_EXE_kcmp"))
            .args(args)
            .uid(UID)
            .gid(UID)
            .current_dir("/")
            .env("NO_COLOR", "1"),
    )
}

/// Runs `command` without `CAP_SYS_PTRACE`: dropped from the bounding set,
/// so root's exec keeps every other capability but that one.
fn without_cap_sys_ptrace(command: &mut Command) {
    // SAFETY: between fork and exec the closure makes one prctl system call
    // and allocates nothing (async-signal-safe).
    unsafe {
        command.pre_exec(|| {
            rustix::thread::remove_capability_from_bounding_set(
                rustix::thread::CapabilitySet::SYS_PTRACE,
            )
            .map_err(Into::into)
        });
    }
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[test]
fn scan_and_holders_as_an_unprivileged_user() {
    assert!(
        is_root(),
        "this test drops to uid {UID}, which needs root (CI runs as root)"
    );
    let user = UserTopology::spawn(&["--procs", "4", "--fds", "6"]);
    let root_topo = Topology::spawn("general", &["--procs", "3", "--fds", "4", "--seed", "3"]);
    let user_pids: HashSet<i32> = user.truth.pids().into_iter().collect();

    // A whole-host scan as the user.
    let scan = cli::success_json(
        &format!("scan as uid {UID}"),
        kcmp_as_user(&["scan", "--json", "--include-unshared"]),
    );
    // The user's own processes are inspected exactly.
    assert_eq!(
        partition(&scan, &user_pids),
        user.truth.partition(),
        "the user's topology was not inspected exactly"
    );
    for kind in ["vm", "files", "fs", "sighand"] {
        let got = groups(&scan, kind, &user_pids);
        let want: BTreeSet<Vec<i32>> = user.truth.shared.groups(kind).iter().cloned().collect();
        assert_eq!(got, want, "{kind}");
    }
    // Root's live processes are skipped with EPERM, and none of them is a member.
    let skipped: Vec<(i64, String)> = scan["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["pid"].as_i64().unwrap(),
                s["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for pid in root_topo.truth().live_pids() {
        let entry = skipped.iter().find(|(p, _)| *p == pid as i64);
        assert_eq!(
            entry.map(|(_, r)| r.as_str()),
            Some("EPERM"),
            "root's process {pid} not skipped with EPERM"
        );
    }
    let root_pids: HashSet<i32> = root_topo.truth().pids().into_iter().collect();
    assert!(
        partition(&scan, &root_pids).is_empty(),
        "root's fds were reported to an unprivileged user"
    );
    // The user's processes are not skipped.
    for pid in user.truth.live_pids() {
        assert!(
            !skipped.iter().any(|(p, _)| *p == pid as i64),
            "the user's own process {pid} was skipped"
        );
    }

    // holders, as the user, on a description shared inside the user's topology.
    let shared = user
        .truth
        .files
        .iter()
        .find(|f| f.members.len() >= 2 && f.members.iter().any(|m| m.pid != f.members[0].pid))
        .expect("the general topology shares descriptions across processes");
    let m = shared.members[0];
    let (code, out, err) =
        kcmp_as_user(&["holders", &m.pid.to_string(), &m.fd.to_string(), "--json"]);
    assert_eq!(code, 0, "holders as uid {UID} failed: {err}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad JSON ({e}): {out}"));
    let mut got: Vec<FdRef> = v["holders"]
        .as_array()
        .unwrap()
        .iter()
        .map(fd_ref)
        .collect();
    got.sort_unstable();
    assert_eq!(got, shared.members, "holders of {} ({})", shared.label, out);

    // The human form exits 0 too, and never lists root's processes; the
    // note about them goes to stderr, never into the holder lines.
    let (code, out, err) = kcmp_as_user(&["holders", &m.pid.to_string(), &m.fd.to_string()]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("kcmp: skipped: "), "{err}");
    assert!(!out.contains("skipped"), "{out}");
    assert!(
        out.lines().all(|l| l.contains(") fd ")),
        "not a holder line: {out}"
    );
    for pid in &root_pids {
        assert!(
            !out.lines()
                .any(|l| l.split_whitespace().next() == Some(&pid.to_string())),
            "root's {pid} listed: {out}"
        );
    }

    // holders on root's fd: the user may not read its link, trouble naming
    // the errno the kernel gave (EACCES from /proc/PID/fd), not another.
    let root_pid = root_topo.root().to_string();
    let (code, out, err) = kcmp_as_user(&["holders", &root_pid, "2"]);
    assert_eq!(code, 2, "holders on root's fd as a user: {out}");
    assert!(err.contains("EACCES") && !err.contains("EPERM"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn doctor_as_an_unprivileged_user() {
    assert!(
        is_root(),
        "this test drops to uid {UID}, which needs root (CI runs as root)"
    );
    let (code, out, err) = kcmp_as_user(&["doctor", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad JSON ({e}): {out}"));
    assert_eq!(v["euid"], UID);
    assert_eq!(v["cap_sys_ptrace"], false, "{v}");
    assert_eq!(v["kcmp"]["works"], true, "{v}");
    // Its own children are always within reach, whatever Yama says (scope
    // 3 aside, which forbids attaching at all).
    let scope = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    if scope.unwrap_or(0) < 2 {
        assert_eq!(v["freeze"]["ptrace"]["works"], true, "{v}");
    }
    assert_eq!(v["freeze"]["sigstop"]["works"], true, "{v}");
}

/// The kinds of a task kcmp refuses (EPERM after its fd directory was
/// read: root without `CAP_SYS_PTRACE` against a task with more
/// capabilities, as a container's root meets the host's) cost that task's
/// own failed comparisons, not a second sort of everyone on sighand:
/// sighand is grouped within vm's groups when vm failed only on tasks that
/// are skipped anyway (before, a single refused task made the scan sort all
/// the others on sighand: 471 more calls for one such task here, not 10).
#[test]
fn a_task_kcmp_refuses_costs_only_its_own_comparisons() {
    assert!(
        is_root(),
        "this test drops CAP_SYS_PTRACE, which needs root (CI runs as root)"
    );
    let capped = UserTopology::spawn_without_ptrace(&["--procs", "60", "--fds", "3"]);
    let refused = Topology::spawn("general", &["--procs", "1", "--fds", "2", "--seed", "4"]);
    let tree = capped.truth.root.to_string();
    let scan = |extra: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kcmp"));
        command
            .args(["scan", "--json", "--include-unshared", "--tree", &tree])
            .args(extra)
            .env("NO_COLOR", "1");
        without_cap_sys_ptrace(&mut command);
        cli::success_json("scan without CAP_SYS_PTRACE", cli::output_of(&mut command))
    };
    let kinds_calls = |v: &Value| v["stats"]["kcmp_calls_by_phase"]["kinds"].as_u64().unwrap();
    let alone = scan(&[]);
    let refused_pid = refused.root().to_string();
    let with_refused = scan(&["--pid", &refused_pid]);

    // The refused task is skipped for kcmp's EPERM, not for its listing.
    let skipped = with_refused["skipped"].as_array().unwrap();
    let entry = skipped
        .iter()
        .find(|s| s["pid"].as_i64() == Some(refused.root() as i64))
        .unwrap_or_else(|| panic!("the refused task is not skipped: {with_refused}"));
    assert_eq!(entry["reason"], "EPERM", "{entry}");
    assert!(
        entry["detail"].as_str().unwrap().contains("kcmp"),
        "{entry}"
    );
    // Both scans are exact on the capped topology.
    let pids: HashSet<i32> = capped.truth.pids().into_iter().collect();
    for scan in [&alone, &with_refused] {
        assert_eq!(partition(scan, &pids), capped.truth.partition());
        for kind in ["vm", "files", "fs", "sighand"] {
            let got = groups(scan, kind, &pids);
            let want: BTreeSet<Vec<i32>> =
                capped.truth.shared.groups(kind).iter().cloned().collect();
            assert_eq!(got, want, "{kind}");
        }
    }
    // A second sort on sighand costs at least one call per task (the
    // check of its order alone); the refused task costs a few.
    let (a, b) = (kinds_calls(&alone), kinds_calls(&with_refused));
    assert!(
        b < a + pids.len() as u64 / 2,
        "one refused task added {} kinds calls to {a} ({} tasks)",
        b.saturating_sub(a),
        pids.len()
    );
}
