//! kcmp_map::freeze against real processes: stop, resume exactly as before,
//! threads born during the freeze, kill-safety of the tracer.
//!
//! The fixture processes are this test binary re-executed in a "role"
//! (`KCMP_FREEZE_ROLE`), running only the `role_entry` function below, so no
//! fork happens inside the test harness.

use kcmp::Pid;
use kcmp_map::freeze::{freeze, FreezeOptions, NotFrozenKind};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ROLE_VAR: &str = "KCMP_FREEZE_ROLE";

/// Child entry point: does nothing unless this binary was re-executed with
/// `KCMP_FREEZE_ROLE` set, then plays that role until killed.
#[test]
fn role_entry() {
    let Ok(role) = std::env::var(ROLE_VAR) else {
        return;
    };
    use std::io::Write;
    let mut out = std::io::stdout();
    match role.as_str() {
        // Writes a byte every 2 ms: progress is visible on the pipe.
        "ticker" => loop {
            if out.write_all(b".").and_then(|_| out.flush()).is_err() {
                std::process::exit(0);
            }
            std::thread::sleep(Duration::from_millis(2));
        },
        // Creates short-lived threads all the time; each ticks once.
        "threads" => {
            let mut ring = std::collections::VecDeque::new();
            loop {
                ring.push_back(std::thread::spawn(|| {
                    let mut out = std::io::stdout();
                    if out.write_all(b".").and_then(|_| out.flush()).is_err() {
                        std::process::exit(0);
                    }
                    std::thread::sleep(Duration::from_millis(3));
                }));
                if ring.len() > 6 {
                    let _ = ring.pop_front().unwrap().join();
                }
                std::thread::sleep(Duration::from_micros(300));
            }
        }
        // Freezes the pid in KCMP_FREEZE_TARGET, reports, and waits to be killed.
        "freezer" => {
            let target: i32 = std::env::var("KCMP_FREEZE_TARGET")
                .unwrap()
                .parse()
                .unwrap();
            let set = freeze(&[Pid::new(target).unwrap()]).unwrap();
            writeln!(out, "\nfrozen {}", set.frozen().len()).unwrap();
            out.flush().unwrap();
            std::thread::sleep(Duration::from_secs(60));
            drop(set);
        }
        other => panic!("unknown role {other}"),
    }
}

/// A role child, killed and reaped on drop; counts the bytes it writes.
struct Role {
    child: Child,
    ticks: Arc<AtomicU64>,
}

impl Role {
    fn spawn(role: &str) -> Role {
        Role::spawn_with(role, &[])
    }

    fn spawn_with(role: &str, env: &[(&str, String)]) -> Role {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["--exact", "role_entry", "--nocapture", "--test-threads=1"])
            .env(ROLE_VAR, role)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(if role == "freezer" {
                Stdio::inherit()
            } else {
                Stdio::null()
            });
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn role");
        let ticks = Arc::new(AtomicU64::new(0));
        if role != "freezer" {
            let mut stdout = child.stdout.take().unwrap();
            let t = ticks.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stdout.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    t.fetch_add(n as u64, Ordering::SeqCst);
                }
            });
        }
        Role { child, ticks }
    }

    fn pid(&self) -> Pid {
        Pid::new(self.child.id() as i32).unwrap()
    }

    fn ticks(&self) -> u64 {
        self.ticks.load(Ordering::SeqCst)
    }

    /// True when the tick count grows within 5 s.
    fn makes_progress(&self) -> bool {
        let start = self.ticks();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.ticks() > start + 2 {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    /// True when the tick count stays put for 200 ms (after letting the pipe drain).
    fn stands_still(&self) -> bool {
        std::thread::sleep(Duration::from_millis(50));
        let a = self.ticks();
        std::thread::sleep(Duration::from_millis(200));
        a == self.ticks()
    }

    fn signal(&self, sig: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, sig).unwrap();
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn state_of(path: &str) -> Option<char> {
    let text = std::fs::read_to_string(path).ok()?;
    text[text.rfind(')')? + 1..].trim_start().chars().next()
}

fn state(pid: Pid) -> Option<char> {
    state_of(&format!("/proc/{pid}/stat"))
}

fn wait_for_state(pid: Pid, want: impl Fn(Option<char>) -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if want(state(pid)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

/// The states of every thread of `pid`.
fn thread_states(pid: Pid) -> Vec<(i32, char)> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let tid: i32 = e.unwrap().file_name().to_str().unwrap().parse().unwrap();
        if let Some(s) = state_of(&format!("/proc/{pid}/task/{tid}/stat")) {
            v.push((tid, s));
        }
    }
    v
}

fn is_stopped(s: Option<char>) -> bool {
    matches!(s, Some('t') | Some('T'))
}

#[test]
fn running_process_stops_and_resumes() {
    let r = Role::spawn("ticker");
    assert!(r.makes_progress());
    let set = freeze(&[r.pid()]).unwrap();
    assert_eq!(set.frozen(), &[r.pid()]);
    assert!(set.not_frozen().is_empty(), "{:?}", set.not_frozen());
    assert!(set.stopped_threads() >= 1);
    assert_eq!(state(r.pid()), Some('t'));
    assert!(r.stands_still(), "a frozen process kept writing");
    set.thaw().unwrap();
    assert!(wait_for_state(r.pid(), |s| !is_stopped(s)));
    assert!(r.makes_progress(), "no progress after thaw");
}

#[test]
fn drop_thaws_like_thaw() {
    let r = Role::spawn("ticker");
    {
        let set = freeze(&[r.pid()]).unwrap();
        assert!(set.is_frozen(r.pid()));
        assert!(r.stands_still());
    }
    assert!(r.makes_progress(), "no progress after the set was dropped");
}

#[test]
fn threads_created_while_freezing_are_caught() {
    let r = Role::spawn("threads");
    assert!(r.makes_progress());
    for round in 0..25 {
        let set = freeze(&[r.pid()]).unwrap();
        assert_eq!(
            set.frozen(),
            &[r.pid()],
            "round {round}: {:?}",
            set.not_frozen()
        );
        let states = thread_states(r.pid());
        let running: Vec<_> = states
            .iter()
            .filter(|(_, s)| !matches!(s, 't' | 'Z' | 'X'))
            .collect();
        assert!(
            running.is_empty(),
            "round {round}: threads not stopped: {running:?} of {states:?}"
        );
        let live = states.iter().filter(|(_, s)| *s == 't').count();
        assert_eq!(set.stopped_threads(), live, "round {round}: {states:?}");
        set.thaw().unwrap();
        assert!(r.makes_progress(), "round {round}: no progress after thaw");
    }
}

#[test]
fn stopped_process_stays_stopped_and_gets_no_sigcont() {
    use rustix::process::Signal;
    let r = Role::spawn("ticker");
    assert!(r.makes_progress());
    r.signal(Signal::STOP);
    assert!(wait_for_state(r.pid(), |s| s == Some('T')));
    let set = freeze(&[r.pid()]).unwrap();
    assert_eq!(set.frozen(), &[r.pid()]);
    assert_eq!(state(r.pid()), Some('t'));
    set.thaw().unwrap();
    // A SIGCONT would resume it: it must stay group-stopped and silent.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(state(r.pid()), Some('T'));
    assert!(r.stands_still(), "a stopped process ran after thaw");
    r.signal(Signal::CONT);
    assert!(r.makes_progress(), "no progress after our own SIGCONT");
}

#[test]
fn signals_sent_during_the_freeze_are_delivered_after() {
    use rustix::process::Signal;
    let mut r = Role::spawn("ticker");
    let set = freeze(&[r.pid()]).unwrap();
    assert_eq!(set.frozen(), &[r.pid()]);
    r.signal(Signal::USR1); // default action: terminate
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(state(r.pid()), Some('t'), "died while frozen");
    set.thaw().unwrap();
    let status = r.child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGUSR1), "{status:?}");
}

/// A "freezer" role holding `target` frozen, once it said so.
fn freezer_of(target: &Role) -> Role {
    let mut freezer = Role::spawn_with(
        "freezer",
        &[("KCMP_FREEZE_TARGET", target.pid().get().to_string())],
    );
    // The harness prints its own lines first; keep the pipe open after.
    let mut reader = BufReader::new(freezer.child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("frozen") {
        line.clear();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "the freezer said nothing"
        );
    }
    assert_eq!(line.trim(), "frozen 1");
    // Keep the pipe open: the role writes nothing more.
    std::mem::forget(reader);
    freezer
}

fn freezer_killed_by(sig: rustix::process::Signal) {
    let target = Role::spawn("ticker");
    assert!(target.makes_progress());
    let mut freezer = freezer_of(&target);
    assert_eq!(state(target.pid()), Some('t'));
    assert!(target.stands_still());
    freezer.signal(sig);
    freezer.child.wait().unwrap();
    assert!(
        wait_for_state(target.pid(), |s| !is_stopped(s)),
        "the target stayed stopped after the freezer died"
    );
    assert!(target.makes_progress(), "the target made no progress");
}

#[test]
fn sigkill_of_the_freezer_releases_the_target() {
    freezer_killed_by(rustix::process::Signal::KILL);
}

#[test]
fn sigterm_of_the_freezer_releases_the_target() {
    freezer_killed_by(rustix::process::Signal::TERM);
}

#[test]
fn sigstop_of_the_freezing_process_releases_the_target_within_a_second() {
    let target = Role::spawn("ticker");
    let freezer = freezer_of(&target);
    assert_eq!(state(target.pid()), Some('t'));
    freezer.signal(rustix::process::Signal::STOP);
    let sent = Instant::now();
    assert!(
        wait_for_state(target.pid(), |s| !is_stopped(s)),
        "the target stayed stopped while its freezing process was stopped"
    );
    let took = sent.elapsed();
    assert!(took < Duration::from_secs(1), "released after {took:?}");
    assert!(target.makes_progress());
    freezer.signal(rustix::process::Signal::CONT);
}

#[test]
fn the_frozen_window_is_capped() {
    let r = Role::spawn("ticker");
    let set = kcmp_map::freeze::freeze_with(
        &[r.pid()],
        &FreezeOptions {
            max_frozen: Duration::from_millis(200),
            ..FreezeOptions::default()
        },
    )
    .unwrap();
    assert!(set.is_frozen(r.pid()));
    assert!(wait_for_state(r.pid(), |s| !is_stopped(s)));
    assert!(r.makes_progress());
    assert_eq!(
        set.finish().unwrap(),
        Some(kcmp_map::freeze::Release::Timeout)
    );
}

#[test]
fn a_freezer_never_freezes_another_freezer() {
    let r = Role::spawn("ticker");
    let first = freeze(&[r.pid()]).unwrap();
    // The first set's freezer: the process tracing the frozen ticker (not
    // any kcmp-freezer child of this process: the tests of this file run at
    // once, and another test's freezer may end meanwhile).
    let field = |pid: i32, name: &str| -> i32 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        line[name.len()..].trim().parse().unwrap()
    };
    let tracer = field(r.pid().get(), "TracerPid:");
    assert_ne!(tracer, 0, "the ticker is not traced");
    let freezer = field(tracer, "Tgid:");
    let comm = std::fs::read_to_string(format!("/proc/{freezer}/comm")).unwrap();
    assert_eq!(comm.trim(), "kcmp-freezer");
    let second = freeze(&[Pid::new(freezer).unwrap()]).unwrap();
    assert!(second.frozen().is_empty());
    assert_eq!(second.not_frozen()[0].kind, NotFrozenKind::Freezer);
    drop(second);
    first.thaw().unwrap();
    assert!(r.makes_progress());
}

#[test]
fn never_freezes_self_or_ancestors() {
    let me = Pid::this();
    let parent = Pid::new(rustix::process::getppid().unwrap().as_raw_pid()).unwrap();
    let mut pids = vec![me, parent];
    // A thread of this process, given as a tid, is this process too.
    let tid = Pid::new(rustix::thread::gettid().as_raw_pid()).unwrap();
    pids.push(tid);
    let set = freeze(&pids).unwrap();
    assert!(set.frozen().is_empty(), "{:?}", set.frozen());
    for nf in set.not_frozen() {
        let want = if nf.pid == parent {
            "an ancestor of the calling process"
        } else {
            "the calling process itself"
        };
        assert_eq!(nf.reason, want, "{nf:?}");
        let kind = if nf.pid == parent {
            NotFrozenKind::Ancestor
        } else {
            NotFrozenKind::CallingProcess
        };
        assert_eq!(nf.kind, kind);
    }
    assert_eq!(set.not_frozen().len(), pids.len());
    assert!(!is_stopped(state(parent)));
}

#[test]
fn never_freezes_kernel_threads() {
    // Find a kernel thread (PF_KTHREAD) visible here; kthreadd is pid 2 on hosts.
    let kthread = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&p| p > 1)
        .find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|t| {
                    let f: Vec<String> = t[t.rfind(')')? + 1..]
                        .split_whitespace()
                        .map(str::to_string)
                        .collect();
                    f.get(6)?.parse::<u64>().ok()
                })
                .is_some_and(|flags| flags & 0x0020_0000 != 0)
        });
    let Some(k) = kthread else {
        eprintln!("no kernel thread visible in this pid namespace; nothing to check");
        return;
    };
    let set = freeze(&[Pid::new(k).unwrap()]).unwrap();
    assert!(set.frozen().is_empty());
    assert_eq!(set.not_frozen()[0].reason, "a kernel thread");
    assert_eq!(set.not_frozen()[0].kind, NotFrozenKind::KernelThread);
}

#[test]
fn vanished_and_zombie_processes_are_reported() {
    let gone = Pid::new(kcmp_testkit::reaped_pid()).unwrap();
    let mut zombie = Command::new("true").spawn().unwrap();
    let zpid = Pid::new(zombie.id() as i32).unwrap();
    assert!(wait_for_state(zpid, |s| s == Some('Z')));
    let set = freeze(&[gone, zpid]).unwrap();
    assert!(set.frozen().is_empty());
    let nf = set.not_frozen();
    let g = nf.iter().find(|n| n.pid == gone).unwrap();
    assert_eq!(g.reason, "vanished");
    assert_eq!(g.errno, Some(rustix::io::Errno::SRCH));
    assert_eq!(g.kind, NotFrozenKind::Vanished);
    let z = nf.iter().find(|n| n.pid == zpid).unwrap();
    assert!(z.reason.contains("zombie"), "{z:?}");
    assert_eq!(z.kind, NotFrozenKind::Zombie);
    drop(set);
    zombie.wait().unwrap();
}

#[test]
fn already_traced_process_is_reported_and_left_alone() {
    let r = Role::spawn("ticker");
    let first = freeze(&[r.pid()]).unwrap();
    assert!(first.is_frozen(r.pid()));
    let second = freeze_with_short_timeout(r.pid());
    assert!(second.frozen().is_empty());
    let nf = &second.not_frozen()[0];
    assert_eq!(nf.errno, Some(rustix::io::Errno::PERM), "{nf:?}");
    assert_eq!(
        nf.reason,
        format!("already traced by process {}", Pid::this()),
        "{nf:?}"
    );
    let json = serde_json::to_value(nf).unwrap();
    assert_eq!(json["errno"], "EPERM");
    assert_eq!(json["kind"], "already_traced");
    assert_eq!(nf.kind, NotFrozenKind::AlreadyTraced);
    drop(second);
    // The first set still holds it.
    assert_eq!(state(r.pid()), Some('t'));
    first.thaw().unwrap();
    assert!(r.makes_progress());
}

fn freeze_with_short_timeout(pid: Pid) -> kcmp_map::freeze::FrozenSet {
    kcmp_map::freeze::freeze_with(
        &[pid],
        &FreezeOptions {
            timeout: Duration::from_millis(500),
            ..FreezeOptions::default()
        },
    )
    .unwrap()
}

#[test]
fn several_processes_at_once() {
    let roles: Vec<Role> = (0..4)
        .map(|i| Role::spawn(if i % 2 == 0 { "ticker" } else { "threads" }))
        .collect();
    let pids: Vec<Pid> = roles.iter().map(Role::pid).collect();
    let set = freeze(&pids).unwrap();
    let mut sorted = pids.clone();
    sorted.sort();
    assert_eq!(set.frozen(), &sorted[..], "{:?}", set.not_frozen());
    for r in &roles {
        assert!(r.stands_still());
    }
    set.thaw().unwrap();
    for r in &roles {
        assert!(r.makes_progress());
    }
}
