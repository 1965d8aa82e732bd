//! The `kcmp` binary: a thin layer over the `kcmp` library.

use clap::Parser;
use kcmp_cli::cli::{Cli, Command};
use kcmp_cli::commands;
use kcmp_cli::{exit, write_stderr};

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            use clap::error::ErrorKind;
            match err.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    if let Err(e) = err.print() {
                        // Help and version are output too: a write error
                        // names its errno (141 quietly for a closed pipe).
                        kcmp_cli::output::sink::fail(&e);
                    }
                    std::process::exit(
                        if err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                            exit::TROUBLE
                        } else {
                            0
                        },
                    );
                }
                _ => {
                    // One line naming the argument, and which help to read.
                    write_stderr(format_args!("{}", kcmp_cli::cli::usage_error_message(&err)));
                    std::process::exit(exit::TROUBLE);
                }
            }
        }
    };
    kcmp_map::exit(run(cli));
}

/// Checks the environment (one pid namespace), applies the global options
/// and runs the command.
fn run(cli: Cli) -> i32 {
    if !matches!(
        cli.command,
        Command::Doctor { .. } | Command::Demo | Command::DemoChild { .. }
    ) {
        if let Err(e) = kcmp_map::pidns::check() {
            return kcmp_cli::report_error(&e);
        }
    }
    if let Some(window) = cli.freeze_timeout {
        kcmp_map::freeze::set_max_frozen(window);
    }
    // Every frozen window thaws within 1 s of kcmp's last step of work,
    // even if a bug makes kcmp loop while its heartbeat beats (issue 10).
    kcmp_map::freeze::set_release_when_stalled(true);
    // Ctrl-Z during --freeze: thaw first, then stop (issue 10).
    let _ = kcmp_map::freeze::release_on_terminal_stop();
    match cli.command {
        Command::File {
            pid1,
            fd1,
            pid2,
            fd2,
            options,
        } => commands::compare::file(pid1, fd1, pid2, fd2, &options),
        Command::Vm(p) => commands::compare::process(kcmp::ProcessResource::Vm, &p),
        Command::Files(p) => commands::compare::process(kcmp::ProcessResource::Files, &p),
        Command::Fs(p) => commands::compare::process(kcmp::ProcessResource::Fs, &p),
        Command::Sighand(p) => commands::compare::process(kcmp::ProcessResource::Sighand, &p),
        Command::Io(p) => commands::compare::process(kcmp::ProcessResource::Io, &p),
        Command::Sysvsem(p) => commands::compare::process(kcmp::ProcessResource::Sysvsem, &p),
        Command::EpollTfd {
            pid1,
            fd1,
            pid2,
            epfd,
            tfd,
            toff,
            options,
        } => commands::compare::epoll_tfd(pid1, fd1, pid2, epfd, tfd, toff, &options),
        Command::Scan(args) => commands::scan::run(&args),
        Command::Audit(args) => commands::audit::run(&args),
        Command::Holders {
            pid,
            fd,
            peer,
            json,
            freeze,
        } => commands::holders::run(pid, fd, peer, json, freeze),
        Command::EpollTargets {
            pid,
            epfd,
            json,
            freeze,
        } => commands::epoll::run(pid, epfd, json, freeze),
        Command::Doctor { json } => commands::doctor::run(json),
        Command::Demo => commands::demo::run(),
        Command::Help { command } => commands::help::run(command.as_deref()),
        Command::DemoChild { parent, fd, path } => commands::demo::child(parent, fd, &path),
    }
}
