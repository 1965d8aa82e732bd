//! Output formats: human text (with colour on terminals), JSON, Graphviz.

pub mod audit;
pub mod epoll;
pub mod progress;
pub mod scan;
pub mod style;

/// Writes to stdout; a closed pipe (`kcmp scan | head`) is not an error.
pub fn write_stdout(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Writes one line to stdout. A closed stdout (`kcmp demo | head -1`) means
/// the reader has had enough: exit quietly with the status a SIGPIPE death
/// would give (141), never a panic.
pub fn print_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{args}").and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        eprintln!("kcmp: cannot write to stdout: {e}");
        std::process::exit(crate::exit::TROUBLE);
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
