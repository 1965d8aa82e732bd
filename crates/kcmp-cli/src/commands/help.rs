//! `kcmp help [COMMAND]`: the help of kcmp or of one command, exactly as
//! `kcmp COMMAND --help` prints it.

use crate::exit;

/// Prints the help; exit 0, or 2 for an unknown command.
pub fn run(command: Option<&str>) -> i32 {
    let mut argv = vec!["kcmp"];
    if let Some(name) = command {
        let known = crate::command()
            .get_subcommands()
            .any(|s| s.get_name() == name && !s.is_hide_set());
        if !known {
            eprintln!("kcmp: usage error: no command {name:?} (see kcmp --help)");
            return exit::TROUBLE;
        }
        argv.push(name);
    }
    argv.push("--help");
    match crate::command().try_get_matches_from(argv) {
        Err(e) => {
            crate::output::write_stdout(&e.render().to_string());
            exit::SAME
        }
        Ok(_) => exit::TROUBLE,
    }
}
