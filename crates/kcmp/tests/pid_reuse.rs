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

#[test]
fn open_with_pins_the_task_its_read_saw_even_when_the_pid_was_reused_in_between() {
    let mut old = sleeper();
    let pid = Pid::new(old.id() as i32).unwrap();
    let old_start = start_time_now(pid).unwrap();
    let mut newcomer = None;
    // The pidfd is opened on the old process; between that and the read
    // the old one is reaped and its pid given to a newcomer, which the read
    // sees.
    let (handle, read_start) = ProcessHandle::open_with(pid, || {
        old.kill().unwrap();
        old.wait().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let child = spawn_with_pid(pid.get());
        newcomer = Some(child);
        let start = start_time_now(pid)?;
        Ok((start, start))
    })
    .unwrap();
    let mut newcomer = newcomer.expect("the read ran");
    assert_eq!(handle.start_time(), read_start);
    // The handle names the task the read saw (the newcomer): it verifies
    // while the newcomer lives, and not after.
    assert!(handle.verify().is_ok(), "the newcomer is alive and pinned");
    assert!(!handle.was_exited_at_open());
    let _ = old_start;
    newcomer.kill().unwrap();
    newcomer.wait().unwrap();
    assert!(handle.verify().is_err(), "the pinned newcomer exited");
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
