//! The 0.2 API as a user meets it: `?` into `io::Result`, pids from child
//! processes, fd -1 as the kernel sees it, errno names, and
//! `same_open_file` where kcmp is blocked (a seccomp filter answering EPERM
//! or ENOSYS, with and without `F_DUPFD_QUERY`).

use kcmp::fallback::{compare_descriptions, same_own_description, Method};
use kcmp::grouping::OrderedGroups;
use kcmp::{compare_files, errno_name, Errno, Error, FdNum, InvalidArgument, Pid, ProcessResource};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn temp_file(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("kcmp-api-{}-{tag}", std::process::id()));
    std::fs::write(&p, b"data").unwrap();
    p
}

/// A user's function in `io::Result` calling the library with `?`.
fn same_as_stdin(fd: i32) -> std::io::Result<bool> {
    let me = Pid::this();
    Ok(compare_files(me, FdNum::new(0)?, me, FdNum::new(fd)?)?.is_equal())
}

#[test]
fn question_mark_into_io_result_keeps_the_errno() {
    assert!(same_as_stdin(0).unwrap());
    // A real kcmp failure: fd 1,000,000 is not open.
    let err = same_as_stdin(1_000_000).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EBADF));
    assert_eq!(
        err.kind(),
        std::io::Error::from_raw_os_error(libc::EBADF).kind()
    );
    // A validation failure keeps its errno too.
    let err = same_as_stdin(-1).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EBADF));
    // ESRCH from a pid that names no process.
    let gone = kcmp_testkit::reaped_pid();
    let e = kcmp::compare_process(ProcessResource::Vm, Pid::this(), Pid::new(gone).unwrap())
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ESRCH));
    assert!(e.is_gone() && !e.is_bad_fd());
    let io: std::io::Error = e.into();
    assert_eq!(io.raw_os_error(), Some(libc::ESRCH));
}

#[test]
fn pid_from_a_child() {
    let mut child = Command::new("sleep")
        .arg("30")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let by_id = Pid::try_from(child.id()).unwrap();
    let by_ref = Pid::try_from(&child).unwrap();
    assert_eq!(by_id, by_ref);
    assert_eq!(by_id.get() as u32, child.id());
    // A real process: it shares nothing of this one's address space, and
    // its own with itself.
    assert!(kcmp::compare_process(ProcessResource::Vm, by_id, by_id)
        .unwrap()
        .is_equal());
    assert!(
        !kcmp::compare_process(ProcessResource::Vm, by_id, Pid::this())
            .unwrap()
            .is_equal()
    );
    child.kill().unwrap();
    child.wait().unwrap();
    // u32 beyond i32::MAX and 0 are not pids.
    assert_eq!(
        Pid::try_from(u32::MAX).unwrap_err(),
        Error::InvalidArgument(InvalidArgument::Pid(u32::MAX as i64))
    );
    assert!(Pid::try_from(0u32).is_err());
    assert_eq!(i32::from(Pid::this()), std::process::id() as i32);
}

#[test]
fn fd_minus_one_is_ebadf_as_the_kernel_says() {
    let me = std::process::id() as libc::c_long;
    let f = File::open("/dev/null").unwrap();
    // The kernel's own answer for fd -1 (truncated to 0xffffffff: not open).
    // SAFETY: kcmp with KCMP_FILE reads only its integer arguments.
    let r = unsafe {
        libc::syscall(
            libc::SYS_kcmp,
            me,
            me,
            0 as libc::c_long,
            -1i64,
            f.as_raw_fd() as i64,
        )
    };
    assert_eq!(r, -1);
    let kernel = std::io::Error::last_os_error().raw_os_error();
    assert_eq!(kernel, Some(libc::EBADF));
    // The library gives the same errno, before any call.
    let e = FdNum::new(-1).unwrap_err();
    assert_eq!(e, Error::InvalidArgument(InvalidArgument::Fd(-1)));
    assert_eq!(e.raw_os_error(), kernel);
    assert!(e.is_bad_fd());
    let e = kcmp::compare(kcmp::KcmpType::File, Pid::this(), Pid::this(), -1, 0).unwrap_err();
    assert_eq!(e.errno_name(), Some("EBADF"));
    // A pid of 0 stays EINVAL.
    assert_eq!(Pid::new(0).unwrap_err().errno(), Some(Errno::INVAL));
}

#[test]
fn every_errno_has_its_name() {
    let mut named = 0;
    for n in 1..4096 {
        let name = errno_name(Errno::from_raw_os_error(n));
        // The C library knows which numbers are errnos.
        let text = std::io::Error::from_raw_os_error(n).to_string();
        if text.starts_with("Unknown error") {
            assert_eq!(name, "EUNKNOWN", "{n}: {text}");
        } else {
            assert_ne!(name, "EUNKNOWN", "errno {n} ({text}) has no name");
            assert!(name.starts_with('E'), "{n}: {name}");
            named += 1;
        }
    }
    assert!(named >= 131, "{named}"); // 1..=133 but the holes 41 and 58
                                      // Spot checks against the libc constants.
    for (n, want) in [
        (libc::EPERM, "EPERM"),
        (libc::EBADF, "EBADF"),
        (libc::ENOTSOCK, "ENOTSOCK"),
        (libc::EOWNERDEAD, "EOWNERDEAD"),
        (libc::EHWPOISON, "EHWPOISON"),
        (libc::EWOULDBLOCK, "EAGAIN"),
    ] {
        assert_eq!(errno_name(Errno::from_raw_os_error(n)), want);
    }
    // Error messages carry the name.
    let e = Error::os("connect", Errno::from_raw_os_error(libc::ECONNREFUSED));
    assert!(e.to_string().contains("ECONNREFUSED"), "{e}");
}

#[test]
fn grouping_own_fds_with_the_fallback_aware_comparator() {
    let p = temp_file("group");
    let a = File::open(&p).unwrap();
    let a2 = a.try_clone().unwrap();
    let b = File::open(&p).unwrap();
    let me = Pid::this();
    let mut groups = OrderedGroups::new();
    let mut cmp = |x: FdNum, y: FdNum| compare_descriptions(me, x, me, y);
    for f in [&a, &b, &a2] {
        groups.insert(FdNum::of(f), &mut cmp).unwrap();
    }
    let mut got: Vec<Vec<FdNum>> = groups.into_groups();
    got.iter_mut().for_each(|g| g.sort());
    got.sort();
    let mut want = vec![vec![FdNum::of(&a), FdNum::of(&a2)], vec![FdNum::of(&b)]];
    want.iter_mut().for_each(|g| g.sort());
    want.sort();
    assert_eq!(got, want);
    std::fs::remove_file(p).unwrap();
}

/// Run by `same_open_file_where_kcmp_is_blocked` under a seccomp filter;
/// not a test on its own. Prints `BLOCKED-PROBE-OK <methods>`.
#[test]
#[ignore = "helper: runs only under kcmp-seccomp-run"]
fn blocked_probe() {
    let Ok(expect) = std::env::var("KCMP_TEST_BLOCKED") else {
        return;
    };
    let dupfd_query = std::env::var("KCMP_TEST_DUPFD_QUERY").as_deref() == Ok("yes");
    let me = Pid::this();
    // kcmp itself is blocked, even for this process against itself.
    let e = kcmp::compare_own_fds(std::io::stdin(), std::io::stdin()).unwrap_err();
    assert_eq!(e.errno_name(), Some(expect.as_str()), "{e}");
    assert!(!kcmp::fallback::kcmp_available().is_available());
    // A pipe: every method but kcmp can decide.
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    let r2 = r.try_clone().unwrap();
    assert!(kcmp::same_open_file(&r, &r2).unwrap());
    assert!(!kcmp::same_open_file(&r, &w).unwrap());
    let method = same_own_description(&r, &r2).unwrap().method;
    let want = if dupfd_query {
        Method::DupfdQuery
    } else {
        Method::EpollTrick
    };
    assert_eq!(method, want);
    // A regular file: only F_DUPFD_QUERY can decide; without it, an error
    // (EPERM from epoll), never a guess.
    let p = temp_file(&format!("blocked-{expect}-{dupfd_query}"));
    let f = File::open(&p).unwrap();
    let f2 = f.try_clone().unwrap();
    let g = File::open(&p).unwrap();
    if dupfd_query {
        assert!(kcmp::same_open_file(&f, &f2).unwrap());
        assert!(!kcmp::same_open_file(&f, &g).unwrap());
    } else {
        let e = kcmp::same_open_file(&f, &f2).unwrap_err();
        assert_eq!(e.errno_name(), Some("EPERM"), "{e}");
    }
    // The fallback-aware comparator groups the pipe's fds exactly.
    let mut groups = OrderedGroups::new();
    let mut cmp = |x: FdNum, y: FdNum| compare_descriptions(me, x, me, y);
    for fd in [&r, &w, &r2] {
        groups.insert(FdNum::of(fd), &mut cmp).unwrap();
    }
    assert_eq!(groups.len(), 2);
    assert!(!groups.is_ordered(), "equality only: no order without kcmp");
    std::fs::remove_file(p).unwrap();
    println!("BLOCKED-PROBE-OK {}", method.name());
}

fn seccomp_run() -> PathBuf {
    // The test binary lives in target/<profile>/deps; the testkit's
    // binaries in target/<profile> (built on demand).
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    kcmp_testkit::cli::testkit_bin_next_to(profile_dir.join("kcmp"), "kcmp-seccomp-run")
}

#[test]
fn same_open_file_where_kcmp_is_blocked() {
    for (mode, errno) in [("eperm", "EPERM"), ("enosys", "ENOSYS")] {
        for dupfd_query in [true, false] {
            let mut cmd = Command::new(seccomp_run());
            cmd.arg(mode);
            if !dupfd_query {
                cmd.arg("--no-dupfd-query");
            }
            let out = cmd
                .arg("--")
                .arg(std::env::current_exe().unwrap())
                .args([
                    "blocked_probe",
                    "--exact",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("KCMP_TEST_BLOCKED", errno)
                .env(
                    "KCMP_TEST_DUPFD_QUERY",
                    if dupfd_query { "yes" } else { "no" },
                )
                .stdin(Stdio::null())
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let want = if dupfd_query {
                "f_dupfd_query"
            } else {
                "epoll"
            };
            assert!(
                out.status.success() && stdout.contains(&format!("BLOCKED-PROBE-OK {want}")),
                "{mode} dupfd_query={dupfd_query}: {}\n{stdout}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
