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

use crate::process::JsonFixture;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A running `kcmp-audit-fixture`. Dropping it closes its stdin and waits
/// (bounded, then kills) for it to exit; it kills its children and removes
/// its files itself.
#[derive(Debug)]
pub struct AuditFixture {
    running: JsonFixture,
}

impl AuditFixture {
    /// Starts `BIN MODE` and waits at most a minute for its truth. Panics
    /// on failure (a test helper; the fixture must run as root).
    pub fn spawn(bin: &Path, mode: &str) -> AuditFixture {
        let mut command = Command::new(bin);
        command.arg(mode).stderr(Stdio::inherit());
        let running = JsonFixture::start(&mut command, Duration::from_secs(60));
        AuditFixture { running }
    }

    /// The whole truth JSON.
    pub fn truth(&self) -> &Value {
        &self.running.json
    }

    /// The root's pid.
    pub fn root(&self) -> i64 {
        self.running.json["root"].as_i64().unwrap()
    }

    /// A child's pid by name (`ns_child`, `pipe_writer`, …).
    pub fn child_pid(&self, name: &str) -> i64 {
        self.running.json["children"][name]
            .as_i64()
            .unwrap_or_else(|| panic!("no child {name} in the truth"))
    }

    /// The findings expected (`[{"rule", "severity", "target", "kind",
    /// "holders": [{"pid", "fd"}]}]`).
    pub fn expected(&self) -> &[Value] {
        self.running.json["expected"].as_array().unwrap()
    }
}
