//! Running binaries from tests: a command's exit code and text output, JSON
//! output that must come from a successful run, and the workspace binaries
//! of this crate built on demand.
//!
//! ```no_run
//! use kcmp_testkit::cli;
//! let (code, out, _err) = cli::run("true", &[]);
//! assert_eq!((code, out.as_str()), (0, ""));
//! ```

use serde_json::Value;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `cmd` to completion and returns (exit code, stdout, stderr), the
/// streams decoded lossily as UTF-8 and the code `-1` when a signal killed
/// it. Panics when the command cannot be started.
pub fn output_of(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("run {:?}: {e}", cmd.get_program()));
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

/// Runs `bin args...` (inheriting stdin and the environment) and returns
/// (exit code, stdout, stderr) as [`output_of`] does.
pub fn run(bin: impl AsRef<OsStr>, args: &[&str]) -> (i32, String, String) {
    output_of(Command::new(bin).args(args))
}

/// Checks the result of a run that must succeed and print JSON: exit code 0,
/// no panic message on stderr, stdout parses. `what` names the run in every
/// failure message.
pub fn success_json(what: &str, (code, out, err): (i32, String, String)) -> Value {
    assert!(!err.contains("panicked"), "{what}: panicked: {err}");
    assert_eq!(code, 0, "{what}: exited {code}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{what}: bad JSON ({e}): {out}"))
}

/// Bytes as text, invalid UTF-8 replaced.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts that a finished command succeeded, showing its status, stdout and
/// stderr otherwise; `what` names the command.
pub fn assert_success(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// The kcmp binary under test: `$KCMP_TEST_BIN` when set (to run a test
/// against another build, e.g. an older one that should fail it), else
/// `built` (pass `env!("CARGO_BIN_EXE_kcmp")`).
///
/// ```
/// let bin = kcmp_testkit::cli::kcmp_under_test("/usr/bin/kcmp");
/// assert!(bin.is_absolute());
/// ```
pub fn kcmp_under_test(built: &str) -> PathBuf {
    std::env::var_os("KCMP_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(built))
}

/// The path of the kcmp-testkit binary `name` in the directory of
/// `sibling` (a binary cargo built, e.g. `env!("CARGO_BIN_EXE_kcmp")`),
/// building it with `cargo build -p kcmp-testkit --bin NAME` into the same
/// target directory and profile when it is absent (`cargo test -p kcmp-cli`
/// builds only that package's binaries). Panics when the build fails.
pub fn testkit_bin_next_to(sibling: impl AsRef<Path>, name: &str) -> PathBuf {
    let dir = sibling.as_ref().parent().expect("a binary's directory");
    let path = dir.join(name);
    if !path.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-q", "-p", "kcmp-testkit", "--bin", name]);
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        if let Some(target) = dir.parent() {
            cmd.arg("--target-dir").arg(target);
        }
        let st = cmd.status().expect("running cargo build");
        assert!(
            st.success(),
            "cargo build -p kcmp-testkit --bin {name} failed"
        );
    }
    assert!(path.is_file(), "{} missing", path.display());
    path
}

/// A program started with stdin empty and its stdout and stderr collected
/// on threads, waited for with a limit (a run that hangs is the finding).
///
/// ```no_run
/// use kcmp_testkit::cli::Spawned;
/// let run = Spawned::start("/bin/echo", &["hi".to_string()]);
/// let (code, out, _err) = run.wait_within(std::time::Duration::from_secs(5)).unwrap();
/// assert_eq!((code, out.as_str()), (0, "hi\n"));
/// ```
#[derive(Debug)]
pub struct Spawned {
    child: std::process::Child,
    out: std::thread::JoinHandle<String>,
    err: std::thread::JoinHandle<String>,
}

impl Spawned {
    /// Starts `bin args`. Panics when it cannot be started.
    pub fn start(bin: impl AsRef<OsStr>, args: &[String]) -> Spawned {
        use std::process::Stdio;
        let mut child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the program");
        let collect = |mut from: Box<dyn std::io::Read + Send>| {
            std::thread::spawn(move || {
                let mut s = Vec::new();
                let _ = from.read_to_end(&mut s);
                text(&s)
            })
        };
        let out = collect(Box::new(child.stdout.take().expect("piped stdout")));
        let err = collect(Box::new(child.stderr.take().expect("piped stderr")));
        Spawned { child, out, err }
    }

    /// Its pid.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The child itself (to signal it, say).
    pub fn child(&mut self) -> &mut std::process::Child {
        &mut self.child
    }

    /// (exit code, stdout, stderr) once it exits within `limit` (code -1
    /// for a death by signal); the still running child otherwise (not
    /// killed: the caller decides).
    pub fn wait_within(
        mut self,
        limit: std::time::Duration,
    ) -> Result<(i32, String, String), std::process::Child> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(st) = self.child.try_wait().expect("wait for the program") {
                let (out, err) = (self.out.join().unwrap(), self.err.join().unwrap());
                return Ok((st.code().unwrap_or(-1), out, err));
            }
            if std::time::Instant::now() > deadline {
                return Err(self.child);
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}
