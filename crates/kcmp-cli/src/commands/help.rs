//! `kcmp help [COMMAND]`: the long help of kcmp or of one command.

use crate::exit;

/// Prints the help; exit 0, or 2 for an unknown command.
pub fn run(command: Option<&str>) -> i32 {
    let mut cmd = crate::command();
    let text = match command {
        None => cmd.render_long_help(),
        Some(name) => match cmd.find_subcommand_mut(name) {
            Some(sub) if !sub.is_hide_set() => {
                let mut sub = sub.clone().bin_name(format!("kcmp {name}"));
                sub.render_long_help()
            }
            _ => {
                eprintln!("kcmp: usage error: no command {name:?} (see kcmp --help)");
                return exit::TROUBLE;
            }
        },
    };
    crate::output::write_stdout(&format!("{text}"));
    exit::SAME
}
