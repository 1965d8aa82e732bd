//! Pid reuse: a handle pinned to a process must never answer for a
//! newcomer that got the same pid. The pid is really reused here: the old
//! process is reaped, then /proc/sys/kernel/ns_last_pid (root only) makes
//! the kernel hand the same number to a new child.

use kcmp::{Error, Pid, ProcessHandle, ProcessResource};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn sleeper() -> Child {
    Command::new("sleep")
        .arg("60")
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn sleep")
}

/// Spawns children until one gets `pid` (tries a bounded number of times:
/// other processes may take the number first).
fn spawn_with_pid(pid: i32) -> Child {
    for _ in 0..200 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string())
            .expect("writing /proc/sys/kernel/ns_last_pid needs root (CI runs as root)");
        let mut child = sleeper();
        if child.id() as i32 == pid {
            return child;
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("could not get pid {pid} reused in 200 tries");
}

#[test]
fn a_reused_pid_is_reported_as_vanished_never_attributed_to_the_newcomer() {
    let mut old = sleeper();
    let pid = Pid::new(old.id() as i32).unwrap();
    let handle = ProcessHandle::open(pid).unwrap();
    let me = ProcessHandle::open(Pid::this()).unwrap();
    assert!(handle.verify().is_ok());
    assert!(!handle
        .compare_process(ProcessResource::Vm, &me)
        .unwrap()
        .is_equal());

    old.kill().unwrap();
    old.wait().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let mut newcomer = spawn_with_pid(pid.get());
    assert_eq!(newcomer.id() as i32, pid.get(), "the pid was reused");

    // The number names a live process again, but not the pinned one.
    assert!(matches!(handle.verify(), Err(Error::Vanished { pid: p }) if p == pid.get()));
    assert!(matches!(
        handle.compare_process(ProcessResource::Vm, &me),
        Err(Error::Vanished { .. })
    ));
    assert!(matches!(
        handle.compare_files(
            kcmp::FdNum::new(0).unwrap(),
            &me,
            kcmp::FdNum::new(0).unwrap()
        ),
        Err(Error::Vanished { .. })
    ));
    // A new handle pins the newcomer, and it verifies.
    let fresh = ProcessHandle::open(pid).unwrap();
    assert!(fresh.verify().is_ok());

    newcomer.kill().unwrap();
    newcomer.wait().unwrap();
    assert!(fresh.verify().is_err(), "an exited process is vanished too");
}

/// Field 22 of /proc/PID/stat, read now.
fn start_time_now(pid: Pid) -> kcmp::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| Error::io(format!("read /proc/{pid}/stat"), &e))?;
    let (_, fields) = text.rsplit_once(')').expect("a stat line");
    Ok(fields.split_whitespace().nth(19).unwrap().parse().unwrap())
}

/// The pidfd is opened on the old process; between that and the read the
/// old one is reaped and its pid given to a newcomer, which the read sees:
/// never pinned under the old one's pidfd, nor taken for it.
#[test]
fn open_with_says_vanished_when_the_pid_was_reused_between_the_pidfd_and_the_read() {
    let mut old = sleeper();
    let pid = Pid::new(old.id() as i32).unwrap();
    let mut newcomer = None;
    let pinned = ProcessHandle::open_with(pid, || {
        old.kill().unwrap();
        old.wait().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let child = spawn_with_pid(pid.get());
        newcomer = Some(child);
        let start = start_time_now(pid)?;
        Ok((start, start))
    });
    let mut newcomer = newcomer.expect("the read ran");
    assert!(
        matches!(pinned, Err(Error::Vanished { pid: p }) if p == pid.get()),
        "{pinned:?}"
    );
    newcomer.kill().unwrap();
    newcomer.wait().unwrap();
}

/// A pid that named a zombie when it was pinned, then names a thread that
/// started in the same clock tick (so the same start time) after the
/// zombie was reaped: the handle says vanished. A start time cannot tell
/// them apart; the pidfd can (a signal 0 through it finds no task).
#[test]
fn a_zombie_pinned_then_reaped_is_vanished_even_when_its_pid_names_a_same_tick_thread() {
    for _ in 0..50 {
        let mut child = sleeper();
        let pid = Pid::new(child.id() as i32).unwrap();
        child.kill().unwrap();
        // A zombie now (not waited for yet).
        while std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| !s.rsplit_once(')').unwrap().1.trim_start().starts_with('Z'))
        {
            std::thread::yield_now();
        }
        let start = start_time_now(pid).unwrap();
        let (handle, ()) =
            ProcessHandle::open_with(pid, || Ok((start_time_now(pid)?, ()))).unwrap();
        assert!(
            handle.was_exited_at_open() && handle.verify().is_ok(),
            "a zombie"
        );
        child.wait().unwrap();
        std::fs::write("/proc/sys/kernel/ns_last_pid", (pid.get() - 1).to_string())
            .expect("writing /proc/sys/kernel/ns_last_pid needs root (CI runs as root)");
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let _ = tx.send(rustix::thread::gettid().as_raw_nonzero().get());
            let _ = stop_rx.recv();
        });
        let tid = rx.recv().unwrap();
        let same_tick = tid == pid.get() && start_time_now(pid).ok() == Some(start);
        let verified = handle.verify();
        drop(stop_tx);
        thread.join().unwrap();
        if same_tick {
            assert!(
                matches!(verified, Err(Error::Vanished { .. })),
                "a thread with the zombie's pid and start time passed: {verified:?}"
            );
            return;
        }
    }
    eprintln!("skipped: no thread got a reaped zombie's pid in the same clock tick");
}

#[test]
fn open_with_trusts_a_single_read_while_the_task_lives_and_reports_a_failed_read() {
    let mut child = sleeper();
    let pid = Pid::new(child.id() as i32).unwrap();
    let mut reads = 0;
    let (handle, ()) = ProcessHandle::open_with(pid, || {
        reads += 1;
        Ok((start_time_now(pid)?, ()))
    })
    .unwrap();
    assert_eq!(reads, 1);
    assert_eq!(handle.start_time(), start_time_now(pid).unwrap());
    assert!(handle.pidfd().is_some() && handle.verify().is_ok());
    // A read that fails (the task exited meanwhile) is the error returned.
    let failed = ProcessHandle::open_with(pid, || -> kcmp::Result<(u64, ())> {
        child.kill().unwrap();
        child.wait().unwrap();
        Ok((start_time_now(pid)?, ()))
    });
    assert!(failed.is_err());
    assert!(handle.verify().is_err());
}
