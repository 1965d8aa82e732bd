//! `kcmp holders PID FD [--peer] [--json]`.
//!
//! Text: one `PID (COMM) fd N TARGET` line per holder (names escaped as
//! `ls -b` does); with `--peer`, the other end's holders under
//! `other end (…):` (a pipe's or FIFO's other end, a unix socket's peer). Notes (skipped processes, not frozen ones) go to
//! stderr. JSON: `{"pid", "fd", "target", "target_bytes"?, "holders":
//! [{"pid", "fd", "comm"}], "peer"?, "skipped", "stats", "frozen"?,
//! "not_frozen"?}`.

use crate::output::escape::{display_name, escape, link_bytes};
use crate::output::style::Style;
use crate::output::summary::{holder_line, HolderRef};
use crate::{exit, report_error};
use kcmp::{FdNum, Pid};
use kcmp_map::holders::{find_holders, Holder, HoldersOptions, HoldersReport};
use serde_json::json;
use std::fmt::Write as _;

fn holders_json(holders: &[Holder]) -> serde_json::Value {
    json!(holders
        .iter()
        .map(|h| json!({"pid": h.pid, "fd": h.fd, "comm": h.comm}))
        .collect::<Vec<_>>())
}

fn report_json(report: &HoldersReport, bytes: Option<Vec<u8>>, freeze: bool) -> String {
    let mut v = json!({
        "pid": report.pid,
        "fd": report.fd,
        "target": report.target,
        "holders": holders_json(&report.holders),
        "skipped": report.skipped,
        "skipped_fds": report.skipped_fds,
        "stats": {"kcmp_calls": report.kcmp_calls, "elapsed_ms": report.elapsed_ms},
    });
    if let Some(b) = bytes {
        v["target_bytes"] = json!(b);
    }
    if let Some(p) = &report.peer {
        v["peer"] = json!({"target": p.target, "end": p.end, "holders": holders_json(&p.holders)});
    }
    if report.without_anchor {
        v["without_anchor"] = json!(true);
    }
    if report.queried_changed {
        v["queried_changed"] = json!(true);
    }
    if report.frozen {
        v["frozen"] = json!(true);
    }
    if let Some(why) = report.freeze_released {
        v["frozen"] = json!(false);
        v["freeze_released"] = json!(why.code());
    }
    if freeze {
        v["not_frozen"] = json!(report.not_frozen);
    }
    format!("{v}\n")
}

fn report_human(report: &HoldersReport, name: &str, style: Style) -> String {
    let mut out = String::new();
    let line = |out: &mut String, h: &Holder, name: &str| {
        let r = HolderRef {
            pid: h.pid.get(),
            fd: h.fd.get(),
            comm: &h.comm,
        };
        let _ = writeln!(out, "{} {}", holder_line(r), style.target(name));
    };
    for h in &report.holders {
        line(&mut out, h, name);
    }
    if let Some(p) = &report.peer {
        let _ = writeln!(out, "{}", style.bold(&format!("other end ({}):", p.end)));
        if p.holders.is_empty() && p.end == "read-write" {
            // Only a read-write description (the FIFO case) leaves an empty
            // read-write other end: its own holders are on both ends.
            let _ = writeln!(
                out,
                "    only the holders above (open read-write: both ends): a reader never sees EOF"
            );
        } else if p.holders.is_empty() {
            let _ = writeln!(
                out,
                "    nobody holds it: a reader sees EOF, a writer gets EPIPE"
            );
        }
        let peer_name = if p.target == report.target {
            name.to_string()
        } else {
            escape(&p.target).into_owned()
        };
        for h in &p.holders {
            line(&mut out, h, &peer_name);
        }
    }
    out
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
        Err(e) => return report_error(&crate::commands::explain::error(e, &[pid])),
    };
    let bytes = link_bytes(pid, fd, &report.target);
    let name = display_name(&report.target, bytes.as_deref());
    let text = if json {
        report_json(&report, bytes, freeze)
    } else {
        report_human(&report, &name, Style::stdout())
    };
    crate::output::write_stdout(&text);
    if peer && report.peer.is_none() {
        crate::output::note(&format!(
            "--peer applies to pipes, FIFOs and connected unix sockets; {name} is none of them (or its peer cannot be told here)"
        ));
    }
    if report.queried_changed {
        eprintln!(
            "kcmp: fd {fd} of {pid} changed during the search (dup2 or close): these are the holders of the description it held when the search began (--freeze holds it still)"
        );
    }
    if let Some(n) = crate::output::skipped_note(&report.skipped, Style::plain()) {
        eprintln!("kcmp: {n}");
    }
    if let Some(n) = crate::output::not_frozen_note(&report.not_frozen) {
        eprintln!("kcmp: {n}");
    }
    exit::SAME
}
