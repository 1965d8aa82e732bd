//! Summarising holders for people: `nginx ×49 (1166–1214) fd 6` instead of
//! 49 lines. Used by `kcmp scan` and reusable by other reports.
//!
//! A summary groups the (pid, fd) pairs by command name (comm), biggest
//! group first; each group says how many processes (`×N`, left out for
//! one), their pids as ranges, and the fd numbers they hold it under.

use super::escape::escape;
use std::collections::BTreeMap;

/// One holder: a (pid, fd) pair and the process's command name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HolderRef<'a> {
    /// The pid (or tid).
    pub pid: i32,
    /// The fd number.
    pub fd: i32,
    /// The command name, unescaped.
    pub comm: &'a str,
}

/// How many groups and ranges a summary shows before it says `+N more`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Commands listed per line.
    pub commands: usize,
    /// Pid ranges listed per command.
    pub pid_ranges: usize,
    /// fd ranges listed per command.
    pub fd_ranges: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            commands: 4,
            pid_ranges: 3,
            fd_ranges: 4,
        }
    }
}

/// Sorted, deduplicated numbers as ranges: `1, 3–5, 9` (an en dash), at
/// most `max` ranges, then `+N more` counting the numbers left out.
///
/// ```
/// use kcmp_cli::output::summary::ranges;
/// assert_eq!(ranges(&[1, 3, 4, 5, 9], 8), "1, 3–5, 9");
/// assert_eq!(ranges(&[1, 3, 4, 5, 9, 11], 2), "1, 3–5, +2 more");
/// ```
pub fn ranges(sorted: &[i32], max: usize) -> String {
    let mut runs: Vec<(i32, i32)> = Vec::new();
    for &n in sorted {
        match runs.last_mut() {
            Some((_, end)) if n == *end + 1 => *end = n,
            Some((_, end)) if n == *end => {}
            _ => runs.push((n, n)),
        }
    }
    let mut parts: Vec<String> = runs
        .iter()
        .take(max)
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}–{b}")
            }
        })
        .collect();
    if runs.len() > max {
        let left: i64 = runs[max..].iter().map(|&(a, b)| (b - a) as i64 + 1).sum();
        parts.push(format!("+{left} more"));
    }
    parts.join(", ")
}

/// The number of distinct pids among `holders`.
pub fn process_count(holders: &[HolderRef<'_>]) -> usize {
    let mut pids: Vec<i32> = holders.iter().map(|h| h.pid).collect();
    pids.sort_unstable();
    pids.dedup();
    pids.len()
}

/// `nginx ×49 (1166–1214) fd 6; master (1165) fd 6`: the holders grouped
/// by command (escaped), biggest first (then by name).
///
/// ```
/// use kcmp_cli::output::summary::{summarize, HolderRef, Limits};
/// let h = |pid, fd, comm| HolderRef { pid, fd, comm };
/// let holders = [h(10, 6, "nginx"), h(11, 6, "nginx"), h(12, 6, "nginx"), h(9, 3, "master")];
/// assert_eq!(summarize(&holders, Limits::default()), "nginx ×3 (10–12) fd 6; master (9) fd 3");
/// ```
pub fn summarize(holders: &[HolderRef<'_>], limits: Limits) -> String {
    let mut by_comm: BTreeMap<&str, (Vec<i32>, Vec<i32>, usize)> = BTreeMap::new();
    for h in holders {
        let e = by_comm.entry(h.comm).or_default();
        e.0.push(h.pid);
        e.1.push(h.fd);
        e.2 += 1;
    }
    let mut groups: Vec<(&str, Vec<i32>, Vec<i32>, usize)> = by_comm
        .into_iter()
        .map(|(c, (mut pids, mut fds, n))| {
            pids.sort_unstable();
            pids.dedup();
            fds.sort_unstable();
            fds.dedup();
            (c, pids, fds, n)
        })
        .collect();
    groups.sort_by(|a, b| {
        b.3.cmp(&a.3)
            .then(b.1.len().cmp(&a.1.len()))
            .then(a.0.cmp(b.0))
    });
    let mut parts: Vec<String> = groups
        .iter()
        .take(limits.commands)
        .map(|(comm, pids, fds, _)| {
            let times = if pids.len() > 1 {
                format!(" ×{}", pids.len())
            } else {
                String::new()
            };
            format!(
                "{}{times} ({}) fd {}",
                escape(comm),
                ranges(pids, limits.pid_ranges),
                ranges(fds, limits.fd_ranges).replace(", ", ",")
            )
        })
        .collect();
    if groups.len() > limits.commands {
        let rest = &groups[limits.commands..];
        let procs: usize = rest.iter().map(|g| g.1.len()).sum();
        parts.push(format!(
            "+{} more command{} ({procs} process{})",
            rest.len(),
            if rest.len() == 1 { "" } else { "s" },
            if procs == 1 { "" } else { "es" }
        ));
    }
    parts.join("; ")
}

/// `12 holders in 3 processes` (singular forms for one).
///
/// ```
/// assert_eq!(kcmp_cli::output::summary::counts(1, 1), "1 holder in 1 process");
/// assert_eq!(kcmp_cli::output::summary::counts(49, 49), "49 holders in 49 processes");
/// ```
pub fn counts(holders: usize, processes: usize) -> String {
    format!(
        "{holders} holder{} in {processes} process{}",
        if holders == 1 { "" } else { "s" },
        if processes == 1 { "" } else { "es" }
    )
}

/// One holder as `pid (comm) fd N`, the comm escaped.
///
/// ```
/// use kcmp_cli::output::summary::{holder_line, HolderRef};
/// assert_eq!(holder_line(HolderRef { pid: 7, fd: 3, comm: "a\nb" }), "7 (a\\nb) fd 3");
/// ```
pub fn holder_line(h: HolderRef<'_>) -> String {
    format!("{} ({}) fd {}", h.pid, escape(h.comm), h.fd)
}
