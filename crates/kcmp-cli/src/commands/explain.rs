//! Errors that say what happened: `no process 40000` (naming the missing
//! pid, with ESRCH alone), a zombie named as a zombie.

use kcmp::{Error, Pid};
use rustix::io::Errno;

/// Whether `/proc/PID` exists (a process, or a thread by its tid).
fn exists(pid: Pid) -> bool {
    std::path::Path::new(&format!("/proc/{pid}/stat")).exists()
}

fn is_zombie(pid: Pid) -> bool {
    kcmp_map::procfs::read_stat(pid).is_ok_and(|s| s.is_zombie())
}

fn list(pids: &[Pid]) -> String {
    let v: Vec<String> = pids.iter().map(Pid::to_string).collect();
    v.join(" or ")
}

/// Rewrites `err`, raised about `pids`, into what happened when /proc can
/// tell: a pid that does not exist (`no process 40000`, ESRCH), a zombie
/// (`process 1234 is a zombie …`). Other errors pass unchanged.
pub fn error(err: Error, pids: &[Pid]) -> Error {
    let mut unique = pids.to_vec();
    unique.sort_unstable();
    unique.dedup();
    let missing: Vec<Pid> = unique.iter().copied().filter(|&p| !exists(p)).collect();
    // ESRCH names the missing ones; "nothing could be scanned" (EINVAL)
    // only when none of the pids exists (else another reason stands).
    let all_missing = !missing.is_empty() && missing.len() == unique.len();
    if !missing.is_empty() && (err.is_gone() || (err.errno() == Some(Errno::INVAL) && all_missing))
    {
        return Error::os(format!("no process {}", list(&missing)), Errno::SRCH);
    }
    // A thread id given where a process is selected (scan, audit).
    if err.errno() == Some(Errno::INVAL) {
        let threads: Vec<String> = unique
            .iter()
            .filter_map(|&p| {
                let tgid = kcmp_map::procfs::read_status_field(p, "Tgid").ok()??;
                let tgid = tgid.trim().to_string();
                (tgid != p.to_string()).then(|| format!("{p} is a thread of process {tgid}"))
            })
            .collect();
        if !threads.is_empty() {
            return Error::os(
                format!(
                    "{}, not a process: give the process (with --threads, each of its threads is inspected)",
                    threads.join(", ")
                ),
                Errno::INVAL,
            );
        }
    }
    let zombies: Vec<Pid> = unique.iter().copied().filter(|&p| is_zombie(p)).collect();
    if !zombies.is_empty() {
        let errno = err.errno().unwrap_or(Errno::SRCH);
        return Error::os(
            format!(
                "process {} is a zombie (it exited and its parent has not reaped it): it has no fds, memory or other resources left to compare",
                list(&zombies)
            ),
            errno,
        );
    }
    err
}
