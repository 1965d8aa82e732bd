//! Test support for kcmp: real process topologies with known sharing.
//!
//! The `kcmp-topology` binary of this crate builds a set of processes whose
//! sharing is known *by construction* (what the fixture did: fork, dup,
//! `open()`, `SCM_RIGHTS`, `clone()` flags, ...), prints one line of JSON —
//! "the truth" — and keeps everything in place until its stdin reaches EOF.
//! This library spawns it ([`Topology::spawn`]) and deserializes the truth
//! ([`Truth`]) so that tests can compare what kcmp (or a scan built on it)
//! says against it. The crate deliberately does not depend on the `kcmp`
//! library: the ground truth must not come from the code under test.
//!
//! ```no_run
//! use kcmp_testkit::Topology;
//! let topo = Topology::spawn("basic", &[]);
//! let truth = topo.truth();
//! let parent = truth.fd("parent_file");
//! let inherited = truth.fd("child_inherited");
//! assert!(truth.same_file(parent, inherited));
//! ```
//!
//! ## The truth JSON
//! `{"root": P, "scenario": S, "tasks": [...], "files": [...], "shared": {...},
//! "shared_threads": {...}, "present": {...}, "named": {...}}` — see [`Truth`].

pub mod audit;
pub mod cli;
pub mod epoll;
pub mod process;
pub mod scan_json;
pub mod schema;

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long [`Topology::spawn`] waits for the truth line.
pub const SPAWN_TIMEOUT: Duration = Duration::from_secs(120);

/// One (process, fd) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FdRef {
    /// The process id (a thread-group leader).
    pub pid: i32,
    /// The fd number in that process.
    pub fd: i32,
}

/// One process of the topology.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskTruth {
    /// The process id.
    pub pid: i32,
    /// All thread ids, the leader (== pid) first.
    pub tids: Vec<i32>,
    /// True for an exited, unreaped child.
    pub zombie: bool,
    /// What this process is for (`"root"`, `"worker3"`, `"vm_child"`, ...).
    pub label: String,
}

/// One open file description and every (pid, fd) that refers to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileTruth {
    /// Who created it and how (`"root:pipe-r#4"`).
    pub label: String,
    /// The kind of file (`file`, `opath`, `pipe-r`, `pipe-w`, `socket`, `eventfd`,
    /// `epoll`, `stdin`, `stdout`, `stderr`).
    #[serde(default)]
    pub kind: String,
    /// Every (pid, fd) referring to it, sorted.
    pub members: Vec<FdRef>,
}

/// Groups of tasks that share each per-process kernel object, by construction.
///
/// Each group has at least two members (ascending), groups are sorted by
/// their first member. Absent objects (no I/O context, no SysV undo list, a
/// zombie's missing mm) are never "shared", although kcmp(2) compares them
/// equal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedTruth {
    /// Address space (`CLONE_VM`).
    pub vm: Vec<Vec<i32>>,
    /// fd table (`CLONE_FILES`).
    pub files: Vec<Vec<i32>>,
    /// cwd/root/umask (`CLONE_FS`).
    pub fs: Vec<Vec<i32>>,
    /// Signal handlers (`CLONE_SIGHAND`).
    pub sighand: Vec<Vec<i32>>,
    /// I/O context (`CLONE_IO`).
    pub io: Vec<Vec<i32>>,
    /// SysV semaphore undo list (`CLONE_SYSVSEM`).
    pub sysvsem: Vec<Vec<i32>>,
}

/// The names of the six per-process resources, as used in the JSON.
pub const RESOURCES: [&str; 6] = ["vm", "files", "fs", "sighand", "io", "sysvsem"];

impl SharedTruth {
    /// The groups for a resource by name (`"vm"`, ..., `"sysvsem"`).
    ///
    /// Panics on an unknown name.
    pub fn groups(&self, resource: &str) -> &[Vec<i32>] {
        match resource {
            "vm" => &self.vm,
            "files" => &self.files,
            "fs" => &self.fs,
            "sighand" => &self.sighand,
            "io" => &self.io,
            "sysvsem" => &self.sysvsem,
            other => panic!("unknown resource {other:?}"),
        }
    }

    /// Mutable access by name (used by the fixture to build the truth).
    pub fn groups_mut(&mut self, resource: &str) -> &mut Vec<Vec<i32>> {
        match resource {
            "vm" => &mut self.vm,
            "files" => &mut self.files,
            "fs" => &mut self.fs,
            "sighand" => &mut self.sighand,
            "io" => &mut self.io,
            "sysvsem" => &mut self.sysvsem,
            other => panic!("unknown resource {other:?}"),
        }
    }

    /// True when `a` and `b` are different tasks in one group of `resource`.
    pub fn shares(&self, resource: &str, a: i32, b: i32) -> bool {
        a != b
            && self
                .groups(resource)
                .iter()
                .any(|g| g.contains(&a) && g.contains(&b))
    }

    /// The group containing `pid`, if it shares `resource` with anyone.
    pub fn group_of(&self, resource: &str, pid: i32) -> Option<&[i32]> {
        self.groups(resource)
            .iter()
            .find(|g| g.contains(&pid))
            .map(|g| g.as_slice())
    }
}

/// Tasks known to own an object that is allocated lazily, by construction.
///
/// `io`: tasks that got an I/O context from `ioprio_set` or from a parent
/// with a valid I/O priority (fork gives such a child its own context) or by
/// `CLONE_IO`. Other tasks have none — unless the fixture itself was started
/// with a valid I/O priority (e.g. under `ionice`), in which case every fork
/// gets its own context (still shared with nobody).
/// `sysvsem`: tasks with a SysV undo list (`semop` with `SEM_UNDO`,
/// `clone(CLONE_SYSVSEM)`, or a process that created threads: glibc and musl
/// pass `CLONE_SYSVSEM` to `clone` in `pthread_create`). Every other task has
/// none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresentTruth {
    /// Tasks (leader pids) with an I/O context.
    pub io: Vec<i32>,
    /// Tasks (leader pids) with a SysV undo list.
    pub sysvsem: Vec<i32>,
}

/// A named item of the topology: an fd of a process, or a number (a pid, a
/// tid, or an fd number that is no longer open, as the name says).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Named {
    /// `{"pid": P, "fd": F}`.
    FdNum(FdRef),
    /// A bare number.
    Number(i64),
}

/// The fixture's ground truth (one line of JSON on its stdout).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Truth {
    /// The fixture's own pid (the root of the topology).
    pub root: i32,
    /// The scenario name.
    #[serde(default)]
    pub scenario: String,
    /// Every process, root and zombies included.
    pub tasks: Vec<TaskTruth>,
    /// Every (pid, fd) of every non-zombie process, grouped by open file description.
    pub files: Vec<FileTruth>,
    /// Sharing between processes (leader pids).
    pub shared: SharedTruth,
    /// Sharing between tasks when every thread counts as a task (tids).
    pub shared_threads: SharedTruth,
    /// Tasks that own lazily-allocated objects.
    #[serde(default)]
    pub present: PresentTruth,
    /// Named pids, tids and fds.
    pub named: BTreeMap<String, Named>,
}

impl Truth {
    /// Parses the truth line.
    pub fn from_json(line: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(line)
    }

    /// All process ids, root and zombies included, ascending.
    pub fn pids(&self) -> Vec<i32> {
        let mut v: Vec<i32> = self.tasks.iter().map(|t| t.pid).collect();
        v.sort_unstable();
        v
    }

    /// Process ids of the processes that are not zombies, ascending.
    pub fn live_pids(&self) -> Vec<i32> {
        let mut v: Vec<i32> = self
            .tasks
            .iter()
            .filter(|t| !t.zombie)
            .map(|t| t.pid)
            .collect();
        v.sort_unstable();
        v
    }

    /// Process ids of the zombies, ascending.
    pub fn zombies(&self) -> Vec<i32> {
        let mut v: Vec<i32> = self
            .tasks
            .iter()
            .filter(|t| t.zombie)
            .map(|t| t.pid)
            .collect();
        v.sort_unstable();
        v
    }

    /// Every thread id of every live process, ascending.
    pub fn live_tids(&self) -> Vec<i32> {
        let mut v: Vec<i32> = self
            .tasks
            .iter()
            .filter(|t| !t.zombie)
            .flat_map(|t| t.tids.iter().copied())
            .collect();
        v.sort_unstable();
        v
    }

    /// The task with this pid.
    pub fn task(&self, pid: i32) -> Option<&TaskTruth> {
        self.tasks.iter().find(|t| t.pid == pid)
    }

    /// The task with this label.
    pub fn task_by_label(&self, label: &str) -> Option<&TaskTruth> {
        self.tasks.iter().find(|t| t.label == label)
    }

    /// The open file descriptions as a set of sorted member lists, for exact
    /// comparison with a scan.
    pub fn partition(&self) -> BTreeSet<Vec<FdRef>> {
        self.files
            .iter()
            .map(|f| {
                let mut m = f.members.clone();
                m.sort_unstable();
                m
            })
            .collect()
    }

    /// Every (pid, fd) listed, sorted.
    pub fn all_fds(&self) -> Vec<FdRef> {
        let mut v: Vec<FdRef> = self
            .files
            .iter()
            .flat_map(|f| f.members.iter().copied())
            .collect();
        v.sort_unstable();
        v
    }

    /// The fds of one process, sorted.
    pub fn fds_of(&self, pid: i32) -> Vec<i32> {
        let mut v: Vec<i32> = self
            .files
            .iter()
            .flat_map(|f| f.members.iter())
            .filter(|m| m.pid == pid)
            .map(|m| m.fd)
            .collect();
        v.sort_unstable();
        v
    }

    /// The index (into [`Truth::files`]) of the description `r` refers to.
    pub fn file_index(&self, r: FdRef) -> Option<usize> {
        self.files.iter().position(|f| f.members.contains(&r))
    }

    /// The description `r` refers to.
    pub fn file_of(&self, r: FdRef) -> Option<&FileTruth> {
        self.file_index(r).map(|i| &self.files[i])
    }

    /// True when both refer to one open file description. Panics when
    /// either is not in the truth.
    pub fn same_file(&self, a: FdRef, b: FdRef) -> bool {
        let ia = self
            .file_index(a)
            .unwrap_or_else(|| panic!("{a:?} is not in the truth"));
        let ib = self
            .file_index(b)
            .unwrap_or_else(|| panic!("{b:?} is not in the truth"));
        ia == ib
    }

    /// A named fd. Panics (naming what exists) when missing or not an fd.
    pub fn fd(&self, name: &str) -> FdRef {
        match self.named.get(name) {
            Some(Named::FdNum(r)) => *r,
            other => panic!(
                "named fd {name:?} not in the truth (got {other:?}); names: {:?}",
                self.named.keys().collect::<Vec<_>>()
            ),
        }
    }

    /// A named pid, tid or number. Panics when missing or an fd.
    pub fn number(&self, name: &str) -> i64 {
        match self.named.get(name) {
            Some(Named::Number(n)) => *n,
            other => panic!(
                "named number {name:?} not in the truth (got {other:?}); names: {:?}",
                self.named.keys().collect::<Vec<_>>()
            ),
        }
    }

    /// A named pid or tid (as `i32`).
    pub fn pid(&self, name: &str) -> i32 {
        i32::try_from(self.number(name)).expect("named pid fits in i32")
    }
}

/// Where to look for a binary of this workspace: `KCMP_<NAME>_BIN`-style
/// override first (the caller passes the variable), then the directory of
/// the running test executable and its parent (cargo puts integration tests
/// in `target/<profile>/deps/` and binaries in `target/<profile>/`).
fn find_bin(name: &str, env_var: Option<&str>) -> Result<PathBuf, String> {
    if let Some(var) = env_var {
        if let Some(p) = std::env::var_os(var) {
            let p = PathBuf::from(p);
            if p.is_file() {
                return Ok(p);
            }
            return Err(format!("{var}={} is not a file", p.display()));
        }
    }
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut tried = Vec::new();
    let mut dir = exe.parent();
    for _ in 0..2 {
        let Some(d) = dir else { break };
        let cand = d.join(name);
        if cand.is_file() {
            return Ok(cand);
        }
        tried.push(cand);
        dir = d.parent();
    }
    Err(format!(
        "binary {name:?} not found (tried {tried:?}{}); build it first, e.g. `cargo build --workspace` \
         or `cargo test --workspace`",
        env_var
            .map(|v| format!(", and ${v} is unset"))
            .unwrap_or_default()
    ))
}

/// The path of a binary of this workspace (e.g. `"kcmp"`, `"kcmp-topology"`),
/// found next to the running test executable. Panics with a hint when absent.
///
/// ```no_run
/// let kcmp = kcmp_testkit::workspace_bin("kcmp");
/// assert!(kcmp.is_file());
/// ```
pub fn workspace_bin(name: &str) -> PathBuf {
    let var = format!("KCMP_{}_BIN", name.to_ascii_uppercase().replace('-', "_"));
    find_bin(name, Some(&var)).unwrap_or_else(|e| panic!("{e}"))
}

/// The fixture binary: `$KCMP_TOPOLOGY_BIN`, or `kcmp-topology` next to the
/// test executable.
pub fn topology_bin() -> Result<PathBuf, String> {
    find_bin("kcmp-topology", Some("KCMP_TOPOLOGY_BIN"))
}

/// A running fixture. Dropping it closes the fixture's stdin and waits for
/// it to kill and reap its processes.
#[derive(Debug)]
pub struct Topology {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    truth: Truth,
    line: String,
}

impl Topology {
    /// Starts `kcmp-topology <scenario> <args...>` and waits (at most
    /// [`SPAWN_TIMEOUT`]) for its truth. Panics with the fixture's error on
    /// failure: this is a test helper.
    ///
    /// ```no_run
    /// let t = kcmp_testkit::Topology::spawn("general", &["--procs", "4", "--fds", "8"]);
    /// assert!(t.truth().tasks.len() > 4);
    /// ```
    pub fn spawn(scenario: &str, args: &[&str]) -> Topology {
        Topology::try_spawn(scenario, args).unwrap_or_else(|e| panic!("kcmp-topology: {e}"))
    }

    /// Like [`Topology::spawn`], returning the error instead of panicking.
    pub fn try_spawn(scenario: &str, args: &[&str]) -> Result<Topology, String> {
        let bin = topology_bin()?;
        let mut child = Command::new(&bin)
            .arg(scenario)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("spawning {}: {e}", bin.display()))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let r = BufReader::new(stdout).read_line(&mut line).map(|_| line);
            let _ = tx.send(r);
        });
        let fail = |mut child: Child, msg: String| {
            let _ = child.kill();
            let _ = child.wait();
            Err(msg)
        };
        let line = match rx.recv_timeout(SPAWN_TIMEOUT) {
            Ok(Ok(line)) if !line.trim().is_empty() => line,
            Ok(Ok(_)) => {
                let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                return Err(format!(
                    "scenario {scenario:?} {args:?}: no truth on stdout (exit: {status})"
                ));
            }
            Ok(Err(e)) => return fail(child, format!("reading the truth: {e}")),
            Err(_) => {
                return fail(
                    child,
                    format!("scenario {scenario:?}: no truth within {SPAWN_TIMEOUT:?}"),
                )
            }
        };
        let truth = match Truth::from_json(line.trim()) {
            Ok(t) => t,
            Err(e) => return fail(child, format!("bad truth JSON ({e}): {line}")),
        };
        Ok(Topology {
            child: Some(child),
            stdin,
            truth,
            line: line.trim().to_string(),
        })
    }

    /// The ground truth.
    pub fn truth(&self) -> &Truth {
        &self.truth
    }

    /// The raw JSON line.
    pub fn json(&self) -> &str {
        &self.line
    }

    /// The fixture's pid (the topology's root).
    pub fn root(&self) -> i32 {
        self.truth.root
    }

    /// Closes stdin and waits (bounded) for the fixture to clean up; returns
    /// its exit code (`Some(0)` on a clean shutdown).
    pub fn finish(mut self) -> Option<i32> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        // If the fixture does not exit, it is killed; its children have
        // PR_SET_PDEATHSIG(SIGKILL) and die with it.
        process::close_and_reap(&mut child, self.stdin.take(), Duration::from_secs(30))
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The fd numbers open in `/proc/<pid>/fd`, sorted (read from /proc; for
/// checking the fixture, never for the truth itself).
pub fn proc_fds(pid: i32) -> std::io::Result<Vec<i32>> {
    let dir = Path::new("/proc").join(pid.to_string()).join("fd");
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if let Some(n) = e.file_name().to_str().and_then(|s| s.parse().ok()) {
            v.push(n);
        }
    }
    v.sort_unstable();
    Ok(v)
}

/// A process id that is certainly not in use: a child that was spawned and
/// reaped (its pid is free until the kernel reuses it after wrapping around).
pub fn reaped_pid() -> i32 {
    let mut c = Command::new("true")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn true");
    let pid = c.id() as i32;
    c.wait().expect("wait true");
    pid
}
