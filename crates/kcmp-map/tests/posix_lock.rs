//! A process that holds a POSIX record lock keeps it through a scan: closing
//! any fd of a file releases the process's POSIX locks on it, so the engine
//! must not take (and close) copies of another process's fds of that file.
//! Its own process (this test binary) holds the lock, hence a file of its
//! own.

use kcmp::Pid;
use kcmp_map::{scan, ScanOptions};
use rustix::fs::{fcntl_lock, FlockOperation};
use std::fs::OpenOptions;
use std::process::{Command, Stdio};

/// Whether this process holds a POSIX lock, from /proc/locks.
fn holds_posix_lock() -> bool {
    let me = std::process::id().to_string();
    std::fs::read_to_string("/proc/locks")
        .expect("read /proc/locks")
        .lines()
        .any(|l| {
            let f: Vec<&str> = l.split_whitespace().filter(|w| *w != "->").collect();
            f.get(1) == Some(&"POSIX") && f.get(4) == Some(&me.as_str())
        })
}

#[test]
fn a_scan_never_releases_the_callers_posix_locks() {
    let dir = std::env::temp_dir().join(format!("kcmp-posix-lock-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("locked");
    let open = || {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .unwrap()
    };
    let mine = open();
    fcntl_lock(&mine, FlockOperation::NonBlockingLockExclusive).expect("F_SETLK");
    assert!(holds_posix_lock());
    // A process with two descriptions of the file (fds 0 and 1, opened by
    // the child itself: closing any fd of the file here would release the
    // lock): one bucket of two distinct descriptions, which a scan compares
    // (and, with anchors, copies).
    let mut child = Command::new("/bin/sh")
        .args(["-c", "exec /bin/sleep 30 <\"$0\" 1<>\"$0\""])
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn /bin/sh");
    let link = format!("/proc/{}/fd/1", child.id());
    for _ in 0..500 {
        if std::fs::read_link(&link).is_ok_and(|l| l == path) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let pid = Pid::new(child.id() as i32).unwrap();
    let map = scan(&ScanOptions {
        pids: vec![pid],
        skip_epoll: true,
        ..ScanOptions::default()
    });
    let still_held = holds_posix_lock();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let map = map.expect("scan");
    let fd = |n: i32| map.description_of(pid, kcmp::FdNum::new(n).unwrap());
    assert!(fd(0).is_some() && fd(1).is_some(), "both fds scanned");
    assert_ne!(fd(0).unwrap().members, fd(1).unwrap().members);
    assert!(still_held, "the scan released this process's POSIX lock");
    // Neither description could have an anchor, and the scan says so.
    assert_eq!(map.stats.descriptions_without_anchor, 2);
    assert!(fd(0).unwrap().without_anchor() && fd(1).unwrap().without_anchor());
}
