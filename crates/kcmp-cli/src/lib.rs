//! The `kcmp` command-line tool. A library too, so that `cargo xtask` can
//! generate man pages and completions from the same definition, and so the
//! commands can be tested piece by piece.
#![warn(missing_docs)]

/// `eprintln!` for the whole crate (it shadows std's): a failed write to
/// stderr ends kcmp silently with status 141 for a closed pipe, 2 otherwise
/// (issue 10: output errors never panic). See [`write_stderr`].
macro_rules! eprintln {
    ($($arg:tt)*) => {
        $crate::write_stderr(format_args!($($arg)*))
    };
}

pub mod cli;
pub mod commands;
pub mod output;

pub use cli::Cli;

/// Exit statuses, as cmp(1).
pub mod exit {
    /// The compared objects are the same (or, for other commands, success).
    pub const SAME: i32 = 0;
    /// The compared objects differ.
    pub const DIFFERENT: i32 = 1;
    /// Bad arguments or a system error.
    pub const TROUBLE: i32 = 2;
}

/// The clap command tree (for man pages and completions).
///
/// ```
/// let cmd = kcmp_cli::command();
/// assert_eq!(cmd.get_name(), "kcmp");
/// ```
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// Prints one line of trouble on stderr, naming the errno, and returns the
/// exit status for trouble.
pub fn report_error(err: &kcmp::Error) -> i32 {
    eprintln!("kcmp: {err}");
    exit::TROUBLE
}

/// Writes one line to stderr. When stderr itself is broken (a closed pipe,
/// a full device), there is nowhere to say so: exit at once with status 141
/// for a closed pipe (as a SIGPIPE death would) and 2 otherwise, never a
/// panic.
pub fn write_stderr(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    if let Err(e) = writeln!(err, "{args}").and_then(|()| err.flush()) {
        kcmp_map::exit(output_error_status(&e));
    }
}

/// The exit status for a failed write to stdout or stderr: 141 for a
/// closed pipe, 2 ([`exit::TROUBLE`]) otherwise.
pub fn output_error_status(e: &std::io::Error) -> i32 {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        141
    } else {
        exit::TROUBLE
    }
}
