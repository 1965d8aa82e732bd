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
    Kid(Command::new("/bin/sleep")
        .arg("60")
        .stdin(stdin)
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap())
}

/// A fixture that prints one line of JSON (its truth) when ready and runs
/// until its stdin closes: spawned, read, and on drop ended and reaped.
///
/// ```no_run
/// use kcmp_testkit::process::JsonFixture;
/// let bin = kcmp_testkit::topology_bin().unwrap();
/// let fx = JsonFixture::spawn(&bin, &["shape", "--procs", "3"]);
/// assert!(fx.json["root"].as_i64().is_some());
/// ```
#[derive(Debug)]
pub struct JsonFixture {
    child: Child,
    stdin: Option<ChildStdin>,
    /// The line it printed (without the newline).
    pub line: String,
    /// That line, parsed.
    pub json: serde_json::Value,
}

impl JsonFixture {
    /// Starts `bin args` and waits up to 60 s for its line. Panics (with the
    /// line it printed instead) when it does not start.
    pub fn spawn(bin: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> JsonFixture {
        JsonFixture::start(Command::new(bin).args(args), Duration::from_secs(60))
    }

    /// [`spawn`](Self::spawn) of a prepared command (its uid, environment),
    /// waiting up to `within` for the line; stdin and stdout are piped here.
    pub fn start(command: &mut Command, within: Duration) -> JsonFixture {
        let what = format!("{command:?}");
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let line = read_line_within(stdout, within).unwrap_or_default();
        let line = line.trim_end().to_string();
        let mut fixture = JsonFixture {
            child,
            stdin,
            line: String::new(),
            json: serde_json::Value::Null,
        };
        match serde_json::from_str(&line) {
            Ok(json) => fixture.json = json,
            Err(e) => panic!("{what} printed {line:?}: {e}"),
        }
        fixture.line = line;
        fixture
    }

    /// Writes `line` and a newline to its stdin (a command to the fixture).
    pub fn send_line(&mut self, line: &str) -> std::io::Result<()> {
        use std::io::Write;
        let stdin = self.stdin.as_mut().ok_or(std::io::ErrorKind::BrokenPipe)?;
        writeln!(stdin, "{line}")?;
        stdin.flush()
    }

    /// Closes its stdin and waits up to 30 s for it to exit (then kills
    /// it): its exit code, `None` when it had to be killed.
    pub fn end(&mut self) -> Option<i32> {
        close_and_reap(&mut self.child, self.stdin.take(), Duration::from_secs(30))
    }
}

impl Drop for JsonFixture {
    fn drop(&mut self) {
        self.end();
    }
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

/// Why a FUSE filesystem cannot be mounted here (not root, no `/dev/fuse`),
/// if it cannot: tests that need one skip with that reason.
pub fn no_fuse() -> Option<&'static str> {
    if !rustix::process::geteuid().is_root() {
        return Some("not root: cannot mount a FUSE filesystem");
    }
    if !std::path::Path::new("/dev/fuse").exists() {
        return Some("no /dev/fuse");
    }
    None
}

/// Whether the kernel has a network filesystem type (NFS, CIFS, 9p, Ceph,
/// virtiofs) in `/proc/filesystems`: then no host is server-free.
pub fn network_filesystem_registered() -> bool {
    let types = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    let network = ["nfs", "nfs4", "cifs", "smb3", "9p", "ceph", "virtiofs"];
    types
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .any(|t| network.contains(&t))
}

/// Where each thread of `pid` and of its children waits (state, wait
/// channel, kernel stack when readable), then every other task of the host
/// in uninterruptible sleep (state D) or running (state R), which may hold
/// what they wait for (a holder on a CPU the hypervisor stalled shows as
/// running): the report of a run that hung.
pub fn kernel_stacks(pid: u32) -> String {
    let mut s = String::new();
    let mut pids = vec![pid.to_string()];
    let children = format!("/proc/{pid}/task/{pid}/children");
    pids.extend(
        std::fs::read_to_string(children)
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string),
    );
    for p in &pids {
        for t in tasks_of(p) {
            s += &task_report(&t).1;
        }
    }
    let mut others = String::new();
    let all = std::fs::read_dir("/proc").into_iter().flatten().flatten();
    for p in all.filter_map(|e| e.file_name().into_string().ok()) {
        if !p.bytes().all(|b| b.is_ascii_digit()) || pids.contains(&p) {
            continue;
        }
        for t in tasks_of(&p) {
            let (state, report) = task_report(&t);
            if state == "D" || state == "R" {
                others += &report;
            }
        }
    }
    if !others.is_empty() {
        s += "other tasks in state D or R:\n";
        s += &others;
    }
    s
}

/// The task directories of process `p` (/proc/P/task/T).
fn tasks_of(p: &str) -> Vec<std::path::PathBuf> {
    let tasks = std::fs::read_dir(format!("/proc/{p}/task"));
    tasks
        .into_iter()
        .flatten()
        .flatten()
        .map(|t| t.path())
        .collect()
}

/// A task's state letter, and its report: path, command, state, wait
/// channel, kernel stack.
fn task_report(path: &std::path::Path) -> (String, String) {
    let read = |f: &str| std::fs::read_to_string(path.join(f)).unwrap_or_default();
    let stat = read("stat");
    let state = stat.rsplit(") ").next().unwrap_or("").split(' ').next();
    let state = state.unwrap_or("?").to_string();
    let report = format!(
        "{} ({}): state {state}, wchan {}\n{}",
        path.display(),
        read("comm").trim_end(),
        read("wchan"),
        read("stack")
    );
    (state, report)
}

/// Waits at most `limit` for `child` to be reaped: whether it was.
pub fn reap_within(child: &mut Child, limit: Duration) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}
