//! Which descriptions the engine anchors with a copy of its own. memfds
//! live on the kernel's internal shmem mount, which is in no mount table:
//! the engine learns its id from a memfd of its own and copies them.

use kcmp::{FdNum, Pid};
use kcmp_map::holders::{find_holders, HoldersOptions};
use kcmp_map::{scan, ScanOptions};
use rustix::fs::{memfd_create, MemfdFlags};
use std::os::fd::AsRawFd;

/// One test at a time: a test leaves a thread with an fd table of its own
/// for a while, which refuses every scan of this process meanwhile.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn memfds_get_anchors_and_group_exactly() {
    let _turn = one_at_a_time();
    let a = memfd_create("kcmp-anchor-test", MemfdFlags::CLOEXEC).expect("memfd_create");
    let b = memfd_create("kcmp-anchor-test", MemfdFlags::CLOEXEC).expect("memfd_create");
    let a2 = rustix::io::fcntl_dupfd_cloexec(&a, 0).expect("dup");
    let me = Pid::this();
    let map = scan(&ScanOptions {
        pids: vec![me],
        skip_epoll: true,
        ..ScanOptions::default()
    })
    .expect("scan");
    let of = |fd: &std::os::fd::OwnedFd| {
        let d = map.description_of(me, FdNum::new(fd.as_raw_fd()).unwrap());
        d.expect("memfd scanned").members.clone()
    };
    assert_eq!(of(&a), of(&a2), "a dup shares its description");
    assert_ne!(
        of(&a),
        of(&b),
        "two memfds of one name are two descriptions"
    );
    assert_eq!(map.stats.descriptions_without_anchor, 0);
    let d = map.description_of(me, FdNum::new(a.as_raw_fd()).unwrap());
    assert!(!d.unwrap().without_anchor());
}

/// The thread that closes the engine's copies ends when idle: a library
/// caller's process is single-threaded again soon after a scan (which
/// `setns(CLONE_NEWNS)` and `unshare(CLONE_NEWUSER)` require).
#[test]
fn the_closer_thread_ends_after_a_scan() {
    let _turn = one_at_a_time();
    let pipes: Vec<_> = (0..8).map(|_| rustix::pipe::pipe().unwrap()).collect();
    let map = scan(&ScanOptions {
        pids: vec![Pid::this()],
        skip_epoll: true,
        ..ScanOptions::default()
    })
    .expect("scan");
    assert!(map.stats.kcmp_calls > 0);
    drop(pipes);
    let closers = || {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .flatten()
            .filter(|t| {
                std::fs::read_to_string(t.path().join("comm"))
                    .is_ok_and(|c| c.trim() == "kcmp-closer")
            })
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while closers() > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        closers(),
        0,
        "a kcmp-closer thread outlived the scan by 5 s"
    );
}

/// A scan that fails after its grouping released the engine's copies (its
/// only process died before the end: "nothing could be scanned") still
/// hands them to the closer: a copy of a pipe's write end left in a batch
/// would keep the reader from ever seeing EOF.
#[test]
fn a_scan_that_fails_late_still_closes_its_copies() {
    let _turn = one_at_a_time();
    use std::io::Read;
    use std::process::Stdio;
    let (reader, writer) = std::io::pipe().expect("pipe");
    let writer2 = writer.try_clone().expect("dup");
    let kid =
        kcmp_testkit::process::sleeper(Stdio::null(), Stdio::from(writer), Stdio::from(writer2));
    let pid = Pid::new(kid.pid()).unwrap();
    let kid = std::sync::Mutex::new(kid);
    let killed = std::sync::atomic::AtomicBool::new(false);
    let kill_once = |p: kcmp_map::scan::ScanProgress| {
        if p.phase == 2 && !killed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let mut kid = kid.lock().unwrap();
            let _ = kid.0.kill();
            let _ = kid.0.wait(); // gone before the scan verifies it
        }
    };
    let options = ScanOptions {
        pids: vec![pid],
        skip_epoll: true,
        ..ScanOptions::default()
    };
    let answer = kcmp_map::scan::scan_with_progress(&options, &kill_once);
    assert!(
        answer.is_err(),
        "the scan of a process killed under it succeeded"
    );
    // Every write end is closed now or soon (the closer thread): EOF.
    let (tx, rx) = std::sync::mpsc::channel();
    let mut reader = reader;
    std::thread::spawn(move || {
        let mut buf = [0u8; 16];
        let _ = tx.send(reader.read(&mut buf).map(|n| n == 0));
    });
    let eof = rx.recv_timeout(std::time::Duration::from_secs(5));
    assert!(
        matches!(eof, Ok(Ok(true))),
        "no EOF on the pipe: a copy of its write end stayed open ({eof:?})"
    );
}

/// A scan or a holders query while a thread of this process has an fd
/// table of its own (`unshare(CLONE_FILES)`), the caller or another, is
/// refused with EINVAL: the engine takes its copies into the caller's table,
/// while its closer thread (one for the process, started by whichever scan
/// came first) closes them in its own and its /proc reads see the main
/// thread's. Once every thread shares one table again, both run.
#[test]
fn a_thread_with_an_fd_table_of_its_own_is_refused() {
    let _turn = one_at_a_time();
    let (r, _w) = rustix::pipe::pipe().expect("pipe");
    let fd = FdNum::new(r.as_raw_fd()).unwrap();
    let holders = move || find_holders(Pid::this(), fd, &HoldersOptions::default());
    let options = ScanOptions {
        pids: vec![Pid::this()],
        skip_epoll: true,
        ..ScanOptions::default()
    };
    let refused = |what: &str, err: Option<kcmp::Error>| {
        let err = err.unwrap_or_else(|| panic!("{what} ran"));
        assert_eq!(err.errno_name(), Some("EINVAL"), "{what}: {err}");
        assert!(
            err.to_string().contains("another fd table"),
            "{what}: {err}"
        );
    };
    let shared = std::thread::spawn(holders).join().unwrap();
    assert!(
        shared.is_ok(),
        "from a thread sharing the table: {shared:?}"
    );
    // The caller has a table of its own.
    let opts = options.clone();
    let (scanned, held) = std::thread::spawn(move || {
        unshare_files();
        (scan(&opts).err(), holders().err())
    })
    .join()
    .unwrap();
    refused("scan from the unshared thread", scanned);
    refused("find_holders from the unshared thread", held);
    // Another thread has one (the caller's is the main thread's).
    let (unshared_tx, unshared_rx) = std::sync::mpsc::channel();
    let (end_tx, end_rx) = std::sync::mpsc::channel::<()>();
    let other = std::thread::spawn(move || {
        unshare_files();
        unshared_tx.send(()).unwrap();
        let _ = end_rx.recv();
    });
    unshared_rx.recv().unwrap();
    refused("scan beside an unshared thread", scan(&options).err());
    refused("find_holders beside an unshared thread", holders().err());
    end_tx.send(()).unwrap();
    other.join().unwrap();
    assert!(scan(&options).is_ok(), "once the unshared thread ended");
}

/// `unshare(CLONE_FILES)` for the calling thread.
fn unshare_files() {
    // SAFETY: after the unshare the calling thread uses only its own copies
    // of the fds (by number, in its copy of the table) and the fds it opens
    // itself; none of them reaches another thread.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::FILES) }
        .expect("unshare(CLONE_FILES)");
}
