//! A library caller that forks after a scan, or whose main thread exited,
//! scans as well as any other (found by an adversarial review). Each case
//! runs in a forked child of this test's thread, which reports through its
//! exit status and a pipe; the tests take turns, and fork only while no
//! other thread of this binary scans.

use kcmp::{FdNum, Pid};
use kcmp_map::holders::{find_holders, HoldersOptions};
use kcmp_map::{scan, ScanOptions, SharingMap};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock().unwrap_or_else(|p| p.into_inner())
}

fn self_scan() -> kcmp::Result<SharingMap> {
    scan(&ScanOptions {
        pids: vec![Pid::this()],
        skip_epoll: true,
        ..ScanOptions::default()
    })
}

/// Runs `child` in a forked child; its exit status and what it wrote.
fn in_child(child: impl FnOnce(&mut std::fs::File) -> i32) -> (i32, String) {
    let (r, w) = rustix::pipe::pipe().unwrap();
    // SAFETY: no other thread of this binary scans meanwhile (one test at a
    // time); the child runs `child` (glibc's malloc is fork-safe) and exits
    // with _exit, never returning into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        drop(r);
        let mut out = std::fs::File::from(w);
        let run = std::panic::AssertUnwindSafe(|| child(&mut out));
        let code = std::panic::catch_unwind(run).unwrap_or(101);
        // SAFETY: ends the child here.
        unsafe { libc::_exit(code) };
    }
    drop(w);
    let mut text = String::new();
    std::fs::File::from(r).read_to_string(&mut text).unwrap();
    let mut status = 0;
    // SAFETY: waits for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    (status, text)
}

/// This process's fds in the description of `fd`.
fn members_of(map: &SharingMap, fd: &OwnedFd) -> Vec<i32> {
    let me = Pid::this();
    let d = map.description_of(me, FdNum::new(fd.as_raw_fd()).unwrap());
    let mut m: Vec<i32> = d.map_or(Vec::new(), |d| {
        d.members
            .iter()
            .filter(|m| m.pid == me)
            .map(|m| m.fd.get())
            .collect()
    });
    m.sort_unstable();
    m
}

/// A pipe, a dup of its read end, a self-scan: both read ends in one
/// description, and, once the write end is closed, EOF (the engine's
/// copies of the write end were closed). What went wrong, if anything.
fn pipe_scan_and_eof(out: &mut std::fs::File) -> i32 {
    let (r, w) = rustix::pipe::pipe().unwrap();
    let r2 = rustix::io::dup(&r).unwrap();
    let mut want = vec![r.as_raw_fd(), r2.as_raw_fd()];
    want.sort_unstable();
    let mut code = 0;
    match self_scan() {
        Ok(map) if members_of(&map, &r) == want => {}
        Ok(map) => {
            let _ = writeln!(out, "scan: {want:?} grouped as {:?}", members_of(&map, &r));
            code = 1;
        }
        Err(e) => {
            let _ = writeln!(out, "scan: {e}");
            code = 1;
        }
    }
    let fd = FdNum::new(r.as_raw_fd()).unwrap();
    match find_holders(Pid::this(), fd, &HoldersOptions::default()) {
        Ok(h) if h.holders.iter().filter(|h| h.pid == Pid::this()).count() == 2 => {}
        Ok(h) => {
            let _ = writeln!(out, "find_holders: {:?}", h.holders);
            code = 1;
        }
        Err(e) => {
            let _ = writeln!(out, "find_holders: {e}");
            code = 1;
        }
    }
    drop(w);
    rustix::fs::fcntl_setfl(&r, rustix::fs::OFlags::NONBLOCK).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    match rustix::io::read(&r, &mut [0u8; 1]) {
        Ok(0) => code,
        other => {
            let _ = writeln!(
                out,
                "no EOF ({other:?}): a copy of the write end stayed open"
            );
            1
        }
    }
}

/// A caller scans, then forks (a pre-fork server), and the child scans
/// itself: before the fix, its thread kept the parent thread's tid for
/// kcmp (refused, or kcmp on a dead tid), and it sent its copies to the
/// parent's closer thread, which a child does not have (never closed: a
/// pipe's reader got no EOF).
#[test]
fn a_forked_child_scans_after_its_parent_did() {
    let _turn = one_at_a_time();
    let (_p, _q) = rustix::pipe::pipe().unwrap();
    self_scan().expect("the parent's scan");
    // Forked while the parent's closer thread waits for more (idle).
    let (status, text) = in_child(pipe_scan_and_eof);
    assert_eq!(status, 0, "the child:\n{text}");
}

/// A process whose main thread exited (`pthread_exit` from main) scans
/// itself from its other thread: before the fix, its own fds were read
/// through the zombie main thread (none) and the holders query handed its
/// copy to kcmp under the main thread's pid (no fd table): the pipe was
/// missing and it had no holders.
#[test]
fn a_process_whose_main_thread_exited_scans_itself() {
    let _turn = one_at_a_time();
    let (status, text) = in_child(|out| {
        let me = std::process::id();
        let mut out = out.try_clone().unwrap();
        std::thread::spawn(move || {
            let leader = format!("/proc/{me}/task/{me}/stat");
            for _ in 0..500 {
                let stat = std::fs::read_to_string(&leader).unwrap_or_default();
                if stat
                    .rsplit(')')
                    .next()
                    .is_some_and(|s| s.trim_start().starts_with('Z'))
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let code = pipe_scan_and_eof(&mut out);
            // SAFETY: ends the whole child.
            unsafe { libc::_exit(code) };
        });
        // SAFETY: the main thread alone exits (not exit_group); the other
        // thread ends the process.
        unsafe { libc::syscall(libc::SYS_exit, 0) };
        unreachable!("SYS_exit returned")
    });
    assert_eq!(status, 0, "the child:\n{text}");
}
