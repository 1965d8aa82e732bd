//! Output formats: human text (with colour on terminals), JSON, Graphviz.

pub mod epoll;
pub mod progress;
pub mod scan;
pub mod style;

/// Writes to stdout. A closed pipe (`kcmp scan | head`) ends kcmp quietly
/// with status 141; any other failure (a full device) with one line on
/// stderr and status 2 ([`stdout_failed`]).
pub fn write_stdout(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        stdout_failed(&e);
    }
}

/// Ends kcmp after a failed write to stdout: quietly with 141 for a closed
/// pipe, otherwise with one line on stderr and status 2.
pub fn stdout_failed(e: &std::io::Error) -> ! {
    if e.kind() != std::io::ErrorKind::BrokenPipe {
        eprintln!("kcmp: cannot write to stdout: {e}");
    }
    std::process::exit(crate::output_error_status(e))
}

/// Writes one line to stdout. A closed stdout (`kcmp demo | head -1`) means
/// the reader has had enough: exit quietly with the status a SIGPIPE death
/// would give (141), never a panic.
pub fn print_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{args}").and_then(|()| out.flush()) {
        stdout_failed(&e);
    }
}

/// `println!` for the CLI: see [`print_line`].
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::print_line(format_args!($($arg)*))
    };
}

/// The one-line summary of processes that could not be inspected, by
/// reason (`skipped: 1 EPERM, 2 ESRCH (use --json for each pid and why)`),
/// or `None` when there are none.
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
