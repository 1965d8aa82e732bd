//! `kcmp doctor`: does kcmp work here, which fallbacks and freeze methods
//! do, and why not. Every probe is actually tried, on the calling process's
//! own fds and on short-lived children it spawns itself.
//!
//! [`DoctorReport`] serializes to JSON with these keys (all snake_case):
//!
//! | key | meaning |
//! |---|---|
//! | `kernel` | `{"sysname", "release", "version", "machine"}` from uname(2) |
//! | `min_kernel` | `"3.5"`: the oldest Linux kcmp gives exact answers on ([`MIN_KERNEL`]) |
//! | `kernel_features` | `[{"name", "since", "present", "without"}]`, one per [`KERNEL_FEATURES`] entry: `present` compares the release with `since` (`null` when the release does not parse); `without` says what degrades below it |
//! | `euid` | the effective uid |
//! | `kcmp` | `{"works": bool, "errno": "ENOSYS"/"EPERM"/null, "cause": "not_in_kernel"/"seccomp_filter"/"sandbox"/"other"/null, "detail": "…"}` |
//! | `seccomp` | `{"mode": 0/1/2/null, "filters": N/null}` from /proc/self/status |
//! | `cap_sys_ptrace` | bool, `CAP_SYS_PTRACE` (bit 19) in `CapEff` of /proc/self/status |
//! | `ptrace_scope` | `{"value": 0..3/null (no Yama), "meaning": "…"}` |
//! | `fallbacks` | `{"f_dupfd_query", "pidfd_getfd", "epoll_trick"}`, each a check |
//! | `freeze` | `{"ptrace", "cgroup_freeze", "sigstop"}`, each a check |
//! | `unprivileged` | what a normal user will see, in words |
//! | `usable` | bool: kcmp or a same-process fallback works (exit 0) |
//!
//! A check is `{"works": bool, "detail": "…"}`.
//!
//! ```no_run
//! let report = kcmp_map::doctor::run();
//! println!("{}", report.kcmp.detail);
//! assert_eq!(report.usable, report.kcmp.works || report.fallbacks.f_dupfd_query.works
//!     || report.fallbacks.epoll_trick.works);
//! ```

mod features;

pub use features::{kernel_features, release_version, KernelFeature, KERNEL_FEATURES, MIN_KERNEL};

use crate::freeze;
use kcmp::errno_name;
use kcmp::fallback::{self, Availability};
use kcmp::Pid;
use serde::Serialize;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// The kernel, from uname(2).
#[derive(Debug, Clone, Serialize)]
pub struct Kernel {
    /// `"Linux"`.
    pub sysname: String,
    /// E.g. `"6.18.4"`.
    pub release: String,
    /// The build string.
    pub version: String,
    /// E.g. `"x86_64"`.
    pub machine: String,
}

/// Whether kcmp works, and if not, why.
#[derive(Debug, Clone, Serialize)]
pub struct KcmpCheck {
    /// True when kcmp answered a self-vs-self probe.
    pub works: bool,
    /// The probe's errno name, when it failed.
    pub errno: Option<&'static str>,
    /// The likely cause's name ([`fallback::Cause::name`]), when it failed.
    pub cause: Option<&'static str>,
    /// In words.
    pub detail: String,
}

/// The seccomp state of the calling process.
#[derive(Debug, Clone, Serialize)]
pub struct Seccomp {
    /// 0 none, 1 strict, 2 filter; `None` when /proc/self/status lacks it.
    pub mode: Option<u32>,
    /// How many filters are installed (`Seccomp_filters`).
    pub filters: Option<u32>,
}

/// One probe's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// True when the method works here.
    pub works: bool,
    /// What was tried and what happened.
    pub detail: String,
}

impl Check {
    fn ok(detail: impl Into<String>) -> Self {
        Check {
            works: true,
            detail: detail.into(),
        }
    }
    fn fail(detail: impl Into<String>) -> Self {
        Check {
            works: false,
            detail: detail.into(),
        }
    }
}

/// Yama's ptrace_scope.
#[derive(Debug, Clone, Serialize)]
pub struct PtraceScope {
    /// 0..=3, or `None` when Yama is not enabled.
    pub value: Option<u32>,
    /// What it means, in words.
    pub meaning: String,
}

/// The fallbacks for comparing open file descriptions without kcmp.
#[derive(Debug, Clone, Serialize)]
pub struct Fallbacks {
    /// `fcntl(F_DUPFD_QUERY)` (Linux 6.10+).
    pub f_dupfd_query: Check,
    /// `pidfd_open` + `pidfd_getfd` (Linux 5.6+).
    pub pidfd_getfd: Check,
    /// The epoll trick.
    pub epoll_trick: Check,
}

/// The ways to stop processes while inspecting them.
#[derive(Debug, Clone, Serialize)]
pub struct FreezeMethods {
    /// PTRACE_SEIZE + PTRACE_INTERRUPT (what `--freeze` uses).
    pub ptrace: Check,
    /// cgroup v2 `cgroup.freeze` (looked for, not used).
    pub cgroup_freeze: Check,
    /// SIGSTOP / SIGCONT on a child of this process.
    pub sigstop: Check,
}

/// Everything `kcmp doctor` reports. See the [module docs](self) for the JSON keys.
#[derive(Debug, Clone, Serialize)]
pub struct DoctorReport {
    /// uname(2).
    pub kernel: Kernel,
    /// [`MIN_KERNEL`].
    pub min_kernel: &'static str,
    /// [`KERNEL_FEATURES`] on this kernel.
    pub kernel_features: Vec<KernelFeature>,
    /// The effective uid.
    pub euid: u32,
    /// kcmp itself.
    pub kcmp: KcmpCheck,
    /// The seccomp state.
    pub seccomp: Seccomp,
    /// `CAP_SYS_PTRACE` in the effective set.
    pub cap_sys_ptrace: bool,
    /// Yama's ptrace_scope.
    pub ptrace_scope: PtraceScope,
    /// Fallbacks for file comparisons.
    pub fallbacks: Fallbacks,
    /// Freeze methods.
    pub freeze: FreezeMethods,
    /// Whether a scan's copies skip their mount checks here (no FUSE
    /// connection, no network filesystem type: README, "A server-free host
    /// needs no check per copy"), and why.
    pub server_free_host: Check,
    /// What a normal (unprivileged) user will see.
    pub unprivileged: String,
    /// True when kcmp or a same-process fallback works.
    pub usable: bool,
}

/// A field of /proc/self/status, e.g. `status_field("CapEff")`.
fn status_field(key: &str) -> Option<String> {
    crate::procfs::read_status_field(kcmp::Pid::this(), key.trim_end_matches(':')).ok()?
}

/// True when `CAP_SYS_PTRACE` (bit 19) is in `CapEff` of /proc/self/status.
pub fn has_cap_sys_ptrace() -> bool {
    status_field("CapEff:")
        .and_then(|v| u64::from_str_radix(&v, 16).ok())
        .is_some_and(|caps| caps & (1 << 19) != 0)
}

/// Yama's ptrace_scope, explained.
pub fn ptrace_scope() -> PtraceScope {
    let value = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    let meaning = match value {
        None => "Yama is not enabled: no restriction beyond the usual ptrace rules",
        Some(0) => "0 (classic): a process may attach to any process of its user",
        Some(1) => {
            "1 (restricted): ptrace attach only to descendants (or to processes that allow it \
             with PR_SET_PTRACER), unless CAP_SYS_PTRACE"
        }
        Some(2) => "2 (admin-only): ptrace attach needs CAP_SYS_PTRACE",
        Some(3) => "3 (no attach): ptrace attach is disabled for everyone",
        Some(_) => "an unknown value",
    }
    .to_string();
    PtraceScope { value, meaning }
}

fn kernel() -> Kernel {
    let u = rustix::system::uname();
    let s = |c: &std::ffi::CStr| c.to_string_lossy().into_owned();
    Kernel {
        sysname: s(u.sysname()),
        release: s(u.release()),
        version: s(u.version()),
        machine: s(u.machine()),
    }
}

fn check_kcmp() -> KcmpCheck {
    match fallback::probe_kcmp() {
        Availability::Available => KcmpCheck {
            works: true,
            errno: None,
            cause: None,
            detail: "kcmp works (KCMP_VM of this process against itself answered)".into(),
        },
        Availability::Unavailable { errno, cause } => KcmpCheck {
            works: false,
            errno: Some(errno_name(errno)),
            cause: Some(cause.name()),
            detail: cause.describe(errno),
        },
    }
}

fn check_dupfd_query() -> Check {
    let open = || std::fs::File::open("/dev/null");
    let (Ok(f), Ok(g)) = (open(), open()) else {
        return Check::fail("could not open /dev/null to try it");
    };
    let Ok(f2) = f.try_clone() else {
        return Check::fail("could not dup an fd to try it");
    };
    match (
        fallback::dupfd_query(&f, &f2),
        fallback::dupfd_query(&f, &g),
    ) {
        (Ok(Some(true)), Ok(Some(false))) => {
            Check::ok("fcntl(F_DUPFD_QUERY) told a dup (same) from a second open() (different)")
        }
        (Ok(None), _) | (_, Ok(None)) => {
            Check::fail("fcntl(F_DUPFD_QUERY) is not supported (EINVAL: a kernel before 6.10)")
        }
        (Err(e), _) | (_, Err(e)) => Check::fail(format!("fcntl(F_DUPFD_QUERY) failed: {e}")),
        _ => Check::fail("fcntl(F_DUPFD_QUERY) gave wrong answers on a dup and a second open()"),
    }
}

fn check_epoll() -> Check {
    let Ok((r, w)) = rustix::pipe::pipe() else {
        return Check::fail("could not create a pipe to try it");
    };
    let Ok(r2) = r.try_clone() else {
        return Check::fail("could not dup an fd to try it");
    };
    match (fallback::epoll_same(&r, &r2), fallback::epoll_same(&r, &w)) {
        (Ok(true), Ok(false)) => Check::ok(
            "the epoll trick told a dup (same) from the other pipe end (different); it works \
             only on files that support poll (not regular files or O_PATH fds)",
        ),
        (Err(e), _) | (_, Err(e)) => Check::fail(format!("the epoll trick failed: {e}")),
        _ => Check::fail("the epoll trick gave wrong answers on a dup and another pipe end"),
    }
}

fn check_pidfd_getfd() -> Check {
    let me = match rustix::process::Pid::from_raw(std::process::id() as i32) {
        Some(p) => p,
        None => return Check::fail("no pid"),
    };
    let Ok((r, _w)) = rustix::pipe::pipe() else {
        return Check::fail("could not create a pipe to try it");
    };
    let pidfd = match rustix::process::pidfd_open(me, rustix::process::PidfdFlags::empty()) {
        Ok(p) => p,
        Err(e) => {
            return Check::fail(format!(
                "pidfd_open failed: {} (needs Linux 5.3)",
                errno_name(e)
            ))
        }
    };
    use std::os::fd::AsRawFd;
    let fetched = match rustix::process::pidfd_getfd(
        &pidfd,
        r.as_raw_fd(),
        rustix::process::PidfdGetfdFlags::empty(),
    ) {
        Ok(f) => f,
        Err(e) => {
            return Check::fail(format!(
                "pidfd_getfd on this process's own fd failed: {} (needs Linux 5.6; EPERM: a \
                 seccomp filter or sandbox)",
                errno_name(e)
            ))
        }
    };
    match fallback::same_own_fds(&r, fetched.as_fd()) {
        Ok((true, _)) => Check::ok(
            "pidfd_getfd fetched an own fd sharing its description; on other processes it \
             needs ptrace attach rights",
        ),
        Ok((false, _)) => Check::fail("pidfd_getfd returned an fd of another description"),
        Err(e) => Check::fail(format!(
            "pidfd_getfd works, but no same-process method could compare: {e}"
        )),
    }
}

/// A child to try things on: a fork of kcmp, never a program found in PATH.
fn spawn_sleeper() -> std::io::Result<crate::sentinel::Idle> {
    crate::sentinel::Idle::spawn()
}

fn proc_state(pid: u32) -> Option<char> {
    let pid = kcmp::Pid::new(i32::try_from(pid).ok()?).ok()?;
    Some(crate::procfs::read_stat(pid).ok()?.state)
}

fn wait_state(pid: u32, want: impl Fn(char) -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if proc_state(pid).is_some_and(&want) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

fn finish(child: crate::sentinel::Idle) {
    drop(child);
}

fn check_ptrace_freeze() -> Check {
    let child = match spawn_sleeper() {
        Ok(c) => c,
        Err(e) => return Check::fail(format!("could not fork a child to try it on: {e}")),
    };
    let pid = child.id();
    let result = (|| {
        let set = freeze::freeze(&[Pid::new(pid as i32).map_err(|e| e.to_string())?])
            .map_err(|e| e.to_string())?;
        if let Some(nf) = set.not_frozen().first() {
            return Err(format!(
                "PTRACE_SEIZE on an own child failed: {}",
                nf.reason
            ));
        }
        let stopped = proc_state(pid) == Some('t');
        set.thaw().map_err(|e| e.to_string())?;
        if !stopped {
            return Err("the child was not in a ptrace stop after freezing".into());
        }
        if !wait_state(pid, |s| s != 't' && s != 'T') {
            return Err("the child did not resume after thawing".into());
        }
        Ok(())
    })();
    finish(child);
    match result {
        Ok(()) => Check::ok(
            "PTRACE_SEIZE + PTRACE_INTERRUPT stopped an own child and PTRACE_DETACH resumed it; \
             the kernel releases tracees if kcmp dies",
        ),
        Err(e) => Check::fail(e),
    }
}

fn check_sigstop() -> Check {
    let child = match spawn_sleeper() {
        Ok(c) => c,
        Err(e) => return Check::fail(format!("could not fork a child to try it on: {e}")),
    };
    let pid = child.id();
    let result = (|| {
        let rpid = rustix::process::Pid::from_raw(pid as i32).ok_or("no pid")?;
        use rustix::process::{kill_process, Signal};
        kill_process(rpid, Signal::STOP).map_err(|e| format!("SIGSTOP: {}", errno_name(e)))?;
        let stopped = wait_state(pid, |s| s == 'T');
        kill_process(rpid, Signal::CONT).map_err(|e| format!("SIGCONT: {}", errno_name(e)))?;
        if !stopped {
            return Err("the child did not stop on SIGSTOP".to_string());
        }
        if !wait_state(pid, |s| s != 'T') {
            return Err("the child did not resume on SIGCONT".to_string());
        }
        Ok(())
    })();
    finish(child);
    match result {
        Ok(()) => Check::ok(
            "SIGSTOP/SIGCONT work on own children (not used by kcmp: visible to job control, \
             and a killed tool would leave processes stopped)",
        ),
        Err(e) => Check::fail(e),
    }
}

fn check_cgroup_freeze() -> Check {
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Check::fail("cannot read /proc/self/mountinfo");
    };
    // Fields: ... mount-point (5th) ... " - " fstype ...
    let mount = mountinfo.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        if post.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        pre.split_whitespace().nth(4).map(str::to_string)
    });
    let Some(mount) = mount else {
        return Check::fail("cgroup v2 is not mounted");
    };
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("0::").map(str::to_string))
        });
    let Some(own) = own else {
        return Check::fail(format!(
            "cgroup v2 is mounted at {mount}, but this process is in no v2 cgroup"
        ));
    };
    let file = std::path::Path::new(&mount)
        .join(own.trim_start_matches('/'))
        .join("cgroup.freeze");
    let file_exists = file.exists();
    let file = file.display();
    if file_exists {
        Check::ok(format!(
            "{file} exists (cgroup v2 freeze, Linux 5.2+); not tried, and not used by kcmp: a \
             cgroup freeze outlives the tool, so it would need a guardian process"
        ))
    } else {
        Check::fail(format!(
            "cgroup v2 is mounted at {mount}, but {file} does not exist (the root cgroup cannot \
             be frozen, or the kernel is older than 5.2)"
        ))
    }
}

fn unprivileged_text(scope: &PtraceScope) -> String {
    let attach = match scope.value {
        None | Some(0) => "--freeze and the pidfd_getfd fallback work on the user's own processes",
        Some(1) => {
            "--freeze and the pidfd_getfd fallback work only on the user's own descendants \
             (Yama ptrace_scope 1)"
        }
        Some(2) | Some(3) => {
            "--freeze and the pidfd_getfd fallback do not work without CAP_SYS_PTRACE (Yama \
             ptrace_scope 2 or 3); processes are listed as not frozen"
        }
        Some(_) => "--freeze and the pidfd_getfd fallback may be restricted",
    };
    format!(
        "A normal user's scan inspects that user's own dumpable processes (kcmp needs \
         PTRACE_MODE_READ, which Yama does not restrict); other users' processes and \
         non-dumpable ones are listed as skipped with EPERM and the scan exits 0. {attach}."
    )
}

/// Runs every probe and returns the report. Spawns and reaps two
/// short-lived `sleep` children.
pub fn run() -> DoctorReport {
    // Its test children's pipes and pidfds are in this process's table: a
    // self-scan beside it says so rather than report them.
    let _operation = crate::pipeline::own_table::Operation::start();
    let kcmp = check_kcmp();
    let fallbacks = Fallbacks {
        f_dupfd_query: check_dupfd_query(),
        pidfd_getfd: check_pidfd_getfd(),
        epoll_trick: check_epoll(),
    };
    let freeze = FreezeMethods {
        ptrace: check_ptrace_freeze(),
        cgroup_freeze: check_cgroup_freeze(),
        sigstop: check_sigstop(),
    };
    let scope = ptrace_scope();
    let (works, detail) = crate::hostfs::server_free_now();
    let server_free_host = Check { works, detail };
    let usable = kcmp.works || fallbacks.f_dupfd_query.works || fallbacks.epoll_trick.works;
    let kernel = kernel();
    DoctorReport {
        kernel_features: kernel_features(&kernel.release),
        min_kernel: MIN_KERNEL,
        kernel,
        euid: rustix::process::geteuid().as_raw(),
        kcmp,
        seccomp: Seccomp {
            mode: fallback::seccomp_mode(),
            filters: status_field("Seccomp_filters:").and_then(|v| v.parse().ok()),
        },
        cap_sys_ptrace: has_cap_sys_ptrace(),
        unprivileged: unprivileged_text(&scope),
        ptrace_scope: scope,
        fallbacks,
        freeze,
        server_free_host,
        usable,
    }
}
