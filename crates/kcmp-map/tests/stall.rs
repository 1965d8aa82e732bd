//! `FreezeOptions::release_when_stalled`: a frozen set is released within
//! 1 s of this process's last step of work (`kcmp_map::freeze::progress`)
//! even though its heartbeat thread keeps beating (a hang in kcmp's working
//! thread), and only when asked: by default a set held idle stays frozen.
//!
//! The frozen child is this test binary re-executed in a role
//! (`KCMP_STALL_ROLE`), so no fork happens inside the test harness. The
//! tests run one at a time (a freeze by one would count as progress for
//! the other) and read /proc with std only, never through `kcmp_map`
//! (whose /proc reads count as progress).

use kcmp::Pid;
use kcmp_map::freeze::{freeze_with, progress, FreezeOptions, Release};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const ROLE_VAR: &str = "KCMP_STALL_ROLE";

/// One test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Child entry point: sleeps in a loop when re-executed with the role set.
#[test]
fn role_entry() {
    if std::env::var(ROLE_VAR).is_ok() {
        loop {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// The sleeping child, killed and reaped on drop.
struct Sleeper(Child);

impl Sleeper {
    fn spawn() -> Sleeper {
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "role_entry", "--test-threads=1"])
            .env(ROLE_VAR, "sleeper")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the sleeper");
        let s = Sleeper(child);
        // Running (sleeping between ticks) before it is frozen.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !matches!(s.state(), Some('S' | 'R')) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        s
    }

    fn pid(&self) -> Pid {
        Pid::new(self.0.id() as i32).unwrap()
    }

    /// Its state letter, read with std (not a step of kcmp_map's).
    fn state(&self) -> Option<char> {
        let text = std::fs::read_to_string(format!("/proc/{}/stat", self.0.id())).ok()?;
        text[text.rfind(')')? + 1..].trim_start().chars().next()
    }

    fn stopped(&self) -> bool {
        matches!(self.state(), Some('t' | 'T'))
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn options(release_when_stalled: bool) -> FreezeOptions {
    FreezeOptions {
        max_frozen: Duration::from_secs(10),
        release_when_stalled,
        ..FreezeOptions::default()
    }
}

/// Watches the child for `span`, calling `work` every 100 ms; returns when
/// it was first seen running again, if it was.
fn watch(child: &Sleeper, span: Duration, work: impl Fn()) -> Option<Duration> {
    let start = Instant::now();
    let mut last_work = start;
    while start.elapsed() < span {
        if !child.stopped() {
            return Some(start.elapsed());
        }
        if last_work.elapsed() >= Duration::from_millis(100) {
            work();
            last_work = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

#[test]
fn a_stalled_set_is_released_within_a_second() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let child = Sleeper::spawn();
    let set = freeze_with(&[child.pid()], &options(true)).unwrap();
    // The last step of this process was the freeze itself: from now on it
    // makes no progress, while its heartbeat thread beats on.
    assert!(set.is_frozen(child.pid()), "{:?}", set.not_frozen());
    assert!(child.stopped());
    let released = watch(&child, Duration::from_secs(3), || {});
    let took = released.expect("the child stayed stopped for 3 s without progress");
    eprintln!("released {took:?} after the last progress");
    assert!(took < Duration::from_secs(1), "released after {took:?}");
    // And it stays running for the rest of the 3 s.
    let rest = Duration::from_secs(3).saturating_sub(took);
    let until = Instant::now() + rest;
    while Instant::now() < until {
        assert!(!child.stopped(), "stopped again after the release");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(set.finish().unwrap(), Some(Release::Stalled));
    assert_eq!(Release::Stalled.code(), "stalled");
}

#[test]
fn an_idle_set_stays_frozen_by_default() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    assert!(!FreezeOptions::default().release_when_stalled);
    let child = Sleeper::spawn();
    let set = freeze_with(&[child.pid()], &FreezeOptions::default()).unwrap();
    assert!(set.is_frozen(child.pid()), "{:?}", set.not_frozen());
    let released = watch(&child, Duration::from_secs(3), || {});
    assert_eq!(released, None, "an idle set was released (by default)");
    assert_eq!(set.finish().unwrap(), None);
    assert!(watch(&child, Duration::from_secs(5), || {}).is_some());
}

#[test]
fn a_set_that_makes_progress_stays_frozen() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let child = Sleeper::spawn();
    let set = freeze_with(&[child.pid()], &options(true)).unwrap();
    assert!(set.is_frozen(child.pid()), "{:?}", set.not_frozen());
    let released = watch(&child, Duration::from_secs(3), progress);
    assert_eq!(released, None, "released although progress was made");
    assert_eq!(set.finish().unwrap(), None);
    assert!(watch(&child, Duration::from_secs(5), || {}).is_some());
}
