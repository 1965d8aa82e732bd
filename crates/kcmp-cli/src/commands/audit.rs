//! `kcmp audit`: the scan, then the rules of [`kcmp_map::audit`].

use crate::cli::AuditArgs;
use crate::output::audit as render;
use crate::output::filter::{Facts, Filters};
use crate::output::progress::DelayedProgress;
use crate::output::sink::Sink;
use crate::output::style::Style;
use crate::{exit, report_error};
use kcmp::Pid;
use kcmp_map::audit::{audit, AuditOptions, AuditReport, Finding};
use kcmp_map::scan::{scan_with_progress, ScanOptions};
use kcmp_map::scan::{FdRef, OpenFileDescription};
use kcmp_map::SharingMap;
use std::collections::HashMap;

/// Runs the scan and the audit; exit 0 when no finding at or above
/// `--fail-on` remains, 1 when one does, 2 on trouble.
pub fn run(args: &AuditArgs) -> i32 {
    let _ = kcmp_map::raise_fd_limit(); // the library never raises it
    let filters = args.filter.filters();
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
    filter(&mut report, &map, &filters);
    let summary = render::Summary::new(
        &map,
        &report,
        args.fail_on,
        before - report.findings.len() - report.allowed.len(),
    );
    if args.json {
        let mut sink = Sink::stdout();
        if let Err(e) = render::write_json(&report, &summary, sink.writer()) {
            crate::output::sink::fail(&e);
        }
        sink.flush();
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

/// The filters of scan, with scan's meaning: they select descriptions, and
/// a finding is kept when the description of one of its holders is selected.
fn filter(report: &mut AuditReport, map: &SharingMap, filters: &Filters) {
    if !filters.any() {
        return;
    }
    let facts = Facts::new(map);
    let by_fd: HashMap<FdRef, &OpenFileDescription> = map
        .open_files
        .iter()
        .flat_map(|d| d.members.iter().map(move |m| (*m, d)))
        .collect();
    let keep = |f: &Finding| {
        f.holders.iter().any(|h| {
            let at = FdRef {
                pid: h.pid,
                fd: h.fd,
            };
            by_fd.get(&at).is_some_and(|d| filters.matches(&facts, d))
        })
    };
    report.findings.retain(keep);
    report.allowed.retain(keep);
}
