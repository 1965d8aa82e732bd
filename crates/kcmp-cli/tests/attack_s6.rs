//! Adversarial tests of the 0.2 engine's copies (session 6 attack).
//!
//! A copy (anchor) can become the last reference to its description when
//! every holder closes its fd during the scan. The closer thread then runs
//! the file's `release`. For a block device with dirty pages that last
//! close is `sync_blockdev`, an *uninterruptible* wait for its writeback:
//! a loop device whose backing file sits on a frozen filesystem (a backup's
//! `fsfreeze`, an LVM snapshot's suspend) waits until the thaw. A thread in
//! that wait cannot be killed, so the `kcmp` process could not finish
//! exiting and its caller waited with it: the scan printed its answer, but
//! the command did not return while the freeze lasted. Block devices' copies
//! are now closed by a process of their own (`kcmp_map`'s outside closer).
//!
//! The same holds for a regular file on ext4 whose device's I/O is stuck
//! (its last close may start delayed allocation and wait for the journal):
//! not fixed (its test is ignored), since sending every file's copy out
//! cost a fifth of a scan.
//!
//! Fixture: `kcmp-frozen-bdev` (root, `/usr/sbin/mkfs.ext4`, loop devices).

use kcmp_testkit::cli::{testkit_bin_next_to, Spawned};
use kcmp_testkit::process::{kernel_stacks, reap_within, JsonFixture};
use std::process::Command;
use std::time::{Duration, Instant};

fn kcmp() -> std::path::PathBuf {
    kcmp_testkit::cli::kcmp_under_test(env!("CARGO_BIN_EXE_kcmp"))
}

/// Whether process `pid` has an fd whose link is `target` now.
fn holds(pid: u32, target: &str) -> bool {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    dir.flatten()
        .any(|e| std::fs::read_link(e.path()).is_ok_and(|l| l.as_os_str() == target))
}

/// How one attempt ended.
enum Attempt {
    Skip(String),
    /// kcmp finished before its copy was seen (or after the holder's close
    /// without holding the last reference): try again.
    Missed,
    Exited,
    Hung(String),
}

/// One race: `kcmp scan --pid P` (or `kcmp holders P FD` with `holders`)
/// against the fixture; the holder closes once kcmp holds its copy.
fn attempt(holders: bool, file: bool) -> Attempt {
    let bin = testkit_bin_next_to(env!("CARGO_BIN_EXE_kcmp"), "kcmp-frozen-bdev");
    let mut fx = JsonFixture::start(
        Command::new(bin).arg("8000").args(file.then_some("file")),
        Duration::from_secs(60),
    );
    if let Some(why) = fx.json["skip"].as_str() {
        return Attempt::Skip(why.to_string());
    }
    let pid = fx.json["pid"].as_i64().expect("pid");
    let dev = fx.json["dev"].as_str().expect("dev").to_string();
    let fd = fx.json["fd"].as_i64().expect("fd").to_string();
    let args: Vec<String> = if holders {
        vec!["holders".into(), pid.to_string(), fd]
    } else {
        vec![
            "scan".into(),
            "--pid".into(),
            pid.to_string(),
            "--json".into(),
        ]
    };
    let mut run = Spawned::start(kcmp(), &args);
    let kcmp_pid = run.id();
    let mut seen = false;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if holds(kcmp_pid, &dev) {
            seen = true;
            break;
        }
        if run.child().try_wait().ok().flatten().is_some() {
            break;
        }
    }
    if seen {
        fx.send_line("close").expect("tell the holder to close");
    }
    match run.wait_within(Duration::from_secs(10)) {
        Ok(_) if seen => Attempt::Exited,
        Ok(_) => Attempt::Missed,
        Err(mut child) => {
            let stacks = kernel_stacks(child.id());
            // Thaw (the fixture ends on EOF): the close finishes, kcmp exits.
            drop(fx);
            let reaped = reap_within(&mut child, Duration::from_secs(30));
            if !reaped {
                let _ = child.kill();
                let _ = child.wait();
            }
            Attempt::Hung(stacks)
        }
    }
}

/// Races of `kcmp scan` (or `kcmp holders`) in which the holder closes,
/// while kcmp holds its copy; panics when kcmp does not exit.
fn races(holders: bool, file: bool) {
    // One fixture at a time: each sets up two loop devices and a freeze.
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let mut exited = 0;
    for _ in 0..12 {
        match attempt(holders, file) {
            Attempt::Skip(why) => {
                eprintln!("skipped: {why}");
                return;
            }
            Attempt::Missed => continue,
            Attempt::Exited => exited += 1,
            Attempt::Hung(stacks) => panic!(
                "kcmp did not exit within 10 s after the holder closed its block device \
                 (it returned once the filesystem was thawed); kernel stacks:\n{stacks}"
            ),
        }
        if exited == 4 {
            return;
        }
    }
    eprintln!("only {exited} races in which kcmp held its copy when the holder closed");
}

/// The holder closes every fd of a block device while the scan holds the
/// engine's copy; the copy's close (the last one) waits until a frozen
/// filesystem is thawed. `kcmp scan` must still return.
#[test]
fn the_last_close_of_a_block_device_never_holds_back_the_exit_of_kcmp_scan() {
    races(false, false);
}

/// The same for `kcmp holders PID FD` (its one copy, of the queried fd).
#[test]
fn the_last_close_of_a_block_device_never_holds_back_the_exit_of_kcmp_holders() {
    races(true, false);
}

/// The same with a regular file on an ext4 whose device's I/O is stuck: its
/// last close (truncated and rewritten: delayed allocation) waits for a
/// journal handle, uninterruptibly. Where the fixture's own writes after
/// the freeze already wait on it (ext4 pushing delayed allocation out when
/// free space runs low: it depends on the machine), the fixture thaws and
/// the test says "skipped".
///
/// Ignored: a known limit. Regular files' copies are closed by the engine's
/// closer thread, not sent out (that cost a fifth of a scan whose
/// descriptions are mostly new); only block devices' are.
#[test]
#[ignore = "known limit: regular files' copies are closed in the process (README, known limits)"]
fn the_last_close_of_a_file_with_its_io_stuck_never_holds_back_the_exit_of_kcmp_scan() {
    races(false, true);
}
