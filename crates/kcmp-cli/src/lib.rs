//! The `kcmp` command-line tool, as a library so that `cargo xtask` can
//! generate man pages and completions from the same definition.

pub mod cli;

pub use cli::Cli;

/// The clap command tree (for man pages and completions).
///
/// ```
/// let cmd = kcmp_cli::command();
/// assert_eq!(cmd.get_name(), "kcmp");
/// ```
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}
