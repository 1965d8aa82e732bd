//! A process whose command name is not valid UTF-8 (any bytes but NUL and
//! `/` may name a program, and the kernel copies them into `comm`) is a
//! process like any other: it can be pinned and compared, not taken for
//! vanished.

use kcmp::{Pid, ProcessHandle, ProcessResource};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Stdio};

#[test]
fn a_comm_with_invalid_utf8_does_not_hide_the_process() {
    let dir = std::env::temp_dir().join(format!("kcmp-odd-comm.{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join(OsStr::from_bytes(b"sl\xffep\x1b"));
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink("/bin/sleep", &link).unwrap();
    let mut child = Command::new(&link)
        .arg("60")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let pid = Pid::new(child.id() as i32).unwrap();
    // Wait until the exec has set the odd comm.
    for _ in 0..500 {
        if std::fs::read(format!("/proc/{pid}/comm")).is_ok_and(|c| c.starts_with(b"sl\xff")) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let pinned = ProcessHandle::open(pid);
    let same = pinned
        .as_ref()
        .ok()
        .map(|h| h.compare_process(ProcessResource::Vm, &ProcessHandle::open(pid).unwrap()));
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let pinned = pinned.expect("a process with a non-UTF-8 comm can be pinned");
    assert!(same.unwrap().unwrap().is_equal(), "{pinned:?}");
}
