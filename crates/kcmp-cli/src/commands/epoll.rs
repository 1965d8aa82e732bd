//! `kcmp epoll-targets PID EPFD`: every registration of an epoll instance,
//! resolved to the open file descriptions it watches.

use crate::output::{epoll as render, style::Style};
use crate::{exit, report_error};
use kcmp::{FdNum, Pid};

/// Runs the command; exit 0, or 2 with one line naming the errno.
///
/// With `freeze`, the epoll's process is stopped for the inspection (its
/// registrations and fd table cannot change meanwhile) and resumed after.
pub fn run(pid: i32, epfd: i32, json: bool, freeze: bool) -> i32 {
    let not_frozen = std::cell::RefCell::new(Vec::new());
    let inspect = || -> Result<kcmp_map::epoll::EpollTargets, kcmp::Error> {
        let (pid, epfd) = (Pid::new(pid)?, FdNum::new(epfd)?);
        kcmp_map::epoll::check_epoll_fd(pid, epfd)?;
        let frozen = if freeze {
            let set = kcmp_map::freeze::freeze(&[pid])?;
            if let Some(note) = crate::output::not_frozen_note(set.not_frozen()) {
                eprintln!("kcmp: note: {note}");
            }
            *not_frozen.borrow_mut() = set.not_frozen().to_vec();
            Some(set)
        } else {
            None
        };
        let found = kcmp_map::epoll::epoll_targets(pid, epfd);
        if let Some(set) = frozen {
            match set.finish() {
                Ok(None) => {}
                Ok(Some(why)) => eprintln!(
                    "kcmp: note: not frozen throughout ({}): {}",
                    why.code(),
                    why.describe()
                ),
                Err(e) => eprintln!("kcmp: warning: resuming: {e}"),
            }
        }
        found
    };
    let found = match inspect() {
        Ok(f) => f,
        Err(e) => {
            let pids: Vec<Pid> = Pid::new(pid).into_iter().collect();
            return report_error(&crate::commands::explain::error(e, &pids));
        }
    };
    let text = if json {
        let mut v = render::targets_json(&found);
        if freeze {
            v["not_frozen"] = serde_json::json!(*not_frozen.borrow());
        }
        format!("{v}\n")
    } else {
        render::targets_human(&found, Style::stdout())
    };
    crate::output::write_stdout(&text);
    if let Some(n) = crate::output::skipped_note(&found.skipped, Style::plain()) {
        eprintln!("kcmp: {n}");
    }
    if let Some(n) = render::skipped_fds_note(&found.skipped_fds) {
        eprintln!("kcmp: {n}");
    }
    exit::SAME
}
