//! The `kcmp` binary: a thin layer over the `kcmp` library.

use clap::Parser;
use kcmp_cli::cli::{Cli, Command};
use kcmp_cli::commands;
use kcmp_cli::exit;

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            use clap::error::ErrorKind;
            match err.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let _ = err.print();
                    std::process::exit(
                        if err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                            exit::TROUBLE
                        } else {
                            0
                        },
                    );
                }
                _ => {
                    // One line, no usage dump: the first line of clap's message.
                    let text = err.render().to_string();
                    let first = text.lines().next().unwrap_or("invalid arguments");
                    let first = first.strip_prefix("error: ").unwrap_or(first);
                    eprintln!("kcmp: usage error: {first} (see kcmp --help)");
                    std::process::exit(exit::TROUBLE);
                }
            }
        }
    };
    let status = match cli.command {
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
        Command::DemoChild { parent, fd, path } => commands::demo::child(parent, fd, &path),
    };
    std::process::exit(status);
}
