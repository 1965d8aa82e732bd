//! The `kcmp-epoll-fixture` binary of this crate, from a test: it builds
//! epoll instances whose registrations are known by construction and prints
//! them as one line of JSON (`{"root": P, "epolls": [{"name": ..,
//! "holders": [{"pid", "fd"}], "registrations": [...]}, ...]}`), then keeps
//! everything open until its stdin reaches EOF.
//!
//! ```no_run
//! use kcmp_testkit::epoll::EpollFixture;
//! let fx = EpollFixture::spawn(4);
//! let epfd = fx.epfd("classic");
//! assert!(epfd >= 0);
//! ```

use crate::process::{close_and_reap, read_line_within};
use crate::workspace_bin;
use serde_json::Value;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

/// How long [`EpollFixture::spawn`] waits for the truth line.
pub const EPOLL_SPAWN_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `kcmp-epoll-fixture`: its truth, and its stdin. Dropping it
/// closes stdin and waits (bounded, then kills) for the fixture to exit.
#[derive(Debug)]
pub struct EpollFixture {
    child: Child,
    stdin: Option<ChildStdin>,
    truth: Value,
}

impl EpollFixture {
    /// Starts `kcmp-epoll-fixture K` (K stale registrations under one
    /// closed fd number) and waits at most [`EPOLL_SPAWN_TIMEOUT`] for its
    /// truth. Panics on failure: this is a test helper.
    pub fn spawn(k: usize) -> EpollFixture {
        let bin = workspace_bin("kcmp-epoll-fixture");
        let mut child = Command::new(bin)
            .arg(k.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn kcmp-epoll-fixture");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let line = read_line_within(stdout, EPOLL_SPAWN_TIMEOUT)
            .expect("the fixture printed its truth in time");
        let truth: Value = serde_json::from_str(line.trim()).expect("truth is JSON");
        EpollFixture {
            child,
            stdin,
            truth,
        }
    }

    /// The whole truth JSON.
    pub fn truth(&self) -> &Value {
        &self.truth
    }

    /// The fixture's pid (it holds every epoll).
    pub fn root(&self) -> i64 {
        self.truth["root"].as_i64().unwrap()
    }

    /// Every epoll instance of the truth.
    pub fn epolls(&self) -> &[Value] {
        self.truth["epolls"].as_array().unwrap()
    }

    /// The epoll instance called `name`. Panics when there is none.
    pub fn epoll(&self, name: &str) -> &Value {
        self.epolls()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("no epoll {name} in the truth"))
    }

    /// The fd of epoll `name` in the root. Panics when the root holds none.
    pub fn epfd(&self, name: &str) -> i64 {
        let root = self.root();
        holders(&self.epoll(name)["holders"])
            .into_iter()
            .find(|h| h.0 == root)
            .expect("the root holds every epoll")
            .1
    }
}

impl Drop for EpollFixture {
    fn drop(&mut self) {
        close_and_reap(&mut self.child, self.stdin.take(), Duration::from_secs(30));
    }
}

/// A JSON array of `{"pid": P, "fd": F}` objects as sorted (pid, fd) pairs.
pub fn holders(v: &Value) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["pid"].as_i64().unwrap(), h["fd"].as_i64().unwrap()))
        .collect();
    out.sort_unstable();
    out
}
