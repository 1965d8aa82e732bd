//! Rendering a [`SharingMap`] for people.
//!
//! The human format, one line per shown description, most shared first
//! (more holders, then more processes, then by name):
//!
//! ```text
//! socket:[1656253]  socket  49 holders in 49 processes  nginx ×49 (1166–1214) fd 6
//! ```
//!
//! name (escaped as `ls -b` does), kind, how many (pid, fd) pairs hold it
//! in how many processes, and the holders by command: `×N` processes, their
//! pids as ranges, the fd numbers. `--long` adds one `pid (comm) fd N` line
//! per holder. Then the process-level sharing groups (always, `none` when
//! there is none), findings (stale epoll registrations), and one summary
//! line. JSON and Graphviz are in [`super::scan_json`] and [`super::dot`].

use super::escape::display_name;
use super::filter::{Facts, Filters};
use super::style::Style;
use super::summary::{self, HolderRef, Limits};
use kcmp::Pid;
use kcmp_map::scan::{OpenFileDescription, SharingMap};
use std::fmt::Write as _;

/// What a report shows of a map: the selected descriptions and
/// process-level groups, with the facts read to select them.
pub struct View<'a> {
    /// The map.
    pub map: &'a SharingMap,
    /// Cached facts (comm, uid, kind).
    pub facts: Facts<'a>,
    /// The shown descriptions, in the map's order (by first holder).
    pub shown: Vec<&'a OpenFileDescription>,
    /// The shown process-level groups: (kind, pids).
    pub groups: Vec<(&'a str, &'a [Pid])>,
    /// The shown epoll instances: each is a description
    /// (`anon_inode:[eventpoll]`, kind `anon_inode`) and is filtered as one.
    pub epolls: Vec<&'a kcmp_map::epoll::EpollInstance>,
    /// Whether a filter was set.
    pub filtered: bool,
}

impl<'a> View<'a> {
    /// Selects what to show: descriptions held twice or more (all with
    /// `include_unshared`) that pass `filters`, and the groups with a
    /// member matching `--comm`/`--user`.
    pub fn new(map: &'a SharingMap, include_unshared: bool, filters: &Filters) -> Self {
        let facts = Facts::new(map);
        let shown = map
            .open_files
            .iter()
            .filter(|d| include_unshared || d.members.len() >= 2)
            .filter(|d| filters.matches(&facts, d))
            .collect();
        let groups = map
            .shared
            .iter()
            .flat_map(|(k, gs)| gs.iter().map(move |g| (k.as_str(), &g[..])))
            .filter(|(_, g)| filters.group_matches(&facts, g))
            .collect();
        let epolls = map
            .epoll
            .iter()
            .filter(|e| filters.epoll_matches(&facts, e))
            .collect();
        View {
            map,
            facts,
            shown,
            groups,
            epolls,
            filtered: filters.any(),
        }
    }

    /// The holders of a description with their comm.
    pub fn holders(&self, d: &OpenFileDescription) -> Vec<HolderRef<'a>> {
        d.members
            .iter()
            .map(|m| HolderRef {
                pid: m.pid.get(),
                fd: m.fd.get(),
                comm: self.facts.comm(m.pid).unwrap_or("?"),
            })
            .collect()
    }

    /// The exact bytes of a description's name when it is not valid UTF-8,
    /// as the scan read them (nothing is read again).
    pub fn name_bytes<'d>(&self, d: &'d OpenFileDescription) -> Option<&'d [u8]> {
        (!d.target_is_utf8()).then(|| d.target_bytes())
    }

    /// The name for people (escaped).
    pub fn display_name(&self, d: &OpenFileDescription) -> String {
        display_name(&d.target, self.name_bytes(d))
    }

    /// The name for people, with the end of a pipe or FIFO
    /// (`pipe:[5] (read end)`).
    pub fn label(&self, d: &OpenFileDescription) -> String {
        let mut name = self.display_name(d);
        if matches!(self.facts.kind(d), "pipe" | "fifo") {
            name.push_str(end_of(d));
        }
        name
    }

    /// The shown descriptions, most shared first.
    pub fn by_sharing(&self) -> Vec<&'a OpenFileDescription> {
        let mut v = self.shown.clone();
        let procs = |d: &OpenFileDescription| {
            let mut p: Vec<Pid> = d.members.iter().map(|m| m.pid).collect();
            p.dedup();
            p.len()
        };
        v.sort_by(|a, b| {
            b.members
                .len()
                .cmp(&a.members.len())
                .then(procs(b).cmp(&procs(a)))
                .then(a.target.cmp(&b.target))
        });
        v
    }

    /// Shared descriptions in the whole map (held by two or more pairs).
    pub fn shared_count(&self) -> usize {
        self.map
            .open_files
            .iter()
            .filter(|d| d.members.len() >= 2)
            .count()
    }
}

/// ` (read end)`, ` (write end)` or ` (read-write)` for a pipe or FIFO
/// description, from its first holder's fdinfo; empty when unreadable.
fn end_of(d: &OpenFileDescription) -> &'static str {
    let Some(m) = d.members.first() else {
        return "";
    };
    match kcmp_map::procfs::read_fdinfo(m.pid, m.fd).map(|i| i.access_mode()) {
        Ok(0) => " (read end)",
        Ok(1) => " (write end)",
        Ok(_) => " (read-write)",
        Err(_) => "",
    }
}

fn pad(s: &str, w: usize) -> String {
    let n = s.chars().count();
    if n >= w {
        s.to_string()
    } else {
        format!("{s}{}", " ".repeat(w - n))
    }
}

/// The description lines (with `long`, each holder under it).
pub fn description_lines(view: &View<'_>, long: bool, style: Style) -> Vec<String> {
    let rows: Vec<(String, &str, String, String, &OpenFileDescription)> = view
        .by_sharing()
        .into_iter()
        .map(|d| {
            let holders = view.holders(d);
            let counts = summary::counts(holders.len(), summary::process_count(&holders));
            let sum = summary::summarize(&holders, Limits::default());
            (view.label(d), view.facts.kind(d), counts, sum, d)
        })
        .collect();
    let w_name = rows
        .iter()
        .map(|r| r.0.chars().count())
        .max()
        .unwrap_or(0)
        .min(40);
    let w_kind = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    let w_count = rows.iter().map(|r| r.2.len()).max().unwrap_or(0);
    let mut out = Vec::new();
    for (name, kind, counts, sum, d) in &rows {
        out.push(format!(
            "{}  {}  {}  {sum}",
            style.target(&pad(name, w_name)),
            pad(kind, w_kind),
            pad(counts, w_count)
        ));
        if long {
            for h in view.holders(d) {
                out.push(format!("    {}", summary::holder_line(h)));
            }
        }
    }
    out
}

/// The process-level sharing section: a heading, then one line per group
/// (`vm  3 tasks  postgres ×3 (1094–1096)`), or `none`.
pub fn group_lines(view: &View<'_>, style: Style) -> Vec<String> {
    let mut out = vec![style.bold("process-level sharing (vm, files, fs, sighand, io, sysvsem)")];
    if view.groups.is_empty() {
        out.push("    none: no two scanned tasks share one".into());
    }
    for (kind, pids) in &view.groups {
        let holders: Vec<HolderRef<'_>> = pids
            .iter()
            .map(|&p| HolderRef {
                pid: p.get(),
                fd: -1,
                comm: view.facts.comm(p).unwrap_or("?"),
            })
            .collect();
        let sum = summary::summarize(&holders, Limits::default()).replace(" fd -1", "");
        out.push(format!("    {kind:<8} {} tasks  {sum}", pids.len()));
    }
    for (kind, why) in &view.map.unavailable {
        out.push(style.warn(&format!("    {kind:<8} not computed: {why}")));
    }
    out
}

/// The summary line.
pub fn summary_line(view: &View<'_>) -> String {
    let map = view.map;
    let shown = if view.filtered {
        format!(" ({} shown)", view.shown.len())
    } else {
        String::new()
    };
    format!(
        "{} tasks, {} fds, {} shared descriptions{shown}, {} skipped{} ({} kcmp calls, {:.0} ms)",
        map.tasks.len(),
        map.fd_count(),
        view.shared_count(),
        map.skipped.len(),
        if map.frozen { ", frozen" } else { "" },
        map.stats.kcmp_calls,
        map.stats.elapsed_ms
    )
}

/// Human output: descriptions, process-level groups, `findings` (lines
/// ending in newlines, e.g. stale epoll registrations), the summary line.
pub fn human(view: &View<'_>, long: bool, findings: &str, style: Style) -> String {
    let mut out = String::new();
    for l in description_lines(view, long, style) {
        let _ = writeln!(out, "{l}");
    }
    if !out.is_empty() {
        out.push('\n');
    }
    for l in group_lines(view, style) {
        let _ = writeln!(out, "{l}");
    }
    if !findings.is_empty() {
        out.push('\n');
        out.push_str(findings);
    }
    out.push('\n');
    let _ = writeln!(out, "{}", summary_line(view));
    out
}

/// The notes of a scan for stderr: processes skipped, and with `--freeze`
/// those not frozen (the first few with their reasons, then a count).
pub fn notes(map: &SharingMap, style: Style) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(n) = super::skipped_note(&map.skipped, style) {
        out.push(n);
    }
    if map.frozen || map.freeze_released.is_some() {
        if let Some(n) = super::not_frozen_note(&map.not_frozen) {
            out.push(n);
        }
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
            out.push(style.warn(&format!("{what}: {n}")));
        }
    }
    let unanchored = map.stats.descriptions_without_anchor;
    if unanchored > 0 && !map.frozen {
        out.push(style.warn(&format!(
            "descriptions compared through a member, not a copy (exact if their holders held still; --freeze makes sure): {unanchored}"
        )));
    }
    if let Some(why) = map.freeze_released {
        out.push(style.warn(&format!(
            "not frozen throughout ({}): {}",
            why.code(),
            why.describe()
        )));
    }
    out
}
