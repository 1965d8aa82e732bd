//! `kcmp holders PID FD [--peer] [--json]`.

use crate::output::style::Style;
use crate::{exit, report_error};
use kcmp::{FdNum, Pid};
use kcmp_map::holders::{find_holders, Holder, HoldersOptions};
use serde_json::json;
use std::fmt::Write as _;

fn holders_json(holders: &[Holder]) -> serde_json::Value {
    json!(holders
        .iter()
        .map(|h| json!({"pid": h.pid, "fd": h.fd, "comm": h.comm}))
        .collect::<Vec<_>>())
}

/// Runs the command; exit 0 on an answer, 2 on trouble.
pub fn run(pid: i32, fd: i32, peer: bool, json: bool, freeze: bool) -> i32 {
    let (pid, fd) = match (Pid::new(pid), FdNum::new(fd)) {
        (Ok(p), Ok(f)) => (p, f),
        (Err(e), _) | (_, Err(e)) => return report_error(&e),
    };
    let _ = kcmp_map::raise_fd_limit(); // the library never raises it
    let options = HoldersOptions {
        peer,
        freeze,
        workers: 0,
        include_self: false,
    };
    let report = match find_holders(pid, fd, &options) {
        Ok(r) => r,
        Err(e) => return report_error(&e),
    };
    if peer && report.peer.is_none() {
        eprintln!(
            "kcmp: note: --peer applies to pipes; {} is not a pipe",
            report.target
        );
    }
    let text = if json {
        let mut v = json!({
            "pid": report.pid,
            "fd": report.fd,
            "target": report.target,
            "holders": holders_json(&report.holders),
            "skipped": report.skipped,
            "skipped_fds": report.skipped_fds,
            "stats": {"kcmp_calls": report.kcmp_calls, "elapsed_ms": report.elapsed_ms},
        });
        if let Some(p) = &report.peer {
            v["peer"] =
                json!({"target": p.target, "end": p.end, "holders": holders_json(&p.holders)});
        }
        if report.frozen {
            v["frozen"] = json!(true);
        }
        format!("{v}\n")
    } else {
        let style = Style::stdout();
        let mut out = String::new();
        let line = |out: &mut String, h: &Holder, target: &str| {
            let _ = writeln!(
                out,
                "{} ({}) {} {}",
                h.pid,
                h.comm,
                h.fd,
                style.target(target)
            );
        };
        for h in &report.holders {
            line(&mut out, h, &report.target);
        }
        if let Some(p) = &report.peer {
            let _ = writeln!(out, "{}", style.bold(&format!("other end ({}):", p.end)));
            if p.holders.is_empty() {
                let _ = writeln!(
                    out,
                    "    nobody holds it: a reader sees EOF, a writer gets EPIPE"
                );
            }
            for h in &p.holders {
                line(&mut out, h, &p.target);
            }
        }
        if let Some(note) = crate::output::skipped_note(&report.skipped, style) {
            let _ = writeln!(out, "{note}");
        }
        out
    };
    crate::output::write_stdout(&text);
    exit::SAME
}
