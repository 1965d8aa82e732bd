//! What the file grouping's kcmp calls depend on, on a real topology: the
//! same processes cost about the same calls whether their family's top
//! task is the top of the scan or has a selected parent of its own (as
//! every process of a whole-host scan has: init).

use kcmp::Pid;
use kcmp_map::procfs::TaskStat;
use kcmp_map::{scan, ScanOptions, SharingMap};
use kcmp_testkit::process::JsonFixture;
use kcmp_testkit::topology_bin;
use std::process::Command;
use std::time::Duration;

fn scan_tree(top: i32) -> SharingMap {
    scan(&ScanOptions {
        trees: vec![Pid::new(top).unwrap()],
        skip_epoll: true,
        // Two workers, whatever this machine has: a big bucket is grouped
        // in parts only on more than one.
        workers: 2,
        ..ScanOptions::default()
    })
    .unwrap()
}

fn files_calls(map: &SharingMap) -> u64 {
    map.stats.kcmp_calls_by_phase["files"]
}

/// A big bucket (one file opened separately by 100 processes, and
/// inherited by them) is grouped in parts on two workers, after its
/// shallowest fds: before, only fds of tasks without a selected parent
/// came first, so under a selected parent the root's fds went into the
/// first part, the second part's inheritance hints pointed nowhere, and
/// its fds were searched for (8,918 calls from the root, 10,054 from its
/// parent; now 8,921).
#[test]
fn hints_work_in_a_split_bucket_under_a_selected_parent() {
    let bin = topology_bin().unwrap_or_else(|e| panic!("{e}"));
    // A shell waits for the topology: the topology's root has a parent.
    let mut command = Command::new("/bin/sh");
    command
        .args(["-c", "\"$0\" \"$@\"; :"])
        .arg(bin)
        .args(["general", "--procs", "100", "--fds", "40", "--seed", "11"]);
    let fixture = JsonFixture::start(&mut command, Duration::from_secs(60));
    let root = fixture.json["root"].as_i64().unwrap() as i32;
    let stat = std::fs::read_to_string(format!("/proc/{root}/stat")).unwrap();
    let shell = TaskStat::parse(&stat).unwrap().ppid;

    let from_root = scan_tree(root);
    let from_shell = scan_tree(shell);
    assert!(
        from_root.stats.buckets_split >= 1 && from_shell.stats.buckets_split >= 1,
        "no bucket was big enough to split: the test shows nothing"
    );
    // The shell's few fds (stdin, stdout, stderr) cost a few calls more.
    let (a, b) = (files_calls(&from_root), files_calls(&from_shell));
    assert!(
        b <= a + a / 50,
        "the same topology under a selected parent: {b} calls, from its root: {a}"
    );
}

fn scan_tree_on(top: i32, workers: usize) -> SharingMap {
    scan(&ScanOptions {
        trees: vec![Pid::new(top).unwrap()],
        skip_epoll: true,
        workers,
        ..ScanOptions::default()
    })
    .unwrap()
}

/// A big bucket across three levels of processes: the fds that children
/// inherited at every level come before the parts, so every fd whose
/// inheritance hint holds joins through it in any part, as on one worker
/// (no parts). Before, a part held the fds of the middle level that the
/// other part's fds had as hints: with only the top task's fds first,
/// 1,506 fds joined through their hints on two workers, 2,040 on one (the
/// whole scan's files calls, two workers: 19,361 before, 15,167 now; one
/// worker: 13,009; what is left is the merge of the parts).
#[test]
fn hints_work_in_a_split_bucket_at_every_level() {
    let bin = topology_bin().unwrap_or_else(|e| panic!("{e}"));
    let fixture = JsonFixture::spawn(
        bin,
        &[
            "shape",
            "--procs",
            "120",
            "--fds",
            "20",
            "--inherit",
            "80",
            "--opens",
            "10",
            "--depth",
            "3",
            "--paths",
            "1",
            "--seed",
            "5",
        ],
    );
    let root = fixture.json["root"].as_i64().unwrap() as i32;
    let one = scan_tree_on(root, 1);
    let two = scan_tree_on(root, 2);
    assert!(
        two.stats.buckets_split >= 1,
        "no bucket was split: the test shows nothing"
    );
    assert!(one.stats.fds_joined_by_hint > 1000, "{:?}", one.stats);
    assert_eq!(
        two.stats.fds_joined_by_hint, one.stats.fds_joined_by_hint,
        "fds joined through their inheritance hint, two workers against one"
    );
}

/// Copying first (where most fds that reach a search are new
/// descriptions) comes after the inheritance hint, which is tried with the
/// live fd: a copy taken before a hint that holds is wasted. On few
/// processes holding many fds, inherited by children that hold them all
/// and opened by each separately, the copies taken outnumbered the
/// descriptions found (the wide shape of the suite: 67,553 copies for
/// 32,681 descriptions; here 13,337 for 7,921), now 7,628 here: one copy
/// anchors each description compared (a bucket of one needs none), and
/// the rest were taken first for an fd that then joined.
#[test]
fn copies_first_are_not_wasted_on_inheritance_hints_that_hold() {
    let bin = topology_bin().unwrap_or_else(|e| panic!("{e}"));
    let fixture = JsonFixture::spawn(bin, &["shape", "--procs", "4", "--fds", "3000"]);
    let root = fixture.json["root"].as_i64().unwrap() as i32;
    let map = scan_tree_on(root, 2);
    let descriptions = map.open_files.len() as u64;
    let (copies, hinted) = (map.stats.copies_taken, map.stats.fds_joined_by_hint);
    assert!(
        hinted > 5000,
        "few hints held: the test shows nothing: {:?}",
        map.stats
    );
    eprintln!(
        "{copies} copies taken for {descriptions} descriptions ({hinted} fds joined by hint)"
    );
    assert!(
        copies <= descriptions + descriptions / 4,
        "{copies} copies taken for {descriptions} descriptions ({hinted} fds joined by hint)"
    );
}
