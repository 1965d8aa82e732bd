//! Output formats: human text (with colour on terminals), JSON, NDJSON,
//! Graphviz; escaping, summaries and filters shared by the reports; and the
//! one way to write to stdout ([`sink`]: no lost output).

pub mod audit;
pub mod dot;
pub mod epoll;
pub mod epoll_json;
pub mod escape;
pub mod events;
pub mod filter;
pub mod progress;
pub mod scan;
pub mod scan_json;
pub mod sink;
pub mod style;
pub mod summary;

/// Writes to stdout and flushes; a closed pipe ends the command with 141,
/// any other write error with 2 and one line on stderr (see [`sink`]).
pub fn write_stdout(text: &str) {
    sink::emit(text);
}

/// Writes one line to stdout (see [`write_stdout`]).
pub fn print_line(args: std::fmt::Arguments<'_>) {
    sink::emit(&format!("{args}\n"));
}

/// `println!` for the CLI: see [`print_line`].
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::print_line(format_args!($($arg)*))
    };
}

/// Prints a note on stderr: `kcmp: note: …`.
pub fn note(text: &str) {
    eprintln!("kcmp: note: {text}");
}

/// The one-line summary of processes that could not be inspected, by
/// reason (`skipped: 1 EPERM, 2 ESRCH (use --json for each pid and why)`),
/// or `None` when there are none. For stderr.
pub fn skipped_note(skipped: &[kcmp_map::scan::Skipped], style: style::Style) -> Option<String> {
    if skipped.is_empty() {
        return None;
    }
    let mut reasons: std::collections::BTreeMap<&str, usize> = Default::default();
    for s in skipped {
        *reasons.entry(s.reason.as_str()).or_default() += 1;
    }
    let list: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
    Some(style.dim(&format!(
        "skipped: {} (use --json for each pid and why)",
        list.join(", ")
    )))
}

/// How many processes a note names before it gives a count of the rest.
pub const NOTE_NAMES: usize = 5;

/// `not frozen: 1 (ancestor: …), 2 (already traced by process 812) and 3
/// more`, or `None` when every process was frozen. For stderr.
pub fn not_frozen_note(not_frozen: &[kcmp_map::freeze::NotFrozen]) -> Option<String> {
    if not_frozen.is_empty() {
        return None;
    }
    let named: Vec<String> = not_frozen
        .iter()
        .take(NOTE_NAMES)
        .map(|n| format!("{} ({})", n.pid, escape::escape(&n.reason)))
        .collect();
    let more = not_frozen.len().saturating_sub(NOTE_NAMES);
    Some(format!(
        "not frozen: {}{}",
        named.join(", "),
        if more > 0 {
            format!(" and {more} more (use --json for each pid and why)")
        } else {
            String::new()
        }
    ))
}
