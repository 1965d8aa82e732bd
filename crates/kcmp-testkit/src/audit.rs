//! The `kcmp-audit-fixture` binary of this crate, from a test: processes
//! that plant each finding of `kcmp audit` (`plant`) or share only by
//! design (`clean`), with the findings expected printed as one line of
//! JSON (see the binary's documentation); everything stays in place until
//! the fixture's stdin reaches EOF.
//!
//! ```no_run
//! use kcmp_testkit::audit::AuditFixture;
//! let bin = kcmp_testkit::workspace_bin("kcmp-audit-fixture");
//! let fx = AuditFixture::spawn(&bin, "plant");
//! assert!(!fx.expected().is_empty());
//! ```

use crate::process::{close_and_reap, read_line_within};
use serde_json::Value;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

/// A running `kcmp-audit-fixture`. Dropping it closes its stdin and waits
/// (bounded, then kills) for it to exit; it kills its children and removes
/// its files itself.
#[derive(Debug)]
pub struct AuditFixture {
    child: Child,
    stdin: Option<ChildStdin>,
    truth: Value,
}

impl AuditFixture {
    /// Starts `BIN MODE` and waits at most a minute for its truth. Panics
    /// on failure (a test helper); the fixture must run as root.
    pub fn spawn(bin: &Path, mode: &str) -> AuditFixture {
        let mut child = Command::new(bin)
            .arg(mode)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn kcmp-audit-fixture");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let line = read_line_within(stdout, Duration::from_secs(60)).unwrap_or_default();
        let truth: Value = match serde_json::from_str(line.trim()) {
            Ok(v) => v,
            Err(_) => {
                close_and_reap(&mut child, stdin, Duration::from_secs(10));
                panic!(
                    "kcmp-audit-fixture {mode} printed no truth (it must run as root): {line:?}"
                );
            }
        };
        AuditFixture {
            child,
            stdin,
            truth,
        }
    }

    /// The whole truth JSON.
    pub fn truth(&self) -> &Value {
        &self.truth
    }

    /// The root's pid.
    pub fn root(&self) -> i64 {
        self.truth["root"].as_i64().unwrap()
    }

    /// A child's pid by name (`ns_child`, `pipe_writer`, …).
    pub fn child_pid(&self, name: &str) -> i64 {
        self.truth["children"][name]
            .as_i64()
            .unwrap_or_else(|| panic!("no child {name} in the truth"))
    }

    /// The findings expected (`[{"rule", "severity", "target", "kind",
    /// "holders": [{"pid", "fd"}]}]`).
    pub fn expected(&self) -> &[Value] {
        self.truth["expected"].as_array().unwrap()
    }
}

impl Drop for AuditFixture {
    fn drop(&mut self) {
        close_and_reap(&mut self.child, self.stdin.take(), Duration::from_secs(30));
    }
}
