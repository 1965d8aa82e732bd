//! Every errno kcmp(2) gives, and the validation the library adds, with
//! real processes: ESRCH (a reaped pid), EPERM (an unprivileged process
//! against a root-owned one), EINVAL, EBADF, ENOENT, and the fd/pid ranges.

use kcmp::{compare, compare_files, compare_process, Error, FdNum, KcmpType, Pid, ProcessResource};
use kcmp_testkit::{reaped_pid, Topology};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

fn pid(p: i32) -> Pid {
    Pid::new(p).unwrap()
}

fn fdn(f: i32) -> FdNum {
    FdNum::new(f).unwrap()
}

#[test]
fn esrch_for_a_reaped_pid_but_not_for_a_zombie() {
    let topo = Topology::spawn("clone", &[]);
    let t = topo.truth();
    let gone = reaped_pid();
    let live = t.pid("fork_parent");
    for (a, b) in [(gone, live), (live, gone)] {
        let e = compare_process(ProcessResource::Vm, pid(a), pid(b)).unwrap_err();
        assert_eq!(e.errno_name(), Some("ESRCH"), "{e}");
        assert!(e.is_gone());
        assert!(e.to_string().contains("ESRCH"), "{e}");
        assert!(matches!(e, Error::Kcmp(ref k) if k.errno == rustix::io::Errno::SRCH));
    }
    let e = compare_files(pid(gone), fdn(0), pid(live), fdn(2)).unwrap_err();
    assert_eq!(e.errno_name(), Some("ESRCH"));
    // A zombie is still found (no ESRCH); its fds are gone (EBADF).
    let z = t.pid("zombie_1");
    assert!(compare_process(ProcessResource::Sighand, pid(z), pid(z)).is_ok());
    let e = compare_files(pid(z), fdn(2), pid(live), fdn(2)).unwrap_err();
    assert_eq!(e.errno_name(), Some("EBADF"));
}

#[test]
fn ebadf_names_the_fds() {
    let topo = Topology::spawn("basic", &[]);
    let t = topo.truth();
    let child = t.pid("child");
    let open = t.fd("child_reopen").fd;
    let e = compare_files(pid(child), fdn(999), pid(child), fdn(open)).unwrap_err();
    assert_eq!(e.errno_name(), Some("EBADF"));
    assert_eq!(e.errno(), Some(rustix::io::Errno::BADF));
    assert!(e.to_string().contains("999"), "{e}");
    let e = compare_files(pid(child), fdn(open), pid(t.root), fdn(999)).unwrap_err();
    assert_eq!(e.errno_name(), Some("EBADF"));
}

#[test]
fn einval_for_an_unknown_type() {
    let me = std::process::id() as i32;
    // The typed API cannot name type 8 (the raw layer's unit tests show the
    // kernel's EINVAL); compare() refuses EPOLL_TFD without a slot (no call is made).
    let e = compare(KcmpType::EpollTfd, pid(me), pid(me), 0, 0).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)));
    assert_eq!(e.errno_name(), Some("EINVAL"));
}

#[test]
fn fd_and_pid_ranges_are_checked_before_the_call() {
    let me = Pid::this();
    let f = std::fs::File::open("/proc/self/status").unwrap();
    let raw = std::os::fd::AsRawFd::as_raw_fd(&f);
    let other = std::fs::File::open("/proc/self/status").unwrap();
    let raw_other = std::os::fd::AsRawFd::as_raw_fd(&other);
    // The kernel truncates fds to 32 bits: fd + 2^32 "is" fd (the raw
    // layer's unit tests show it). The library refuses such numbers instead of silently comparing fd.
    for bad in [(1i64 << 32) + raw as i64, -1, i32::MAX as i64 + 1, i64::MIN] {
        assert!(FdNum::try_from(bad).is_err(), "{bad}");
        let e = compare(KcmpType::File, me, me, bad, raw as i64).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{bad}: {e}");
        assert_eq!(e.errno_name(), Some("EBADF"));
        let e = compare(KcmpType::File, me, me, raw as i64, bad).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{bad}: {e}");
    }
    assert!(FdNum::try_from(i32::MAX as i64).is_ok());
    assert!(
        !compare(KcmpType::File, me, me, raw as i64, raw_other as i64)
            .unwrap()
            .is_equal()
    );
    for bad in [0i64, -1, -(1 << 40), i32::MAX as i64 + 1] {
        assert!(Pid::try_from(bad).is_err(), "pid {bad}");
    }
    assert!(Pid::new(0).is_err());
    assert!(Pid::new(-1).is_err());
    assert!(FdNum::new(-1).is_err());
    let e = Pid::new(0).unwrap_err();
    assert!(e.to_string().contains("out of range"), "{e}");
}

/// Run by `eperm_for_an_unprivileged_process_against_root` in a child that
/// dropped to an unused uid; not a test on its own.
#[test]
#[ignore = "helper: runs only inside the unprivileged child"]
fn eperm_probe() {
    let Ok(target) = std::env::var("KCMP_TEST_EPERM_TARGET") else {
        return;
    };
    let target = pid(target.parse().unwrap());
    assert_ne!(
        rustix::process::getuid().as_raw(),
        0,
        "must run unprivileged"
    );
    let e = compare_process(ProcessResource::Vm, target, target).unwrap_err();
    assert_eq!(e.errno_name(), Some("EPERM"), "{e}");
    assert!(e.is_permission());
    assert!(e.to_string().contains("ptrace"), "{e}");
    let e = compare_process(ProcessResource::Files, Pid::this(), target).unwrap_err();
    assert_eq!(e.errno_name(), Some("EPERM"), "{e}");
    // Itself against itself is allowed.
    assert!(
        compare_process(ProcessResource::Vm, Pid::this(), Pid::this())
            .unwrap()
            .is_equal()
    );
    println!("EPERM-PROBE-OK");
}

#[test]
fn eperm_for_an_unprivileged_process_against_root() {
    assert!(
        rustix::process::getuid().is_root(),
        "this test drops to an unused uid, which needs root (CI runs as root)"
    );
    let topo = Topology::spawn("basic", &[]);
    let target = topo.truth().pid("child");
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "eperm_probe",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("KCMP_TEST_EPERM_TARGET", target.to_string())
        .uid(54321)
        .gid(54321)
        .stdin(Stdio::null())
        .output()
        .expect("run the unprivileged probe");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("EPERM-PROBE-OK"),
        "probe failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
