//! Child-process plumbing shared by fixtures: reading a first line with a
//! deadline, ending a fixture by closing its stdin, and a throwaway child.
//!
//! ```no_run
//! use kcmp_testkit::process::sleeper;
//! use std::process::Stdio;
//! let kid = sleeper(Stdio::null(), Stdio::null(), Stdio::null());
//! assert!(kid.pid() > 0);
//! // dropped: killed and reaped
//! ```

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Reads one line (newline included) from `stream` on a helper thread and
/// waits at most `timeout` for it. `None` on timeout; a read error or EOF
/// gives what was read so far (possibly empty).
pub fn read_line_within<R: Read + Send + 'static>(stream: R, timeout: Duration) -> Option<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stream).read_line(&mut line);
        let _ = tx.send(line);
    });
    rx.recv_timeout(timeout).ok()
}

/// Ends a fixture that exits on EOF: drops `stdin`, waits up to `timeout`
/// for `child` to exit, then kills and reaps it. Returns the exit code of a
/// clean exit, `None` when it had to be killed (or died by a signal).
pub fn close_and_reap(
    child: &mut Child,
    stdin: Option<ChildStdin>,
    timeout: Duration,
) -> Option<i32> {
    drop(stdin);
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.code(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// A child process that is killed and reaped on drop.
#[derive(Debug)]
pub struct Kid(pub Child);

impl Kid {
    /// The child's pid.
    pub fn pid(&self) -> i32 {
        self.0.id() as i32
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `sleep 60` with the given stdin, stdout and stderr: a live process whose
/// fds 0-2 are known. Panics when it cannot be started.
pub fn sleeper(stdin: Stdio, stdout: Stdio, stderr: Stdio) -> Kid {
    Kid(Command::new("sleep")
        .arg("60")
        .stdin(stdin)
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap())
}

/// A directory made for one test and removed with everything in it when
/// dropped, even when the test panics: no test leaves litter behind.
#[derive(Debug)]
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    /// Creates `$TMPDIR/NAME.PID`.
    pub fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("{name}.{}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    /// Its path.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
