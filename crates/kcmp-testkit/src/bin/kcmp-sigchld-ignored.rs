//! `kcmp-sigchld-ignored CMD ARGS...`
//!
//! Sets SIGCHLD to `SIG_IGN` and execs CMD: a program that ignores SIGCHLD,
//! whose exiting children the kernel then reaps at once (an ignored
//! signal stays ignored across exec; a handler or `SA_NOCLDWAIT` would
//! not). For tests of kcmp as a library in such a caller (daemons do this).

use std::os::unix::process::CommandExt;
use std::process::Command;

fn main() {
    let mut args = std::env::args_os().skip(1);
    let Some(cmd) = args.next() else {
        eprintln!("usage: kcmp-sigchld-ignored CMD ARGS...");
        std::process::exit(2);
    };
    // SAFETY: signal() with SIG_IGN installs no handler code; this process
    // is single-threaded here.
    if unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) } == libc::SIG_ERR {
        eprintln!(
            "kcmp-sigchld-ignored: signal: {}",
            std::io::Error::last_os_error()
        );
        std::process::exit(1);
    }
    let err = Command::new(&cmd).args(args).exec();
    eprintln!(
        "kcmp-sigchld-ignored: exec {}: {err}",
        cmd.to_string_lossy()
    );
    std::process::exit(127);
}
