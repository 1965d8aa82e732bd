//! `kcmp doctor [--json]`: does kcmp work here, which fallbacks and freeze
//! methods do, and why not.
//!
//! The JSON object is [`kcmp_map::doctor::DoctorReport`]; its keys are listed in
//! the [`kcmp_map::doctor`] module docs. Exit status: 0 when kcmp or a
//! same-process fallback (F_DUPFD_QUERY, epoll trick) works, else 2.

use crate::exit;
use crate::output::style::Style;
use crate::output::write_stdout;
use kcmp_map::doctor::{self, Check, DoctorReport};

/// Runs the doctor and prints its report; returns the exit status.
pub fn run(json: bool) -> i32 {
    let report = doctor::run();
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => write_stdout(&format!("{text}\n")),
            Err(e) => {
                eprintln!("kcmp: doctor: cannot encode the report as JSON: {e}");
                return exit::TROUBLE;
            }
        }
    } else {
        write_stdout(&human(&report, Style::stdout()));
    }
    if report.usable {
        0
    } else {
        exit::TROUBLE
    }
}

fn check_line(s: Style, name: &str, c: &Check, ok_word: &str) -> String {
    let word = if c.works {
        s.bold(ok_word)
    } else {
        s.warn("no")
    };
    format!("  {name:<15} {word:<5}  {}\n", s.dim(&c.detail))
}

/// The report in words.
fn human(r: &DoctorReport, s: Style) -> String {
    let mut out = String::new();
    let k = &r.kernel;
    out.push_str(&format!(
        "{:<16} {} {} ({})\n",
        s.bold("kernel"),
        k.sysname,
        k.release,
        k.machine
    ));
    out.push_str(&format!(
        "{}\n",
        s.bold(&format!(
            "kernel features (minimum Linux {} for exact answers)",
            r.min_kernel
        ))
    ));
    for f in &r.kernel_features {
        let word = match f.present {
            Some(true) => s.bold("yes"),
            Some(false) => s.warn("no"),
            None => "?".to_string(),
        };
        let detail = format!("without it: {}", f.without);
        let since = format!("{}+", f.since);
        out.push_str(&format!(
            "  {:<15} {since:<6} {word:<5}  {}\n",
            f.name,
            s.dim(&detail)
        ));
    }
    let kcmp = if r.kcmp.works {
        s.bold("works")
    } else {
        s.warn(&format!(
            "unavailable ({})",
            r.kcmp.errno.unwrap_or("unknown errno")
        ))
    };
    out.push_str(&format!("{:<16} {kcmp}\n", s.bold("kcmp")));
    out.push_str(&format!("{:<16} {}\n", "", s.dim(&r.kcmp.detail)));
    let seccomp = match r.seccomp.mode {
        Some(0) => "none".to_string(),
        Some(1) => "strict mode".to_string(),
        Some(2) => format!(
            "filter mode ({} filter(s) installed)",
            r.seccomp.filters.unwrap_or(0)
        ),
        Some(m) => format!("mode {m}"),
        None => "unknown (no Seccomp field in /proc/self/status)".to_string(),
    };
    out.push_str(&format!("{:<16} {seccomp}\n", s.bold("seccomp")));
    out.push_str(&format!(
        "{:<16} {} (euid {})\n",
        s.bold("CAP_SYS_PTRACE"),
        if r.cap_sys_ptrace { "yes" } else { "no" },
        r.euid
    ));
    out.push_str(&format!(
        "{:<16} {}\n",
        s.bold("ptrace_scope"),
        r.ptrace_scope.meaning
    ));
    out.push_str(&format!(
        "{}\n",
        s.bold("fallbacks (used when kcmp is unavailable; equality only)")
    ));
    let f = &r.fallbacks;
    out.push_str(&check_line(s, "F_DUPFD_QUERY", &f.f_dupfd_query, "yes"));
    out.push_str(&check_line(s, "pidfd_getfd", &f.pidfd_getfd, "yes"));
    out.push_str(&check_line(s, "epoll trick", &f.epoll_trick, "yes"));
    out.push_str(&format!("{}\n", s.bold("freeze methods")));
    let z = &r.freeze;
    out.push_str(&check_line(s, "ptrace", &z.ptrace, "yes"));
    out.push_str(&check_line(s, "cgroup v2", &z.cgroup_freeze, "found"));
    out.push_str(&check_line(s, "SIGSTOP", &z.sigstop, "yes"));
    out.push_str(&format!(
        "{}\n",
        s.bold("copies (the scan's own copies of the descriptions it compares)")
    ));
    out.push_str(&check_line(s, "server-free", &r.server_free_host, "yes"));
    out.push_str(&format!("{}\n", s.bold("unprivileged users")));
    out.push_str(&format!("  {}\n", r.unprivileged));
    let verdict = if r.kcmp.works {
        "kcmp works: exact answers with order".to_string()
    } else if r.usable {
        "kcmp is unavailable; file comparisons fall back to exact equality-only methods, \
         process-level kinds are unavailable"
            .to_string()
    } else {
        s.warn("neither kcmp nor any fallback works here")
    };
    out.push_str(&format!("{:<16} {verdict}\n", s.bold("verdict")));
    out
}
