//! Exact on odd fds and odd processes (issues 9, 11 and 13): an O_PATH
//! socket, a main thread that exited, a thread with its own fd table, a
//! path longer than PATH_MAX, a self-scan, `include_self`, and the kcmp
//! calls by phase. Each fixture is a real process (`kcmp-oddities`) that
//! prints its truth and waits.

use kcmp::{FdNum, Pid};
use kcmp_map::holders::{find_holders, HoldersOptions};
use kcmp_map::{scan, ScanOptions, SharingMap};
use kcmp_testkit::process::JsonFixture;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A testkit binary next to this test's target directory (built if absent).
pub fn testkit_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let debug = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("kcmp-map-tests");
    kcmp_testkit::cli::testkit_bin_next_to(debug, name)
}

/// One test at a time: the self-scan must see no other test's fds appear.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

/// An oddities fixture (ended when dropped) and its truth.
struct Odd(JsonFixture);

impl Odd {
    fn spawn(args: &[&str]) -> Odd {
        Odd(JsonFixture::spawn(testkit_bin("kcmp-oddities"), args))
    }

    fn pid(&self, key: &str) -> Pid {
        Pid::new(self.0.json[key].as_i64().unwrap() as i32).unwrap()
    }

    fn fd(&self, key: &str) -> FdNum {
        FdNum::new(self.0.json[key].as_i64().unwrap() as i32).unwrap()
    }
}

fn scan_pids(pids: &[Pid]) -> SharingMap {
    scan(&ScanOptions {
        pids: pids.to_vec(),
        skip_epoll: true,
        ..ScanOptions::default()
    })
    .unwrap()
}

/// `(p, fd)` and `(c, fd)` in (pid, fd) order, as results are sorted (a
/// child's pid is lower than its parent's once pids wrap).
fn in_pid_order(p: Pid, c: Pid, fd: FdNum) -> Vec<(i32, i32)> {
    let mut v = vec![(p.get(), fd.get()), (c.get(), fd.get())];
    v.sort_unstable();
    v
}

fn members(map: &SharingMap, pid: Pid, fd: FdNum) -> Vec<(i32, i32)> {
    map.description_of(pid, fd)
        .unwrap_or_else(|| panic!("({pid}, {fd}) missing from the map"))
        .members
        .iter()
        .map(|m| (m.pid.get(), m.fd.get()))
        .collect()
}

#[test]
fn an_o_path_reopen_of_a_socket_is_its_own_description() {
    let _turn = turn();
    let odd = Odd::spawn(&["opath-socket"]);
    let (p, c) = (odd.pid("pid"), odd.pid("child"));
    let (sock, opath) = (odd.fd("socket"), odd.fd("opath"));
    let map = scan_pids(&[p, c]);
    assert_eq!(members(&map, p, sock), in_pid_order(p, c, sock));
    assert_eq!(members(&map, p, opath), in_pid_order(p, c, opath));
    let h = find_holders(p, opath, &HoldersOptions::default()).unwrap();
    let got: Vec<(i32, i32)> = h
        .holders
        .iter()
        .map(|h| (h.pid.get(), h.fd.get()))
        .collect();
    assert_eq!(got, in_pid_order(p, c, opath));
}

#[test]
fn a_process_whose_main_thread_exited_is_read_through_its_live_thread() {
    let _turn = turn();
    let odd = Odd::spawn(&["main-exit"]);
    let (p, c) = (odd.pid("pid"), odd.pid("child"));
    let (r, w) = (odd.fd("read"), odd.fd("write"));
    // Wait for the main thread to be gone.
    for _ in 0..100 {
        let st = kcmp_map::procfs::read_stat(p).unwrap();
        if st.is_zombie() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let map = scan_pids(&[p, c]);
    assert!(map.skipped.is_empty(), "{:?}", map.skipped);
    assert_eq!(members(&map, p, r), vec![(p.get(), r.get())]);
    let options = HoldersOptions {
        peer: true,
        ..HoldersOptions::default()
    };
    let h = find_holders(c, w, &options).unwrap();
    let peer = h.peer.expect("a pipe has a peer section");
    let got: Vec<(i32, i32)> = peer
        .holders
        .iter()
        .map(|h| (h.pid.get(), h.fd.get()))
        .collect();
    assert_eq!(got, vec![(p.get(), r.get())]);
}

#[test]
fn a_thread_with_its_own_fd_table_is_a_holder_in_its_own_right() {
    let _turn = turn();
    let odd = Odd::spawn(&["own-table"]);
    let (p, tid) = (odd.pid("pid"), odd.pid("tid"));
    let (r, dup) = (odd.fd("read"), odd.fd("dup"));
    let both = vec![(tid.get(), r.get()), (tid.get(), dup.get())];
    // Without --threads: the thread's table is inspected, and said so.
    let map = scan_pids(&[p]);
    assert_eq!(map.own_fd_tables, vec![tid]);
    assert_eq!(members(&map, tid, r), both);
    // scan --pid TID.
    let map = scan_pids(&[tid]);
    assert_eq!(members(&map, tid, r), both);
    // holders TID FD.
    let h = find_holders(tid, r, &HoldersOptions::default()).unwrap();
    let got: Vec<(i32, i32)> = h
        .holders
        .iter()
        .map(|h| (h.pid.get(), h.fd.get()))
        .collect();
    assert_eq!(got, both);
    // epoll-targets TID EPFD: the watched pipe end is held twice by the thread.
    let found = kcmp_map::epoll::epoll_targets(tid, odd.fd("epoll")).unwrap();
    assert_eq!(found.targets.len(), 1);
    let holders: Vec<(i32, i32)> = found.targets[0]
        .holders
        .iter()
        .map(|h| (h.pid.get(), h.fd.get()))
        .collect();
    assert_eq!(holders, both);
}

#[test]
fn a_path_longer_than_path_max_is_one_skipped_fd() {
    let _turn = turn();
    let odd = Odd::spawn(&["long-path"]);
    let (p, c) = (odd.pid("pid"), odd.pid("child"));
    let (long, pipe) = (odd.fd("long"), odd.fd("pipe"));
    let map = scan_pids(&[p, c]);
    assert!(map.skipped.is_empty(), "{:?}", map.skipped);
    assert!(
        map.skipped_fds
            .iter()
            .any(|s| s.pid == p && s.fd == long && s.reason == "ENAMETOOLONG"),
        "{:?}",
        map.skipped_fds
    );
    assert_eq!(members(&map, p, pipe), in_pid_order(p, c, pipe));
    let h = find_holders(c, pipe, &HoldersOptions::default()).unwrap();
    let got: Vec<(i32, i32)> = h
        .holders
        .iter()
        .map(|h| (h.pid.get(), h.fd.get()))
        .collect();
    assert_eq!(got, in_pid_order(p, c, pipe));
}

#[test]
fn a_self_scan_shows_only_the_callers_fds() {
    let _turn = turn();
    let (r, w) = std::io::pipe().unwrap();
    let before: std::collections::BTreeSet<i32> = kcmp_map::procfs::list_fds(Pid::this())
        .unwrap()
        .into_iter()
        .map(|e| e.fd.get())
        .collect();
    for options in [
        ScanOptions {
            pids: vec![Pid::this()],
            ..ScanOptions::default()
        },
        ScanOptions {
            trees: vec![Pid::this()],
            ..ScanOptions::default()
        },
    ] {
        let map = scan(&options).unwrap();
        let mine: std::collections::BTreeSet<i32> = map
            .open_files
            .iter()
            .flat_map(|d| d.members.iter())
            .filter(|m| m.pid == Pid::this())
            .map(|m| m.fd.get())
            .collect();
        // Every fd the scan reports as ours was ours before it began (the
        // listing above held one more: its own directory).
        assert!(
            mine.is_subset(&before),
            "phantom fds: {:?}",
            mine.difference(&before).collect::<Vec<_>>()
        );
        assert!(mine.contains(&r.as_raw_fd()) && mine.contains(&w.as_raw_fd()));
        let descriptions = map
            .open_files
            .iter()
            .filter(|d| d.members.iter().any(|m| m.pid == Pid::this()))
            .count();
        assert!(
            descriptions <= before.len(),
            "{descriptions} descriptions for {} fds",
            before.len()
        );
    }
}

#[test]
fn include_self_is_on_by_default_as_documented() {
    let _turn = turn();
    assert!(HoldersOptions::default().include_self);
    // A pipe held here and by a child: querying the child's end finds ours.
    let (r, _w) = std::io::pipe().unwrap();
    let kid = Command::new("sleep")
        .arg("30")
        .stdin(Stdio::from(r.try_clone().unwrap()))
        .spawn()
        .unwrap();
    let mut kid = kcmp_testkit::process::Kid(kid);
    let kid_pid = Pid::new(kid.pid()).unwrap();
    let h = find_holders(kid_pid, FdNum::new(0).unwrap(), &HoldersOptions::default()).unwrap();
    let got: Vec<(i32, i32)> = h
        .holders
        .iter()
        .map(|h| (h.pid.get(), h.fd.get()))
        .collect();
    assert!(got.contains(&(Pid::this().get(), r.as_raw_fd())), "{got:?}");
    assert!(got.contains(&(kid_pid.get(), 0)), "{got:?}");
    let off = HoldersOptions {
        include_self: false,
        ..HoldersOptions::default()
    };
    let h = find_holders(kid_pid, FdNum::new(0).unwrap(), &off).unwrap();
    assert!(h.holders.iter().all(|h| h.pid != Pid::this()));
    let _ = kid.0.kill();
}

#[test]
fn kcmp_calls_are_reported_by_phase() {
    let _turn = turn();
    let odd = Odd::spawn(&["opath-socket"]);
    let map = scan(&ScanOptions {
        trees: vec![odd.pid("pid")],
        ..ScanOptions::default()
    })
    .unwrap();
    let by = &map.stats.kcmp_calls_by_phase;
    let keys: Vec<&str> = by.keys().map(String::as_str).collect();
    assert_eq!(keys, vec!["epoll", "files", "kinds"]);
    assert_eq!(by.values().sum::<u64>(), map.stats.kcmp_calls);
    // Two processes sharing two descriptions: files compared, kinds too.
    assert!(by["files"] >= 2 && by["kinds"] >= 6, "{by:?}");
}
