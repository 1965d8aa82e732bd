//! `kcmp-orphans N SPREAD_MS`: a child subreaper whose N children (the
//! middles) each start one grandchild and then exit on cue, one after the
//! other over SPREAD_MS milliseconds; each grandchild, orphaned, is
//! reparented to the root and lives on. The root's tree holds every
//! grandchild all along: first under its middle, then under the root.
//!
//! Prints one JSON line, `{"root": R, "middles": [..], "grandchildren":
//! [..]}`, once all are started. The first line read on stdin starts the
//! middles' exits; at stdin's EOF the grandchildren exit, and the root
//! reaps everything and exits 0. Nothing outlives the root: the middles and
//! the grandchildren wait on pipes whose only writer is the root.

use std::io::{BufRead, Write};
use std::os::fd::OwnedFd;
use std::time::Duration;

/// Blocks until `fd` reaches EOF (its writers are all closed).
fn wait_eof(fd: &OwnedFd) {
    let mut b = [0u8; 1];
    while !matches!(rustix::io::read(fd, &mut b), Ok(0) | Err(_)) {}
}

/// `fork()`: 0 in the child, the child's pid in the parent.
fn fork() -> i32 {
    // SAFETY: this program is single-threaded (no thread is ever started),
    // so the child may run any code; fork takes no arguments.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    pid
}

/// A middle: starts its grandchild, reports its pid on `report`, waits for
/// `go` to close, then exits after `delay`.
fn middle(go: OwnedFd, end: OwnedFd, report: OwnedFd, delay: Duration) -> ! {
    let g = fork();
    if g == 0 {
        drop((go, report));
        wait_eof(&end);
        std::process::exit(0);
    }
    drop(end);
    let _ = rustix::io::write(&report, &g.to_ne_bytes());
    drop(report);
    wait_eof(&go);
    std::thread::sleep(delay);
    // SAFETY: _exit ends this process at once, running no destructor of
    // state the parent's copy also owns (stdio buffers).
    unsafe { libc::_exit(0) }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100);
    let spread_ms: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(30);
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) takes integer arguments only.
    let ret = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(ret, 0, "PR_SET_CHILD_SUBREAPER");
    let (go_r, go_w) = rustix::pipe::pipe().expect("pipe");
    let (end_r, end_w) = rustix::pipe::pipe().expect("pipe");
    let (mut middles, mut grandchildren) = (Vec::new(), Vec::new());
    for i in 0..n {
        let (rep_r, rep_w) = rustix::pipe::pipe().expect("pipe");
        let delay = Duration::from_micros(spread_ms * 1000 * i as u64 / n.max(1) as u64);
        let m = fork();
        if m == 0 {
            drop((go_w, end_w, rep_r));
            middle(go_r, end_r, rep_w, delay);
        }
        drop(rep_w);
        let mut b = [0u8; 4];
        let got = rustix::io::read(&rep_r, &mut b).expect("a grandchild's pid");
        assert_eq!(got, 4, "a grandchild's pid");
        middles.push(m);
        grandchildren.push(i32::from_ne_bytes(b));
    }
    drop((go_r, end_r));
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{{\"root\": {}, \"middles\": {middles:?}, \"grandchildren\": {grandchildren:?}}}",
        std::process::id()
    )
    .expect("stdout");
    out.flush().expect("stdout");
    drop(out);
    let mut lines = std::io::stdin().lock().lines();
    let _ = lines.next();
    drop(go_w);
    for _ in lines {}
    drop(end_w);
    // SAFETY: wait(NULL) reaps any child (a middle, or an orphaned
    // grandchild come back to this subreaper); it writes no memory.
    while unsafe { libc::wait(std::ptr::null_mut()) } > 0 {}
}
