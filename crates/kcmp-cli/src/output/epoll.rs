//! Rendering epoll registrations: `kcmp epoll-targets` and the scan's
//! epoll section.

use super::epoll_json::TargetJson;
use super::escape::escape;
use super::style::Style;
use kcmp_map::epoll::{EpollInstance, EpollTarget, EpollTargets};
use kcmp_map::scan::{FdRef, SharingMap};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::fmt::Write as _;

/// `{"pid": P, "epfd": E, "comm": C, "targets": [...], "skipped": [...],
/// "skipped_fds": [...], "stats": {...}}`; every holder has `comm`, every `events` its
/// `events_names`, a name that is not valid UTF-8 its `target_bytes`.
pub fn targets_json(found: &EpollTargets) -> Value {
    let mut comms: HashMap<kcmp::Pid, Option<String>> = HashMap::new();
    let pids = found
        .targets
        .iter()
        .flat_map(|t| t.holders.iter().map(|h| h.pid));
    for pid in pids.chain([found.pid]) {
        comms
            .entry(pid)
            .or_insert_with(|| kcmp_map::procfs::read_stat(pid).ok().map(|s| s.comm));
    }
    let comm = |pid: kcmp::Pid| comms.get(&pid).and_then(|c| c.as_deref());
    let targets: Vec<TargetJson<'_>> = found
        .targets
        .iter()
        .map(|t| TargetJson {
            target: t,
            comm: &comm,
            target_bytes: target_bytes(t),
        })
        .collect();
    json!({
        "pid": found.pid,
        "epfd": found.epfd,
        "comm": comm(found.pid),
        "targets": targets,
        "skipped": found.skipped,
        "skipped_fds": found.skipped_fds,
        "stats": {"kcmp_calls": found.kcmp_calls},
    })
}

/// The exact bytes of a watched description's name when it is not valid
/// UTF-8 (read again from one of its holders' fd links).
fn target_bytes(t: &EpollTarget) -> Option<Vec<u8>> {
    let h = t.holders.first()?;
    super::escape::link_bytes(h.pid, h.fd, t.target.as_deref()?)
}

/// Why a registration is stale, in a word or two.
fn staleness(t: &EpollTarget) -> String {
    match (t.stale, &t.tfd_now) {
        (false, _) => "no".into(),
        (true, None) => "closed".into(),
        (true, Some(now)) => format!("reused ({now})"),
    }
}

/// `2 fds whose link could not be read (ENAMETOOLONG): a holder among
/// them is not shown`, or `None` when every fd was read. For stderr.
pub fn skipped_fds_note(skipped: &[kcmp_map::model::SkippedFd]) -> Option<String> {
    if skipped.is_empty() {
        return None;
    }
    let reasons: std::collections::BTreeSet<&str> =
        skipped.iter().map(|f| f.reason.as_str()).collect();
    let reasons: Vec<&str> = reasons.into_iter().collect();
    Some(format!(
        "{} fds whose link could not be read ({}): a holder among them is not shown \
         (use --json for each pid and fd)",
        skipped.len(),
        reasons.join(", ")
    ))
}

fn holders_text(holders: &[FdRef], comm: &dyn Fn(kcmp::Pid) -> String) -> String {
    if holders.is_empty() {
        return "(no visible fd)".into();
    }
    holders
        .iter()
        .map(|h| format!("{} ({}) fd {}", h.pid, escape(&comm(h.pid)), h.fd))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The table of `kcmp epoll-targets`.
pub fn targets_human(found: &EpollTargets, style: Style) -> String {
    let comm = |pid: kcmp::Pid| {
        kcmp_map::procfs::read_stat(pid)
            .map(|s| s.comm)
            .unwrap_or_else(|_| "?".into())
    };
    let mut out = String::new();
    let stale = found.targets.iter().filter(|t| t.stale).count();
    let unheld = found.targets.iter().filter(|t| !t.held()).count();
    let _ = writeln!(
        out,
        "{}",
        style.bold(&format!(
            "epoll fd {} of process {} ({}): {} registrations, {} stale, {} held by no visible fd",
            found.epfd,
            found.pid,
            escape(&comm(found.pid)),
            found.targets.len(),
            stale,
            unheld
        ))
    );
    let rows: Vec<[String; 7]> = found
        .targets
        .iter()
        .map(|t| {
            [
                t.tfd.to_string(),
                t.toff.to_string(),
                super::events::text(t.events),
                format!("{:#x}", t.data),
                escape(&staleness(t)).into_owned(),
                t.target
                    .as_deref()
                    .map(|n| super::escape::display_name(n, target_bytes(t).as_deref()))
                    .unwrap_or_else(|| format!("ino {}", t.ino)),
                holders_text(&t.holders, &comm),
            ]
        })
        .collect();
    let header = [
        "TFD", "TOFF", "EVENTS", "DATA", "STALE", "TARGET", "HOLDERS",
    ];
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[&str]| -> String {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                let _ = write!(s, "{c:<w$}  ", w = widths[i]);
            }
        }
        s
    };
    let _ = writeln!(out, "{}", style.dim(&line(&header)));
    for (r, t) in rows.iter().zip(&found.targets) {
        let cells: Vec<&str> = r.iter().map(String::as_str).collect();
        let text = line(&cells);
        if t.stale || !t.held() {
            let _ = writeln!(out, "{}", style.warn(&text));
        } else {
            let _ = writeln!(out, "{text}");
        }
    }
    out
}

/// The scan's findings: every stale registration, and every registration
/// no scanned fd holds, one line each (empty when there is none).
pub fn scan_findings(map: &SharingMap, instances: &[&EpollInstance], style: Style) -> String {
    let comm = |pid: kcmp::Pid| escape(map.comm(pid).unwrap_or("?")).into_owned();
    let mut lines = Vec::new();
    for e in instances {
        if let Some(err) = &e.error {
            lines.push(style.dim(&format!(
                "    {} ({}) epfd {}: not resolved: {}",
                e.pid,
                comm(e.pid),
                e.epfd,
                escape(err)
            )));
        }
        for t in e.targets.iter().filter(|t| t.stale || !t.held()) {
            let what = match (t.stale, &t.tfd_now) {
                (false, _) => "is not stale".to_string(),
                (true, None) => "is stale (tfd closed)".to_string(),
                (true, Some(now)) => format!("is stale (tfd now {})", escape(now)),
            };
            let held = if t.held() {
                format!("held by {}", holders_text(&t.holders, &comm))
            } else {
                "held by no scanned fd".to_string()
            };
            lines.push(style.warn(&format!(
                "    {} ({}) epfd {}: tfd {} toff {} {what}; watches {}, {held}",
                e.pid,
                comm(e.pid),
                e.epfd,
                t.tfd,
                t.toff,
                t.target
                    .as_deref()
                    .map(|n| escape(n).into_owned())
                    .unwrap_or_else(|| format!("inode {}", t.ino)),
            )));
        }
    }
    if lines.is_empty() {
        return String::new();
    }
    let mut out = format!("{}\n", style.bold("epoll findings"));
    for l in lines {
        out.push_str(&l);
        out.push('\n');
    }
    out
}
