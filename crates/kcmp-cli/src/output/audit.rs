//! Rendering an audit: human text grouped by severity, and JSON schema 1
//! (`crates/kcmp-cli/schema/audit.schema.json`).

use super::style::Style;
use kcmp_map::audit::{AuditReport, Finding, Holder, Rule, Severity};
use kcmp_map::scan::SharingMap;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The `"summary"` object.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Findings reported (not allowed).
    pub findings: usize,
    /// Of those, critical.
    pub critical: usize,
    /// Of those, warnings.
    pub warning: usize,
    /// Of those, info.
    pub info: usize,
    /// Findings silenced by `--allow`.
    pub allowed: usize,
    /// Findings per rule id (every rule present, 0 included).
    pub by_rule: BTreeMap<&'static str, usize>,
    /// Allowed findings per rule id (every rule present).
    pub allowed_by_rule: BTreeMap<&'static str, usize>,
    /// The `--fail-on` severity.
    pub fail_on: Severity,
    /// Findings at or above `fail_on` (allowed ones never count).
    pub failing: usize,
    /// Findings left out by the filters (`--comm`, `--path`, …).
    pub filtered_out: usize,
    /// Bytes of the deleted files held, each inode once, where the size
    /// could be read without blocking.
    pub deleted_bytes: u64,
    /// Tasks inspected.
    pub tasks: usize,
    /// (pid, fd) pairs inspected.
    pub fds: usize,
    /// Processes skipped.
    pub skipped: usize,
}

impl Summary {
    /// Counts a report.
    pub fn new(
        map: &SharingMap,
        report: &AuditReport,
        fail_on: Severity,
        filtered_out: usize,
    ) -> Summary {
        let per_rule = |list: &[Finding]| {
            let mut m: BTreeMap<&'static str, usize> =
                Rule::ALL.iter().map(|r| (r.id(), 0)).collect();
            for f in list {
                *m.entry(f.rule.id()).or_default() += 1;
            }
            m
        };
        let count = |s: Severity| report.findings.iter().filter(|f| f.severity == s).count();
        Summary {
            findings: report.findings.len(),
            critical: count(Severity::Critical),
            warning: count(Severity::Warning),
            info: count(Severity::Info),
            allowed: report.allowed.len(),
            by_rule: per_rule(&report.findings),
            allowed_by_rule: per_rule(&report.allowed),
            fail_on,
            failing: report
                .findings
                .iter()
                .filter(|f| f.severity >= fail_on)
                .count(),
            filtered_out,
            deleted_bytes: report.deleted_bytes(),
            tasks: map.tasks.len(),
            fds: map.fd_count(),
            skipped: report.skipped.len(),
        }
    }
}

/// How `--freeze` went over the scan and the audit's own second freeze:
/// the JSON's `frozen`, `not_frozen` and `freeze_released`.
#[derive(Debug, Clone, Serialize)]
pub struct Freezing {
    /// True when the processes stayed frozen throughout both windows.
    pub frozen: bool,
    /// The processes that could not be frozen (each once), with the reason.
    pub not_frozen: Vec<kcmp_map::freeze::NotFrozen>,
    /// Why a freeze ended early (then `frozen` is false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub freeze_released: Option<kcmp_map::freeze::Release>,
}

#[derive(Serialize)]
struct AuditJson<'a> {
    schema: u32,
    findings: &'a [Finding],
    allowed: &'a [Finding],
    summary: &'a Summary,
    skipped: &'a [kcmp_map::scan::Skipped],
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    freezing: Option<&'a Freezing>,
}

/// Writes `{"schema": 1, "findings", "allowed", "summary", "skipped"}`
/// (with `--freeze`: `"frozen"`, `"not_frozen"`, `"freeze_released"`?) and
/// a newline.
pub fn write_json(
    report: &AuditReport,
    summary: &Summary,
    freezing: Option<&Freezing>,
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
    let doc = AuditJson {
        schema: 1,
        findings: &report.findings,
        allowed: &report.allowed,
        summary,
        skipped: &report.skipped,
        freezing,
    };
    serde_json::to_writer(&mut *out, &doc)?;
    out.write_all(b"\n")
}

/// Escapes a name for a terminal as `ls -b` does: backslash, control
/// characters (C0, DEL and C1) and invalid UTF-8 become `\n`, `\t`, `\\`,
/// `\xNN`; everything else is kept.
///
/// ```
/// use kcmp_cli::output::audit::escape_name;
/// assert_eq!(escape_name(b"a\x1b[2Jb\nc"), "a\\x1b[2Jb\\nc");
/// assert_eq!(escape_name(b"caf\xc3\xa9 \xff"), "caf\u{e9} \\xff");
/// assert_eq!(escape_name("\u{9b}".as_bytes()), "\\xc2\\x9b");
/// ```
pub fn escape_name(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        let _ = write!(out, "\\x{b:02x}");
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// At most this many holder lines per finding; the rest are counted.
const HOLDER_LINES: usize = 6;

fn holder_line(f: &Finding, h: &Holder) -> String {
    let mut s = format!("{} ({}) fd {}", h.pid, escape_name(&h.comm_raw), h.fd);
    let mut extra: Vec<String> = Vec::new();
    match f.rule {
        Rule::CrossNamespace | Rule::ForeignMount => {
            extra.extend(h.uid.map(|u| format!("uid {u}")));
            extra.extend(h.mnt_ns.clone());
            extra.extend(h.user_ns.clone());
        }
        Rule::ExecLeak => {
            extra.extend(h.exe.as_deref().map(|e| escape_name(e.as_bytes())));
            if h.cloexec == Some(false) {
                extra.push("no O_CLOEXEC".into());
            }
        }
        Rule::CrossUidWrite => {
            extra.extend(h.uid.map(|u| format!("uid {u}")));
            extra.extend(h.exe.as_deref().map(|e| escape_name(e.as_bytes())));
        }
        Rule::PipeSelfHold => extra.extend(h.access.map(|a| format!("{a} end"))),
        Rule::EpollStale => extra.push("(the epoll fd)".into()),
        Rule::DeletedHeld => {}
    }
    if !extra.is_empty() {
        s.push_str("  ");
        s.push_str(&extra.join("  "));
    }
    s
}

fn detail_line(f: &Finding) -> Option<String> {
    if let Some(r) = &f.registration {
        let now = match &r.tfd_now {
            None => "now closed".to_string(),
            Some(t) => format!("now {}", escape_name(t.as_bytes())),
        };
        return Some(format!(
            "registered in epoll fd {} of {} under fd {} (toff {}), {now}",
            r.epfd, r.pid, r.tfd, r.toff
        ));
    }
    if f.rule == Rule::DeletedHeld {
        return Some(match f.size {
            Some(n) => format!("size {n} bytes"),
            None => "size unknown (not stat-ed: not on a local filesystem)".into(),
        });
    }
    None
}

fn write_finding(out: &mut String, f: &Finding, style: Style) {
    let kind = match f.access {
        Some(a) => format!("{}, {a}", f.kind),
        None => f.kind.clone(),
    };
    let _ = writeln!(
        out,
        "  {}  {}  ({kind})",
        style.bold(f.rule.id()),
        style.target(&escape_name(&f.target_raw))
    );
    for h in f.holders.iter().take(HOLDER_LINES) {
        let _ = writeln!(out, "      {}", holder_line(f, h));
    }
    if f.holders.len() > HOLDER_LINES {
        let rest = &f.holders[HOLDER_LINES..];
        let mut pids: Vec<_> = rest.iter().map(|h| h.pid).collect();
        pids.sort_unstable();
        pids.dedup();
        let _ = writeln!(
            out,
            "      … and {} more holders in {} processes",
            rest.len(),
            pids.len()
        );
    }
    if let Some(d) = detail_line(f) {
        let _ = writeln!(out, "      {d}");
    }
    let _ = writeln!(out, "      {}", style.dim(&format!("why: {}", f.why)));
}

/// Human output: findings grouped by severity, most severe first, then a
/// summary line.
pub fn human(report: &AuditReport, summary: &Summary, style: Style) -> String {
    let mut out = String::new();
    for sev in [Severity::Critical, Severity::Warning, Severity::Info] {
        let group: Vec<&Finding> = report
            .findings
            .iter()
            .filter(|f| f.severity == sev)
            .collect();
        if group.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        let head = format!("{} ({})", sev.name().to_uppercase(), group.len());
        let _ = writeln!(
            out,
            "{}",
            if sev == Severity::Info {
                style.bold(&head)
            } else {
                style.warn(&head)
            }
        );
        for f in group {
            write_finding(&mut out, f, style);
        }
    }
    if let Some(note) = super::skipped_note(&report.skipped, style) {
        if !out.is_empty() {
            out.push('\n');
        }
        let _ = writeln!(out, "{note}");
    }
    if !out.is_empty() {
        out.push('\n');
    }
    let _ = write!(
        out,
        "{} findings ({} critical, {} warning, {} info), {} allowed; {} at or above {}",
        summary.findings,
        summary.critical,
        summary.warning,
        summary.info,
        summary.allowed,
        summary.failing,
        summary.fail_on
    );
    if summary.deleted_bytes > 0 {
        let _ = write!(out, "; deleted files held: {} bytes", summary.deleted_bytes);
    }
    let _ = writeln!(
        out,
        " ({} tasks, {} fds, {} skipped)",
        summary.tasks, summary.fds, summary.skipped
    );
    out
}
