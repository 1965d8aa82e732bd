//! The `kcmp` command-line tool. A library too, so that `cargo xtask` can
//! generate man pages and completions from the same definition, and so the
//! commands can be tested piece by piece.
#![warn(missing_docs)]

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
