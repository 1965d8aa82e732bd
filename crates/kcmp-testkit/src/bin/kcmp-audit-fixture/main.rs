//! `kcmp-audit-fixture`: processes that plant each finding of `kcmp audit`
//! (`plant`), or share only by design (`clean`), built as the truth says.
//!
//! Usage: `kcmp-audit-fixture plant|clean`. Must run as root (it mounts a
//! tmpfs in a mount namespace of its own, unshares namespaces, and drops
//! children to uid 65534). It prints one line of JSON and keeps everything
//! in place until its stdin reaches EOF, then kills its children, removes
//! its files and exits. Children die with it (PR_SET_PDEATHSIG).
//!
//! Truth: `{"root": R, "mode": M, "dir": D, "children": {"name": PID},
//! "expected": [{"rule", "severity", "target", "kind", "holders":
//! [{"pid", "fd"}], "tfd"?}], "deleted_bytes"?: N}` — in `plant`, every
//! finding the audit must report and no other; in `clean`, the info
//! findings that sharing by design gives (`cross-namespace` of a pipe and
//! a socket; stdio crossing the namespace too, not listed: it depends on
//! the fixture's own stdio).
//!
//! The fixture exec's a copy of itself (`D/kcmp-audit-helper hold …`) as
//! "another program": a different `/proc/PID/exe`, never found via PATH.

mod clean;
mod plant;
mod sys;

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use sys::R;

/// The fixture's state: its children and what the audit must find.
pub struct Fx {
    pub root: i32,
    pub dir: PathBuf,
    pub helper: PathBuf,
    pub children: Vec<(String, i32)>,
    pub expected: Vec<Value>,
}

/// What a forked child does after closing every fd but its own.
pub enum Then {
    /// Pause (after running the closure).
    Pause(Box<dyn FnOnce() -> R<()>>),
    /// Clear O_CLOEXEC on `clear` (so that they survive), then exec the
    /// helper with `args` (`--ready FD --parent P` are added).
    Exec {
        /// Fds whose O_CLOEXEC is cleared in the child.
        clear: Vec<i32>,
        /// The helper's arguments.
        args: Vec<String>,
    },
}

impl Fx {
    /// Forks child `name` keeping exactly the fds `keep` (same numbers),
    /// which then does `then`; returns once it is ready.
    pub fn child(&mut self, name: &str, keep: &[i32], then: Then) -> R<i32> {
        let (sync_r, sync_w) = sys::pipe(0)?;
        let parent = self.root;
        let pid = sys::fork()?;
        if pid == 0 {
            sys::die_with_parent(parent);
            let mut all = keep.to_vec();
            all.push(sync_w);
            sys::close_all_except(&all);
            let err = match then {
                Then::Pause(f) => match f() {
                    Ok(()) => {
                        let _ = sys::write_all(sync_w, b"!");
                        let _ = sys::close(sync_w);
                        sys::pause_forever();
                    }
                    Err(e) => e,
                },
                Then::Exec { clear, mut args } => {
                    for fd in clear {
                        let _ = sys::set_cloexec(fd, false);
                    }
                    args.insert(0, "kcmp-audit-helper".into());
                    args.extend(["--ready".into(), sync_w.to_string()]);
                    args.extend(["--parent".into(), parent.to_string()]);
                    sys::exec(&self.helper, &args)
                }
            };
            let _ = std::io::stderr()
                .write_all(format!("kcmp-audit-fixture: {name}: {err}\n").as_bytes());
            sys::exit_now(1);
        }
        sys::close(sync_w)?;
        let ready = sys::read_byte(sync_r);
        sys::close(sync_r)?;
        self.children.push((name.to_string(), pid));
        if !ready {
            return Err(format!("child {name} failed before it was ready"));
        }
        Ok(pid)
    }

    /// A child's pid by name (0 when there is none).
    pub fn child_pid(&self, name: &str) -> i32 {
        self.children
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |c| c.1)
    }

    /// Records a finding the audit must report.
    pub fn expect(
        &mut self,
        rule: &str,
        severity: &str,
        target: &str,
        kind: &str,
        holders: &[(i32, i32)],
    ) {
        let mut h: Vec<(i32, i32)> = holders.to_vec();
        h.sort_unstable();
        let holders: Vec<Value> = h
            .iter()
            .map(|&(pid, fd)| json!({"pid": pid, "fd": fd}))
            .collect();
        self.expected.push(json!({
            "rule": rule, "severity": severity, "target": target, "kind": kind, "holders": holders,
        }));
    }

    /// Copies this executable to `dir/kcmp-audit-helper`: another program.
    pub fn install_helper(&mut self) -> R<()> {
        let me =
            std::fs::read_link("/proc/self/exe").map_err(|e| format!("/proc/self/exe: {e}"))?;
        std::fs::copy(&me, &self.helper).map_err(|e| format!("copy {}: {e}", me.display()))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&self.helper, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("chmod: {e}"))
    }

    fn truth(&self, mode: &str, extra: Value) -> Value {
        let children: serde_json::Map<String, Value> = self
            .children
            .iter()
            .map(|(n, p)| (n.clone(), json!(p)))
            .collect();
        let mut v = json!({
            "root": self.root,
            "mode": mode,
            "dir": self.dir.to_string_lossy(),
            "children": children,
            "expected": self.expected,
        });
        if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
            o.extend(e);
        }
        v
    }
}

/// `pipe:[ino]` of a pipe end.
pub fn pipe_target(fd: i32) -> R<String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(format!("/proc/self/fd/{fd}"))
        .map_err(|e| format!("stat fd {fd}: {e}"))?;
    Ok(format!("pipe:[{}]", m.ino()))
}

/// `socket:[ino]` of a socket.
pub fn socket_target(fd: i32) -> R<String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(format!("/proc/self/fd/{fd}"))
        .map_err(|e| format!("stat fd {fd}: {e}"))?;
    Ok(format!("socket:[{}]", m.ino()))
}

/// A path as a target string (lossy UTF-8, like the scan's).
pub fn path_target(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The exec'd helper: `hold [--cloexec FD]... [--uid U] --ready FD --parent P`.
fn hold(args: &[String]) -> ! {
    let mut ready = None;
    let mut parent = 0;
    let mut uid = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v: i64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(-1);
        match a.as_str() {
            "--cloexec" => {
                let _ = sys::set_cloexec(v as i32, true);
            }
            "--uid" => uid = Some(v as u32),
            "--ready" => ready = Some(v as i32),
            "--parent" => parent = v as i32,
            _ => sys::exit_now(2),
        }
    }
    if let Some(u) = uid {
        if sys::become_user(u).is_err() {
            sys::exit_now(1);
        }
        // A change of uid clears the parent-death signal: set it again.
        sys::die_with_parent(parent);
    }
    if let Some(fd) = ready {
        let _ = sys::set_cloexec(fd, true);
        let _ = sys::write_all(fd, b"!");
        let _ = sys::close(fd);
    }
    sys::pause_forever()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str).unwrap_or("");
    if mode == "hold" {
        hold(&args[1..]);
    }
    if mode != "plant" && mode != "clean" {
        eprintln!("usage: kcmp-audit-fixture plant|clean");
        std::process::exit(2);
    }
    let root = sys::getpid();
    let dir = std::env::temp_dir().join(format!("kcmp-audit.{root}"));
    let mut fx = Fx {
        root,
        helper: dir.join("kcmp-audit-helper"),
        dir,
        children: Vec::new(),
        expected: Vec::new(),
    };
    let built = if mode == "plant" {
        plant::build(&mut fx)
    } else {
        clean::build(&mut fx)
    };
    let code = match built {
        Ok(extra) => {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", fx.truth(mode, extra));
            let _ = out.flush();
            drop(out);
            let mut sink = [0u8; 64];
            let mut stdin = std::io::stdin().lock();
            while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
            0
        }
        Err(e) => {
            eprintln!("kcmp-audit-fixture: {e}");
            1
        }
    };
    for (_, pid) in &fx.children {
        sys::kill_and_reap(*pid);
    }
    if mode == "plant" {
        plant::cleanup(&fx);
    } else {
        clean::cleanup(&fx);
    }
    std::process::exit(code);
}
