//! Rendering a [`SharingMap`]: human text, JSON schema 1, Graphviz DOT.

use super::style::Style;
use kcmp::Pid;
use kcmp_map::scan::{OpenFileDescription, SharingMap};
use serde::Serialize;
use std::fmt::Write as _;

fn shown(map: &SharingMap, include_unshared: bool) -> impl Iterator<Item = &OpenFileDescription> {
    map.open_files
        .iter()
        .filter(move |d| include_unshared || d.members.len() >= 2)
}

/// The shown descriptions, serialized lazily.
struct OpenFiles<'a> {
    map: &'a SharingMap,
    include_unshared: bool,
}

impl Serialize for OpenFiles<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(shown(self.map, self.include_unshared))
    }
}

/// JSON schema 1, borrowed from the map (no intermediate tree: a 50k-fd scan
/// stays small in memory). More keys may be added; these keep their meaning.
#[derive(Serialize)]
struct ScanJson<'a> {
    schema: u32,
    tasks: usize,
    fds: usize,
    skipped: &'a [kcmp_map::scan::Skipped],
    open_files: OpenFiles<'a>,
    shared: &'a std::collections::BTreeMap<String, Vec<Vec<Pid>>>,
    unavailable: &'a std::collections::BTreeMap<String, String>,
    stats: &'a kcmp_map::scan::ScanStats,
    #[serde(skip_serializing_if = "Option::is_none")]
    frozen: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_frozen: Option<&'a [kcmp_map::freeze::NotFrozen]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    epoll: Option<&'a [kcmp_map::epoll::EpollInstance]>,
    skipped_fds: &'a [kcmp_map::model::SkippedFd],
    changed_fds: &'a [kcmp_map::scan::FdRef],
    own_fd_tables: &'a [Pid],
}

/// Writes JSON schema 1 (see the README) and a newline.
pub fn write_json(
    map: &SharingMap,
    include_unshared: bool,
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
    write_json_with_epoll(map, include_unshared, None, out)
}

/// [`write_json`] with the `"epoll"` key (see [`kcmp_map::epoll::resolve_scan`]).
pub fn write_json_with_epoll(
    map: &SharingMap,
    include_unshared: bool,
    epoll: Option<&[kcmp_map::epoll::EpollInstance]>,
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
    let doc = ScanJson {
        schema: 1,
        tasks: map.tasks.len(),
        fds: map.fd_count(),
        skipped: &map.skipped,
        open_files: OpenFiles {
            map,
            include_unshared,
        },
        shared: &map.shared,
        unavailable: &map.unavailable,
        stats: &map.stats,
        frozen: map.frozen.then_some(true),
        not_frozen: map.frozen.then_some(&map.not_frozen[..]),
        epoll,
        skipped_fds: &map.skipped_fds,
        changed_fds: &map.changed_fds,
        own_fd_tables: &map.own_fd_tables,
    };
    serde_json::to_writer(&mut *out, &doc)?;
    out.write_all(b"\n")
}

fn holder(map: &SharingMap, pid: Pid) -> String {
    format!("{pid} ({})", map.comm(pid).unwrap_or("?"))
}

/// Human output: one block per shared description, the process-level
/// groups, then a summary line.
pub fn human(map: &SharingMap, include_unshared: bool, style: Style) -> String {
    human_with_findings(map, include_unshared, "", style)
}

/// [`human`] with more findings (e.g. stale epoll registrations) printed
/// before the summary line.
pub fn human_with_findings(
    map: &SharingMap,
    include_unshared: bool,
    findings: &str,
    style: Style,
) -> String {
    let mut out = String::new();
    let mut shared_count = 0usize;
    for d in shown(map, include_unshared) {
        if d.members.len() >= 2 {
            shared_count += 1;
        }
        let _ = writeln!(out, "{}", style.target(&d.target));
        for m in &d.members {
            let _ = writeln!(out, "    {} {}", holder(map, m.pid), m.fd);
        }
    }
    if !include_unshared {
        shared_count = map
            .open_files
            .iter()
            .filter(|d| d.members.len() >= 2)
            .count();
    } else {
        shared_count = shared_count.max(
            map.open_files
                .iter()
                .filter(|d| d.members.len() >= 2)
                .count(),
        );
    }
    let mut any_group = false;
    for (kind, groups) in &map.shared {
        for g in groups {
            if !any_group {
                if !out.is_empty() {
                    out.push('\n');
                }
                let _ = writeln!(out, "{}", style.bold("process-level sharing"));
                any_group = true;
            }
            let members: Vec<String> = g.iter().map(|&p| holder(map, p)).collect();
            let _ = writeln!(out, "    {kind:<8} {}", members.join(", "));
        }
    }
    for (kind, why) in &map.unavailable {
        let _ = writeln!(
            out,
            "{}",
            style.warn(&format!("{kind}: not computed: {why}"))
        );
    }
    if let Some(note) = super::skipped_note(&map.skipped, style) {
        let _ = writeln!(out, "{note}");
    }
    for (what, n) in [
        (
            "fds changed during the scan (in no description)",
            map.changed_fds.len(),
        ),
        ("fds skipped (unreadable or closed)", map.skipped_fds.len()),
        (
            "threads with their own fd table, shown as tasks",
            map.own_fd_tables.len(),
        ),
    ] {
        if n > 0 {
            let _ = writeln!(out, "{}", style.warn(&format!("{what}: {n}")));
        }
    }
    if map.frozen && !map.not_frozen.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            style.warn(&format!("not frozen: {} processes", map.not_frozen.len()))
        );
    }
    if !findings.is_empty() {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(findings);
    }
    if !out.is_empty() {
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "{} tasks, {} fds, {} shared descriptions, {} skipped{} ({} kcmp calls, {:.0} ms)",
        map.tasks.len(),
        map.fd_count(),
        shared_count,
        map.skipped.len(),
        if map.frozen { ", frozen" } else { "" },
        map.stats.kcmp_calls,
        map.stats.elapsed_ms
    );
    out
}

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Graphviz: tasks and shared descriptions as nodes, holders as edges
/// labelled with the fd; process-level sharing as dashed edges.
pub fn dot(map: &SharingMap, include_unshared: bool) -> String {
    let mut out = String::from(
        "digraph kcmp {\n  rankdir=LR;\n  node [fontname=\"monospace\", fontsize=10];\n  edge [fontname=\"monospace\", fontsize=9, color=\"#666666\"];\n",
    );
    let mut used: std::collections::BTreeSet<Pid> = Default::default();
    let mut body = String::new();
    for (i, d) in shown(map, include_unshared).enumerate() {
        let _ = writeln!(
            body,
            "  d{i} [shape=note, style=filled, fillcolor=\"#fff4d6\", label=\"{}\"];",
            dot_escape(&d.target)
        );
        // One edge per holding task, labelled with all its fds.
        for run in d.members.chunk_by(|a, b| a.pid == b.pid) {
            let pid = run[0].pid;
            used.insert(pid);
            let fds: Vec<String> = run.iter().map(|m| m.fd.to_string()).collect();
            let _ = writeln!(body, "  p{pid} -> d{i} [label=\"fd {}\"];", fds.join(","));
        }
    }
    for (kind, groups) in &map.shared {
        for g in groups {
            for w in g.windows(2) {
                used.insert(w[0]);
                used.insert(w[1]);
                let _ = writeln!(
                    body,
                    "  p{} -> p{} [dir=none, style=dashed, color=\"#3366cc\", label=\"{kind}\"];",
                    w[0], w[1]
                );
            }
        }
    }
    for pid in used {
        let _ = writeln!(
            out,
            "  p{pid} [shape=box, style=rounded, label=\"{pid}\\n{}\"];",
            dot_escape(map.comm(pid).unwrap_or("?"))
        );
    }
    out.push_str(&body);
    out.push_str("}\n");
    out
}
