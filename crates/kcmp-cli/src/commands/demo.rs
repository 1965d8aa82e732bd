//! `kcmp demo`: the man page's example program, run for real.
//!
//! The parent opens a temporary file and starts a child (fork + exec) that
//! inherits the open file description as its standard input: exec keeps
//! descriptions, so this is the fork of the man page with a fresh program
//! image. The child compares its copy with the parent's, opens the file a
//! second time, dups, and compares again: same / different / same.

use crate::exit;
use kcmp::{compare_files, FdNum, Pid};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;

fn same_or_different(pid1: i32, pid2: i32, fd_a: i32, fd_b: i32) -> Result<bool, kcmp::Error> {
    let r = compare_files(
        Pid::new(pid1)?,
        FdNum::new(fd_a)?,
        Pid::new(pid2)?,
        FdNum::new(fd_b)?,
    )?;
    Ok(r.is_equal())
}

fn test_kcmp(msg: &str, pid1: i32, pid2: i32, fd_a: i32, fd_b: i32) -> Result<bool, kcmp::Error> {
    let same = same_or_different(pid1, pid2, fd_a, fd_b)?;
    crate::outln!("\t{msg}");
    crate::outln!(
        "\t\tkcmp({pid1}, {pid2}, KCMP_FILE, {fd_a}, {fd_b}) ==> {}",
        if same { "same" } else { "different" }
    );
    Ok(same)
}

/// The parent half: `kcmp demo`.
///
/// The file has no name from the start (`O_TMPFILE`; where the temporary
/// directory does not support it, the name is removed right after the
/// open), so no exit path — a closed stdout, a full disk, a signal — can
/// leave it behind. The child reopens it through `/proc/PARENT/fd/FD`.
pub fn run() -> i32 {
    let dir = std::env::temp_dir();
    let file = match anonymous_file(&dir) {
        Ok(f) => f,
        Err(e) => {
            let what = format!("demo: cannot create a temporary file in {}", dir.display());
            return crate::report_error(&kcmp::Error::io(what, &e));
        }
    };
    parent(file)
}

/// An open, nameless read-write file in `dir`.
fn anonymous_file(dir: &Path) -> std::io::Result<std::fs::File> {
    use rustix::fs::{Mode, OFlags};
    match rustix::fs::open(
        dir,
        OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    ) {
        Ok(fd) => Ok(std::fs::File::from(fd)),
        Err(_) => {
            let path = dir.join(format!("kcmp.test.{}", std::process::id()));
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)?;
            std::fs::remove_file(&path)?;
            Ok(f)
        }
    }
}

fn parent(file: std::fs::File) -> i32 {
    use std::io::Write;
    let for_child = match file.try_clone() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("kcmp: demo: dup: {e}");
            return exit::TROUBLE;
        }
    };
    let fd1 = file.as_raw_fd();
    crate::outln!("Parent PID is {}", std::process::id());
    crate::outln!("Parent opened file on FD {fd1}\n");
    let _ = std::io::stdout().flush();
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("kcmp: demo: cannot find own executable: {e}");
            return exit::TROUBLE;
        }
    };
    let status = Command::new(exe)
        .arg("__demo-child")
        .arg(std::process::id().to_string())
        .arg(fd1.to_string())
        .arg(format!("/proc/{}/fd/{fd1}", std::process::id()))
        .stdin(std::process::Stdio::from(for_child))
        .status();
    drop(file);
    match status {
        Ok(s) if s.success() => exit::SAME,
        Ok(s) => s.code().unwrap_or(exit::TROUBLE),
        Err(e) => {
            eprintln!("kcmp: demo: cannot start the child: {e}");
            exit::TROUBLE
        }
    }
}

/// The child half: runs in a fresh process whose standard input is the
/// parent's open file description (`parent_fd` in the parent).
pub fn child(parent: i32, parent_fd: i32, path: &Path) -> i32 {
    use std::os::fd::AsFd;
    let me = std::process::id() as i32;
    let stdin = std::io::stdin();
    // Give the inherited description the parent's fd number, as fork would.
    let inherited = match rustix::io::fcntl_dupfd_cloexec(stdin.as_fd(), parent_fd) {
        Ok(fd) => fd,
        Err(e) => return crate::report_error(&kcmp::Error::os("fcntl(F_DUPFD_CLOEXEC)", e)),
    };
    let fd1 = inherited.as_raw_fd();
    crate::outln!("PID of child of fork() is {me}");
    let run = || -> Result<bool, kcmp::Error> {
        let first = test_kcmp(
            "Compare duplicate FDs from different processes:",
            me,
            parent,
            fd1,
            parent_fd,
        )?;
        let second_file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| kcmp::Error::io(format!("open {}", path.display()), &e))?;
        let fd2 = second_file.as_raw_fd();
        crate::outln!("Child opened file on FD {fd2}");
        let second = test_kcmp(
            "Compare FDs from distinct open()s in same process:",
            me,
            me,
            fd1,
            fd2,
        )?;
        let duplicate = inherited
            .try_clone()
            .map_err(|e| kcmp::Error::io("dup", &e))?;
        let fd3 = duplicate.as_raw_fd();
        crate::outln!("Child duplicated FD {fd1} to create FD {fd3}");
        let third = test_kcmp("Compare duplicated FDs in same process:", me, me, fd1, fd3)?;
        Ok(first && !second && third)
    };
    match run() {
        Ok(true) => exit::SAME,
        Ok(false) => {
            eprintln!("kcmp: demo: the kernel did not answer same / different / same");
            exit::DIFFERENT
        }
        Err(e) => crate::report_error(&e),
    }
}
