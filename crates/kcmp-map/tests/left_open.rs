//! A library caller goes on scanning after a scan left a copy open.
//!
//! `kcmp-hang-fixture fuse-swap` switches two fds between a pipe or a local
//! file and a file of a FUSE server that answers nobody but the fixture:
//! now and then the engine's copy of such an fd turns out to be the FUSE
//! file and is left open in this process (`stats.copies_left_open`),
//! since closing it would wait for the server forever. Every child forked
//! afterwards (the sentinels of the process kinds, the freezer) inherits
//! that copy and cannot exit; the scans after it must return all the same.
//! Dropping the fixture aborts the FUSE connection, which releases them.

use kcmp::Pid;
use kcmp_map::{scan, ScanOptions};
use kcmp_testkit::process::{no_fuse, JsonFixture};
use std::time::Duration;

/// Runs `scan(options)` on a thread: its answer, or `None` after `limit`.
fn scan_within(options: ScanOptions, limit: Duration) -> Option<kcmp::Result<u64>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(scan(&options).map(|m| m.stats.copies_left_open));
    });
    rx.recv_timeout(limit).ok()
}

#[test]
fn scans_after_a_copy_was_left_open_still_return() {
    if let Some(why) = no_fuse() {
        eprintln!("skipped: {why}");
        return;
    }
    let fx = JsonFixture::spawn(
        kcmp_testkit::workspace_bin("kcmp-hang-fixture"),
        &["fuse-swap"],
    );
    let holder = Pid::new(fx.json["holder"].as_i64().unwrap() as i32).unwrap();
    let options = |freeze| ScanOptions {
        pids: vec![holder],
        skip_epoll: true,
        freeze,
        ..ScanOptions::default()
    };
    let mut left = 0;
    for _ in 0..300 {
        let answer = scan_within(options(false), Duration::from_secs(20));
        left += answer.expect("a scan returns").expect("a scan succeeds");
        if left > 0 {
            break;
        }
    }
    assert!(
        left > 0,
        "no copy was left open in 300 scans: the race was not hit"
    );
    for freeze in [false, true] {
        let answer = scan_within(options(freeze), Duration::from_secs(30));
        let answer = answer.unwrap_or_else(|| panic!("a scan (freeze {freeze}) hung"));
        // A frozen scan may be refused (the freezer could not start): an
        // answer, not a hang.
        if !freeze {
            answer.expect("a scan succeeds");
        }
    }
    drop(fx);
}
