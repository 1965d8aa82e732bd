//! `kcmp audit`: rules over the sharing map that find leaked and dangerous
//! sharing — an fd of the host held inside a container, an fd inherited
//! across `exec` without `O_CLOEXEC`, a pipe reader that holds its own
//! write end, stale epoll registrations, deleted files kept open.
//!
//! The rules run on a finished [`SharingMap`] (exact open file
//! descriptions) plus facts read per holder without ever blocking:
//! `/proc/PID/fdinfo/N` (flags, `mnt_id`), `/proc/PID/status` (uid),
//! `/proc/PID/ns/{mnt,user,net}`, `/proc/PID/exe`, `/proc/PID/mountinfo`
//! ([`crate::mounts::MountTable`]). File types and sizes come only from
//! [`crate::mounts::statx_if_local`]: never a call that can wait on a FUSE
//! or network filesystem. Each fd is re-read (its link text compared with
//! the scan's) before its facts are used, so an fd closed or reused since
//! the scan is left out instead of misjudged.
//!
//! ```no_run
//! use kcmp_map::audit::{audit, AuditOptions, Severity};
//! use kcmp_map::scan::{scan, ScanOptions};
//! let map = scan(&ScanOptions { trees: vec![kcmp::Pid::new(1144)?], ..Default::default() })?;
//! let report = audit(&map, &AuditOptions::default());
//! for f in report.findings.iter().filter(|f| f.severity >= Severity::Warning) {
//!     println!("{} {} {}", f.severity, f.rule, f.target);
//! }
//! # Ok::<(), kcmp::Error>(())
//! ```

mod allow;
mod facts;
mod kind;
mod rules;
mod rules_ns;

pub use allow::{glob_match, Allow};
pub use kind::{access_name, FileKind};

use crate::scan::{FdRef, SharingMap, Skipped};
use kcmp::{FdNum, Pid};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// How bad a finding is. Ordered: `Info < Warning < Critical`.
///
/// ```
/// use kcmp_map::audit::Severity;
/// assert!(Severity::Critical > Severity::Warning);
/// assert_eq!("info".parse::<Severity>().unwrap(), Severity::Info);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; often by design.
    Info,
    /// A likely bug (a leak, a hang).
    Warning,
    /// A likely breach: a path out of a container.
    Critical,
}

impl Severity {
    /// The name used in the JSON and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "info" => Ok(Severity::Info),
            "warning" => Ok(Severity::Warning),
            "critical" => Ok(Severity::Critical),
            other => Err(format!(
                "unknown severity {other:?} (info, warning or critical)"
            )),
        }
    }
}

/// The rules, by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// One description held by tasks in different mount or user namespaces.
    CrossNamespace,
    /// A directory or O_PATH fd on a mount outside its holder's namespace.
    ForeignMount,
    /// A description held across two executables by an fd without O_CLOEXEC.
    ExecLeak,
    /// A pipe reader holding a write end that another process also holds.
    PipeSelfHold,
    /// A regular file open for writing, held across uids and executables.
    CrossUidWrite,
    /// An epoll registration whose fd number was closed or reused.
    EpollStale,
    /// A deleted regular file held open.
    DeletedHeld,
}

impl Rule {
    /// Every rule, in report order.
    pub const ALL: [Rule; 7] = [
        Rule::CrossNamespace,
        Rule::ForeignMount,
        Rule::ExecLeak,
        Rule::PipeSelfHold,
        Rule::CrossUidWrite,
        Rule::EpollStale,
        Rule::DeletedHeld,
    ];

    /// The rule's id (`cross-namespace`, …).
    pub fn id(self) -> &'static str {
        match self {
            Rule::CrossNamespace => "cross-namespace",
            Rule::ForeignMount => "foreign-mount",
            Rule::ExecLeak => "exec-leak",
            Rule::PipeSelfHold => "pipe-self-hold",
            Rule::CrossUidWrite => "cross-uid-write",
            Rule::EpollStale => "epoll-stale",
            Rule::DeletedHeld => "deleted-held",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

impl FromStr for Rule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Rule::ALL.into_iter().find(|r| r.id() == s).ok_or_else(|| {
            let ids: Vec<&str> = Rule::ALL.iter().map(|r| r.id()).collect();
            format!("unknown rule {s:?} (one of {})", ids.join(", "))
        })
    }
}

/// One holder of a finding's description, with the facts the rule used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Holder {
    /// The process.
    pub pid: Pid,
    /// The fd in that process.
    pub fd: FdNum,
    /// Its command name (lossy UTF-8; [`Holder::comm_raw`] has the bytes).
    pub comm: String,
    /// The raw bytes of `/proc/PID/comm`.
    #[serde(skip)]
    pub comm_raw: Vec<u8>,
    /// Its effective uid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Its executable (`/proc/PID/exe`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    /// Its mount namespace (`mnt:[…]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mnt_ns: Option<String>,
    /// Its user namespace (`user:[…]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_ns: Option<String>,
    /// Whether this fd has `O_CLOEXEC`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloexec: Option<bool>,
    /// How it is open: `read`, `write`, `read-write` or `path` (O_PATH).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access: Option<&'static str>,
}

/// A stale epoll registration (rule `epoll-stale`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaleRegistration {
    /// The epoll fd in `pid`.
    pub epfd: FdNum,
    /// The process whose fd table the registration was judged in.
    pub pid: Pid,
    /// The fd number it was registered under.
    pub tfd: FdNum,
    /// Its index among the registrations under `tfd`.
    pub toff: u32,
    /// What `tfd` names now (`None`: closed).
    pub tfd_now: Option<String>,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The rule.
    pub rule: Rule,
    /// Its severity.
    pub severity: Severity,
    /// The description's link text (path, `pipe:[ino]`, …), lossy UTF-8.
    pub target: String,
    /// The raw bytes of the link text, for escaping on a terminal; in JSON
    /// `target_bytes`, only when they are not valid UTF-8 (so that two names
    /// that differ in invalid bytes stay apart).
    #[serde(rename = "target_bytes", skip_serializing_if = "is_utf8")]
    pub target_raw: Vec<u8>,
    /// What it is: `directory`, `file`, `pipe`, `socket`, … (see [`FileKind`]).
    pub kind: String,
    /// How it is open: `read`, `write`, `read-write` or `path` (O_PATH),
    /// when it was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access: Option<&'static str>,
    /// The holders the finding is about (for `foreign-mount`, those whose
    /// namespace lacks the mount; for `epoll-stale`, the epoll's holders).
    pub holders: Vec<Holder>,
    /// Why it matters, in one sentence.
    pub why: String,
    /// The size in bytes (`deleted-held`, where it could be read without
    /// blocking).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The registration (`epoll-stale`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registration: Option<StaleRegistration>,
    /// `(device, inode)` of a deleted file, to count its size once.
    #[serde(skip)]
    pub inode: Option<(u64, u64)>,
}

fn is_utf8(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_ok()
}

/// What to audit with.
#[derive(Debug, Clone, Default)]
pub struct AuditOptions {
    /// Findings to silence (still counted as allowed).
    pub allow: Vec<Allow>,
}

/// The result of an audit.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditReport {
    /// Findings, most severe first, then by rule and target.
    pub findings: Vec<Finding>,
    /// Findings silenced by an [`Allow`], same order.
    pub allowed: Vec<Finding>,
    /// Processes that could not be inspected (the scan's, then the audit's).
    pub skipped: Vec<Skipped>,
}

impl AuditReport {
    /// Findings (not allowed) per severity.
    pub fn count_by_severity(&self) -> BTreeMap<Severity, usize> {
        let mut out = BTreeMap::new();
        for f in &self.findings {
            *out.entry(f.severity).or_default() += 1;
        }
        out
    }

    /// Total bytes of the deleted files held (each inode counted once),
    /// for the files whose size could be read.
    pub fn deleted_bytes(&self) -> u64 {
        let mut seen = std::collections::HashSet::new();
        self.findings
            .iter()
            .chain(&self.allowed)
            .filter(|f| f.rule == Rule::DeletedHeld)
            .filter(|f| f.inode.is_none_or(|i| seen.insert(i)))
            .filter_map(|f| f.size)
            .sum()
    }
}

/// Runs every rule on `map`. Never blocks on a file: see the module
/// documentation.
pub fn audit(map: &SharingMap, options: &AuditOptions) -> AuditReport {
    let mut facts = facts::Facts::new(map);
    let mut found = Vec::new();
    rules_ns::cross_namespace(map, &mut facts, &mut found);
    rules_ns::foreign_mount(map, &mut facts, &mut found);
    rules::exec_leak(map, &mut facts, &mut found);
    rules::pipe_self_hold(map, &mut facts, &mut found);
    rules::cross_uid_write(map, &mut facts, &mut found);
    rules::epoll_stale(map, &mut facts, &mut found);
    rules::deleted_held(map, &mut facts, &mut found);
    found.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(a.rule.cmp(&b.rule))
            .then_with(|| a.target.cmp(&b.target))
            .then_with(|| holder_key(a).cmp(&holder_key(b)))
    });
    let (allowed, findings) = found
        .into_iter()
        .partition(|f| options.allow.iter().any(|a| a.matches(f)));
    let mut skipped = map.skipped.clone();
    skipped.extend(facts.into_skipped());
    AuditReport {
        findings,
        allowed,
        skipped,
    }
}

fn holder_key(f: &Finding) -> Option<FdRef> {
    f.holders.first().map(|h| FdRef {
        pid: h.pid,
        fd: h.fd,
    })
}
