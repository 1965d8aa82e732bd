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
