//! A library caller that ignores SIGCHLD or reaps every child it has: the
//! sentinels are its children too. Each test runs again in a process of its
//! own (the reaping would take other tests' children), started with
//! SIGCHLD ignored where asked (`kcmp-sigchld-ignored`: an ignored signal
//! stays ignored across exec).

use kcmp::Pid;
use kcmp_map::sentinel::Sentinels;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Set in the copies of this test binary that the tests start.
const ALONE: &str = "KCMP_TEST_REAPING_CALLER";

fn rerun_alone(test: &str, ignore_sigchld: bool) {
    let exe = std::env::current_exe().expect("the test binary");
    let mut cmd = match ignore_sigchld {
        true => {
            let mut c = Command::new(kcmp_testkit::workspace_bin("kcmp-sigchld-ignored"));
            c.arg(exe);
            c
        }
        false => Command::new(exe),
    };
    let out = cmd
        .args([test, "--exact", "--test-threads=1", "--nocapture"])
        .env(ALONE, "1")
        .output()
        .expect("sh runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether this process ignores SIGCHLD (`SigIgn` in its status).
fn ignores_sigchld() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .expect("SigIgn");
    mask & (1 << (libc::SIGCHLD - 1)) != 0
}

/// The zombie sentinel is there, unreaped, and the live ones too.
fn assert_sentinels_ready(s: &Sentinels) {
    let z = s.zombie_pid().expect("the zombie sentinel is still there");
    let stat = kcmp_map::procfs::read_stat(z).expect("its stat");
    assert!(stat.is_zombie(), "sentinel {z} is {}", stat.state);
    for p in s.live_pids() {
        let state = kcmp_map::procfs::read_stat(p)
            .expect("a live sentinel")
            .state;
        assert_ne!(state, 'Z', "live sentinel {p}");
    }
}

#[test]
fn sentinels_stay_when_the_caller_ignores_sigchld() {
    if std::env::var_os(ALONE).is_none() {
        return rerun_alone("sentinels_stay_when_the_caller_ignores_sigchld", true);
    }
    assert!(ignores_sigchld(), "the test must run with SIGCHLD ignored");
    // The kernel reaps an exiting child of such a caller at once, unless
    // its exit signal is not SIGCHLD.
    let s = Sentinels::start().expect("sentinels");
    assert_sentinels_ready(&s);
}

struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[test]
fn sentinels_stay_when_the_caller_reaps_every_child() {
    if std::env::var_os(ALONE).is_none() {
        return rerun_alone("sentinels_stay_when_the_caller_reaps_every_child", false);
    }
    // A thread that reaps whatever child exits (`waitpid(-1)`), as daemons
    // do; a child of its own shows that it reaps.
    let stop = AtomicBool::new(false);
    let reaped = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                match rustix::process::wait(rustix::process::WaitOptions::NOHANG) {
                    Ok(Some(_)) => drop(reaped.fetch_add(1, Ordering::Relaxed)),
                    _ => std::thread::sleep(std::time::Duration::from_micros(100)),
                }
            }
        });
        // The reaper ends even when an assertion below fails.
        let _stop = StopOnDrop(&stop);
        let mut own = Command::new("/bin/true").spawn().expect("true");
        let own_pid = Pid::new(own.id() as i32).expect("pid");
        while reaped.load(Ordering::Relaxed) == 0 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(
            own.try_wait().is_err(),
            "{own_pid} was reaped by the thread"
        );
        let s = Sentinels::start().expect("sentinels");
        assert_sentinels_ready(&s);
    });
}
