//! `kcmp audit`: the scan, then the rules of [`kcmp_map::audit`].

use crate::cli::AuditArgs;
use crate::output::audit as render;
use crate::output::filter::{Facts, Filters};
use crate::output::sink::Sink;
use crate::output::style::Style;
use crate::{exit, report_error};
use kcmp::Pid;
use kcmp_map::audit::{audit, AuditOptions, AuditReport, Finding};
use kcmp_map::scan::{FdRef, OpenFileDescription};
use kcmp_map::SharingMap;
use std::collections::HashMap;

/// Runs the scan and the audit; exit 0 when no finding at or above
/// `--fail-on` remains, 1 when one does, 2 on trouble.
pub fn run(args: &AuditArgs) -> i32 {
    let filters = args.filter.filters();
    let map = match super::scan::scan_selected(&args.pids, &args.trees, false, args.freeze, false) {
        Ok(map) => map,
        Err(status) => return status,
    };
    let options = AuditOptions {
        allow: args.allow.clone(),
    };
    let (mut report, freezing) = match audit_frozen(&map, &options, args.freeze) {
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
        if let Err(e) = render::write_json(&report, &summary, freezing.as_ref(), sink.writer()) {
            crate::output::sink::fail(&e);
        }
        sink.flush();
    } else {
        crate::output::write_stdout(&render::human(&report, &summary, Style::stdout()));
    }
    if let Some(f) = &freezing {
        freeze_notes(f, args.json);
    }
    if let Some(code) = starved(&report.skipped) {
        return code;
    }
    if summary.failing > 0 {
        exit::DIFFERENT
    } else {
        exit::SAME
    }
}

/// Processes skipped because kcmp itself ran out of resources (EMFILE
/// under a low fd limit, ENFILE, ENOMEM) were not audited for want of
/// room, not for a reason of theirs: a gate must not pass them as clean.
/// Trouble (2), named on stderr.
fn starved(skipped: &[kcmp_map::scan::Skipped]) -> Option<i32> {
    let mut reasons: Vec<&str> = skipped
        .iter()
        .map(|s| s.reason.as_str())
        .filter(|r| matches!(*r, "EMFILE" | "ENFILE" | "ENOMEM"))
        .collect();
    let count = reasons.len();
    reasons.sort_unstable();
    reasons.dedup();
    let first = reasons.first()?;
    eprintln!(
        "kcmp: {count} processes not audited: kcmp ran out of resources ({first}); raise the fd limit (ulimit -n) and run again"
    );
    Some(exit::TROUBLE)
}

/// The freeze notes on stderr, as scan's: the processes not frozen (human
/// output only: JSON has `not_frozen`), and an early release always.
fn freeze_notes(f: &render::Freezing, json: bool) {
    if !json {
        if let Some(n) = crate::output::not_frozen_note(&f.not_frozen) {
            eprintln!("kcmp: {n}");
        }
    }
    if let Some(why) = f.freeze_released {
        eprintln!(
            "kcmp: not frozen throughout ({}): {}",
            why.code(),
            why.describe()
        );
    }
}

/// Runs the rules; with `freeze`, the scanned processes are frozen again
/// while their facts are read (the scan itself ran frozen and thawed them),
/// and every fd is checked against the scan's link text before it is used.
/// With `freeze`, also how both freezes went (an early release of either
/// means not frozen throughout).
fn audit_frozen(
    map: &kcmp_map::SharingMap,
    options: &AuditOptions,
    freeze: bool,
) -> Result<(AuditReport, Option<render::Freezing>), kcmp::Error> {
    if !freeze {
        return Ok((audit(map, options), None));
    }
    let pids: Vec<Pid> = map
        .tasks
        .iter()
        .filter(|t| !t.kernel_thread && !t.is_zombie())
        .map(|t| t.pid)
        .collect();
    let set = kcmp_map::freeze::freeze(&pids)?;
    let again = set.not_frozen().to_vec();
    let report = audit(map, options);
    let released = map.freeze_released.or(set.finish()?);
    let mut not_frozen = map.not_frozen.clone();
    for n in again {
        if !not_frozen.iter().any(|m| m.pid == n.pid) {
            not_frozen.push(n);
        }
    }
    let freezing = render::Freezing {
        frozen: map.frozen && released.is_none(),
        not_frozen,
        freeze_released: released,
    };
    Ok((report, Some(freezing)))
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
