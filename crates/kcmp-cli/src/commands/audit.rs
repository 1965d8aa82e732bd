//! `kcmp audit`: the scan, then the rules of [`kcmp_map::audit`].

use crate::cli::AuditArgs;
use crate::output::audit as render;
use crate::output::progress::DelayedProgress;
use crate::output::style::Style;
use crate::{exit, report_error};
use kcmp::Pid;
use kcmp_map::audit::{audit, glob_match, AuditOptions, AuditReport, Finding};
use kcmp_map::scan::{scan_with_progress, ScanOptions};

/// The filters of scan, applied to findings: a finding is kept when it
/// passes every filter given.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// A holder's command name matches this glob.
    pub comm: Option<String>,
    /// A holder has this uid.
    pub uid: Option<u32>,
    /// The finding's kind.
    pub kind: Option<String>,
    /// The target matches this glob.
    pub path: Option<String>,
    /// At least this many holders.
    pub min_holders: Option<usize>,
}

impl Filters {
    /// Whether `f` passes.
    pub fn keep(&self, f: &Finding) -> bool {
        self.comm
            .as_deref()
            .is_none_or(|g| f.holders.iter().any(|h| glob_match(g, &h.comm)))
            && self
                .uid
                .is_none_or(|u| f.holders.iter().any(|h| h.uid == Some(u)))
            && self.kind.as_deref().is_none_or(|k| f.kind == k)
            && self
                .path
                .as_deref()
                .is_none_or(|g| glob_match(g, &f.target))
            && self.min_holders.is_none_or(|n| f.holders.len() >= n)
    }
}

/// A user name or uid as a uid (names from /etc/passwd, no NSS).
pub fn resolve_user(user: &str) -> Result<u32, String> {
    if let Ok(uid) = user.parse() {
        return Ok(uid);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            (f.next() == Some(user)).then(|| f.nth(1)?.parse().ok())?
        })
        .ok_or_else(|| format!("--user {user:?}: no such user in /etc/passwd"))
}

/// Runs the scan and the audit; exit 0 when no finding at or above
/// `--fail-on` remains, 1 when one does, 2 on trouble.
pub fn run(args: &AuditArgs) -> i32 {
    let uid = match args.user.as_deref().map(resolve_user).transpose() {
        Ok(u) => u,
        Err(e) => {
            eprintln!("kcmp: {e}");
            return exit::TROUBLE;
        }
    };
    if let Some(k) = args.kind.as_deref() {
        if !kcmp_map::audit::FileKind::NAMES.contains(&k) {
            let names = kcmp_map::audit::FileKind::NAMES.join(", ");
            eprintln!("kcmp: usage error: --kind {k:?}: not a kind (one of {names})");
            return exit::TROUBLE;
        }
    }
    let filters = Filters {
        comm: args.comm.clone(),
        uid,
        kind: args.kind.clone(),
        path: args.path.clone(),
        min_holders: args.min_holders,
    };
    let to_pids = |v: &[i32]| {
        v.iter()
            .filter_map(|&p| Pid::new(p).ok())
            .collect::<Vec<_>>()
    };
    let options = ScanOptions {
        pids: to_pids(&args.pids),
        trees: to_pids(&args.trees),
        threads: false,
        freeze: args.freeze,
        workers: 0,
        skip_epoll: false,
    };
    let progress = DelayedProgress::stderr();
    let result = scan_with_progress(&options, &|p| progress.update(p));
    progress.finish();
    let map = match result {
        Ok(map) => map,
        Err(e) => return report_error(&e),
    };
    let options = AuditOptions {
        allow: args.allow.clone(),
    };
    let mut report = match audit_frozen(&map, &options, args.freeze) {
        Ok(r) => r,
        Err(e) => return report_error(&e),
    };
    let before = report.findings.len() + report.allowed.len();
    filter(&mut report, &filters);
    let summary = render::Summary::new(
        &map,
        &report,
        args.fail_on,
        before - report.findings.len() - report.allowed.len(),
    );
    if args.json {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        let _ = render::write_json(&report, &summary, &mut out);
        let _ = std::io::Write::flush(&mut out);
    } else {
        crate::output::write_stdout(&render::human(&report, &summary, Style::stdout()));
    }
    if summary.failing > 0 {
        exit::DIFFERENT
    } else {
        exit::SAME
    }
}

/// Runs the rules; with `freeze`, the scanned processes are frozen again
/// while their facts are read (the scan itself ran frozen and thawed them),
/// and every fd is checked against the scan's link text before it is used.
fn audit_frozen(
    map: &kcmp_map::SharingMap,
    options: &AuditOptions,
    freeze: bool,
) -> Result<AuditReport, kcmp::Error> {
    if !freeze {
        return Ok(audit(map, options));
    }
    let pids: Vec<Pid> = map
        .tasks
        .iter()
        .filter(|t| !t.kernel_thread && !t.is_zombie())
        .map(|t| t.pid)
        .collect();
    let set = kcmp_map::freeze::freeze(&pids)?;
    let report = audit(map, options);
    set.thaw()?;
    Ok(report)
}

fn filter(report: &mut AuditReport, filters: &Filters) {
    report.findings.retain(|f| filters.keep(f));
    report.allowed.retain(|f| filters.keep(f));
}
