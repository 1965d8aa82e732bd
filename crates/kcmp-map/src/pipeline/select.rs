//! Step 1, select: which processes a scan inspects (all, named pids, or
//! trees), from one parallel read of every /proc/PID/stat.

use super::ScanOptions;
use crate::model::Skipped;
use crate::parallel::{parallel_map_lazy, workers};
use crate::procfs::{self, TaskStat};
use crate::sys;
use kcmp::{Errno, Error, PendingPin, Pid, ProcessHandle, Result};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// A [`Skipped`] entry for `pid` from the error of `what`.
pub(crate) fn skipped_from(pid: Pid, err: &Error, what: &str) -> Skipped {
    let reason = if err.is_permission() {
        "EPERM".to_string()
    } else if err.is_gone() {
        "ESRCH".to_string()
    } else {
        err.errno_name().unwrap_or("E?").to_string()
    };
    let detail = if err.is_permission() {
        format!("{what}: permission denied ({err})")
    } else if err.is_gone() {
        format!("{what}: the task exited ({err})")
    } else {
        format!("{what}: {err}")
    };
    Skipped {
        pid,
        reason,
        detail,
    }
}

/// Processes pinned as they were selected ([`select_processes`]).
pub(crate) struct EarlyPins {
    /// Their handles, by pid.
    pub handles: HashMap<Pid, ProcessHandle>,
    /// The pidfds pinning may still open, when selection took from the
    /// budget ([`super::pin::pidfd_budget`]) already.
    pub budget_left: Option<usize>,
    /// Named threads selected as tasks of their own (an fd table of their
    /// own): every other selected task is a process.
    pub own_table_threads: HashSet<Pid>,
}

/// What selection read of one process: its stat, and its pin when it was
/// pinned as it was read.
type Read = (TaskStat, Option<ProcessHandle>);

/// The stat of `p`, read after its pidfd was opened while `budget` lasts
/// ([`ProcessHandle::open_with`]: the pidfd first, then the stat, which
/// names the same task when the pidfd shows it alive after), so that
/// pinning needs no second read. A pid listed as a process may name a
/// thread of another by the time its stat is read (reused): not a process
/// to select.
fn read_pinned(p: Pid, budget: &AtomicUsize) -> Result<Read> {
    if super::pin::take_pidfd(budget) {
        let read = || procfs::read_process_stat(p).map(|s| (s.start_time, s));
        ProcessHandle::open_with(p, read).map(|(h, s)| (s, Some(h)))
    } else {
        procfs::read_process_stat(p).map(|s| (s, None))
    }
}

/// `work` over every listed process, in parallel chunks; failures (a
/// process that exited, a thread) are left out.
fn over_all<R: Send>(
    pids: &[Pid],
    workers: usize,
    work: impl Fn(Pid) -> Result<R> + Sync,
) -> Vec<(Pid, R)> {
    let chunk = pids.len().div_ceil(workers * 4).max(1);
    let parts = parallel_map_lazy(pids.len().div_ceil(chunk), workers, |c| {
        pids[c * chunk..((c + 1) * chunk).min(pids.len())]
            .iter()
            .filter_map(|&p| work(p).ok().map(|r| (p, r)))
            .collect::<Vec<_>>()
    });
    parts.into_iter().flatten().collect()
}

/// How selection for trees knows a process: through its pidfd (its
/// parent from `PIDFD_GET_INFO`, its stat not read yet), or by its stat.
enum Known {
    Pidfd { ppid: i32, pending: PendingPin },
    Stat(Read),
}

impl Known {
    fn ppid(&self) -> i32 {
        match self {
            Known::Pidfd { ppid, .. } => *ppid,
            Known::Stat((st, _)) => st.ppid,
        }
    }
}

/// Set once `PIDFD_GET_INFO` turned out not to exist here (before 6.13).
static NO_PIDFD_INFO: AtomicBool = AtomicBool::new(false);

/// How selection for trees knows `p`. Through a pidfd whose
/// `PIDFD_GET_INFO` (Linux 6.13) names the parent: its stat (which costs
/// about twice the `pidfd_open` and the ioctl: a path walk and a format) is
/// read after the walk, for the trees' processes only. When the ioctl
/// fails for `p` alone (its parent is outside this pid namespace, or it
/// was reaped): by its stat, read now and pinned by that pidfd. Where the
/// kernel has no such ioctl, or the pidfd budget is spent: by its stat,
/// unpinned (pinned later, by its start time, as before).
fn known(p: Pid, budget: &AtomicUsize) -> Result<Known> {
    if NO_PIDFD_INFO.load(Ordering::Relaxed) || !super::pin::take_pidfd(budget) {
        return procfs::read_process_stat(p).map(|s| Known::Stat((s, None)));
    }
    crate::freeze::step();
    let pending = PendingPin::open(p)?;
    let Some(fd) = pending.pidfd() else {
        // No pidfd (before Linux 5.3, a sandbox, no fd left): the stat.
        return procfs::read_process_stat(p).map(|s| Known::Stat((s, None)));
    };
    match sys::pidfd::tgid_and_ppid(fd) {
        // A thread of another process by now (pid reused): not a process.
        Ok((tgid, _)) if tgid != p.get() => Err(Error::Vanished { pid: p.get() }),
        Ok((_, ppid)) => Ok(Known::Pidfd { ppid, pending }),
        // Before 6.13 (ENOTTY, EINVAL), or refused by a seccomp filter
        // (EPERM, ENOSYS, EACCES: the ioctl itself checks nothing).
        Err(Errno::NOTTY | Errno::INVAL | Errno::PERM | Errno::NOSYS | Errno::ACCESS) => {
            NO_PIDFD_INFO.store(true, Ordering::Relaxed);
            drop(pending);
            procfs::read_process_stat(p).map(|s| Known::Stat((s, None)))
        }
        // Reaped, or its parent is outside this pid namespace: the stat.
        Err(_) => {
            let read = || procfs::read_process_stat(p).map(|s| (s.start_time, s));
            pending
                .read_then_pin(read)
                .map(|(h, s)| Known::Stat((s, Some(h))))
        }
    }
}

/// The processes of `options`' trees (and its named pids, when present),
/// read and pinned: every process is known by its parent first
/// ([`known`]), the trees are walked, and only their processes' stats are
/// read after ([`read_members`]). The other pidfds close here.
fn tree_reads(
    options: &ScanOptions,
    listed: &[Pid],
    workers: usize,
    budget: &AtomicUsize,
) -> HashMap<Pid, Read> {
    let mut all: HashMap<Pid, Known> = over_all(listed, workers, |p| known(p, budget))
        .into_iter()
        .collect();
    let mut children: HashMap<i32, Vec<Pid>> = HashMap::new();
    for (pid, k) in &all {
        children.entry(k.ppid()).or_default().push(*pid);
    }
    let mut members: Vec<Member> = Vec::new();
    for &p in options.pids.iter().chain(&options.trees) {
        members.extend(all.remove(&p).map(|known| Member { pid: p, known }));
    }
    // Walked apart from the named: a pid named by --pid inside a tree
    // still has its descendants walked.
    let mut walked: HashSet<Pid> = HashSet::new();
    let mut stack: Vec<Pid> = options.trees.clone();
    while let Some(p) = stack.pop() {
        if walked.insert(p) {
            members.extend(all.remove(&p).map(|known| Member { pid: p, known }));
            if let Some(kids) = children.get(&p.get()) {
                stack.extend(kids.iter().copied());
            }
        }
    }
    read_members(members, all.into_values().collect(), workers)
}

/// A process selected by a tree walk or by name, not read yet.
struct Member {
    pid: Pid,
    known: Known,
}

/// The stats of the trees' processes, read (in parallel) after the walk.
/// A process known by its pidfd is pinned by it
/// ([`PendingPin::read_then_pin`]): its stat names it when the pidfd shows
/// it alive after the read (whatever its parent now: one reparented when
/// its parent exited was in the tree when it was walked), or not reaped
/// yet after it (a zombie). One reaped may have left its pid to a newcomer
/// before the read: left out (a named pid is read again by name, as
/// whatever it names now). The pidfds of the `others` (outside the trees)
/// are closed on the workers too: a close costs about 2 µs, 12 ms for a
/// host of 5,600 processes on one thread.
fn read_members(members: Vec<Member>, others: Vec<Known>, workers: usize) -> HashMap<Pid, Read> {
    let members: Vec<Mutex<Option<Member>>> =
        members.into_iter().map(|m| Mutex::new(Some(m))).collect();
    let mut others = others;
    let mut chunks: Vec<Mutex<Vec<Known>>> = Vec::new();
    while !others.is_empty() {
        let rest = others.split_off(others.len().saturating_sub(CLOSE_CHUNK));
        chunks.push(Mutex::new(rest));
    }
    let read = parallel_map_lazy(members.len() + chunks.len(), workers, |i| {
        let Some(m) = members.get(i) else {
            let chunk = &chunks[i - members.len()];
            drop(std::mem::take(
                &mut *chunk.lock().unwrap_or_else(|e| e.into_inner()),
            ));
            return None;
        };
        let m = m.lock().unwrap_or_else(|e| e.into_inner()).take()?;
        let p = m.pid;
        let (stat, handle) = match m.known {
            Known::Stat(read) => read,
            Known::Pidfd { pending, .. } => {
                let stat = || procfs::read_process_stat(p).map(|s| (s.start_time, s));
                let (h, s) = pending.read_then_pin(stat).ok()?;
                (s, Some(h))
            }
        };
        Some((p, (stat, handle)))
    });
    read.into_iter().flatten().collect()
}

/// Pidfds of processes outside the trees closed by one worker at a time.
const CLOSE_CHUNK: usize = 128;

/// The processes (thread-group leaders) selected by `options`, excluding
/// `exclude` and this process (unless it was named explicitly). Unknown
/// explicit pids are reported. Processes are pinned as they are read
/// (those the pidfd budget allows), and returned pinned with the
/// selection: when every process is selected, by reading each stat after
/// its pidfd is open; named pids alone, by reading theirs only; trees, by
/// their parents first ([`tree_reads`]). `listed` is /proc's listing when
/// the caller made one (see [`needs_listing`]); otherwise it is made here.
pub(crate) fn select_processes(
    options: &ScanOptions,
    listed: Option<Vec<Pid>>,
    exclude: &HashSet<Pid>,
    skipped: &mut Vec<Skipped>,
) -> Result<(Vec<TaskStat>, EarlyPins)> {
    let me = Pid::this();
    let workers = workers(options.workers);
    let start_budget = super::pin::pidfd_budget();
    let budget = AtomicUsize::new(start_budget);
    let listed = match listed {
        Some(pids) => pids,
        None if needs_listing(options) => procfs::list_pids()?,
        None => Vec::new(),
    };
    let read: HashMap<Pid, Read> = if options.pids.is_empty() && options.trees.is_empty() {
        over_all(&listed, workers, |p| read_pinned(p, &budget))
            .into_iter()
            .collect()
    } else if options.trees.is_empty() {
        let named: BTreeSet<Pid> = options.pids.iter().copied().collect();
        named
            .into_iter()
            .filter_map(|p| read_pinned(p, &budget).ok().map(|r| (p, r)))
            .collect()
    } else {
        tree_reads(options, &listed, workers, &budget)
    };
    let mut threads: Vec<(Pid, TaskStat)> = Vec::new();
    let mut named: HashSet<Pid> = HashSet::new();
    for &p in options.pids.iter().chain(&options.trees) {
        if !read.contains_key(&p) && named.insert(p) {
            // A thread id, or a process we could not stat.
            match procfs::read_stat(p) {
                Ok(_) => threads.extend(named_thread(p)),
                Err(e) => skipped.push(skipped_from(p, &e, "read /proc")),
            }
        }
    }
    let mut handles = HashMap::new();
    let mut procs: Vec<TaskStat> = Vec::with_capacity(read.len());
    // This process is left out (its own /proc reading and pidfds are
    // noise), unless it was named explicitly as a pid or a tree's root; its
    // pin and those of processes left out close here.
    let named_me = options.pids.contains(&me) || options.trees.contains(&me);
    for (pid, (stat, handle)) in read.into_iter().collect::<BTreeMap<_, _>>() {
        if exclude.contains(&pid) || (pid == me && !named_me) {
            continue;
        }
        procs.push(stat);
        handles.extend(handle.map(|h| (pid, h)));
    }
    // A named thread is inspected once: with its process when that is
    // selected (which finds it when it has an fd table of its own), else
    // once however often it (or another thread seen as the same process)
    // was named.
    let selected: HashSet<Pid> = procs.iter().map(|s| s.pid).collect();
    let mut tasks = selected.clone();
    let mut own_table_threads = HashSet::new();
    for (tgid, st) in threads {
        if !selected.contains(&tgid) && tasks.insert(st.pid) {
            if st.pid != tgid {
                own_table_threads.insert(st.pid);
            }
            procs.push(st);
        }
    }
    let pins = EarlyPins {
        budget_left: Some(start_budget.saturating_sub(handles.len())),
        handles,
        own_table_threads,
    };
    Ok((procs, pins))
}

/// Whether selecting for `options` walks /proc's listing: the whole host
/// and trees do, named pids alone do not.
pub(crate) fn needs_listing(options: &ScanOptions) -> bool {
    options.pids.is_empty() || !options.trees.is_empty()
}

/// A thread named explicitly: it is inspected as a task of its own, with
/// its own fd table when it has one (`unshare(CLONE_FILES)`), otherwise as
/// its process. Marked single-threaded so that pinning does not expand it.
/// Returned with its process's pid.
fn named_thread(tid: Pid) -> Option<(Pid, TaskStat)> {
    let tgid: i32 = procfs::read_status_field(tid, "Tgid")
        .ok()??
        .trim()
        .parse()
        .ok()?;
    let tgid = Pid::new(tgid).ok()?;
    let mut st = match crate::pipeline::pin::own_table_thread(tid) {
        Some(st) => st,
        None => procfs::read_stat(tgid).ok()?,
    };
    st.num_threads = 1;
    Some((tgid, st))
}

#[cfg(test)]
mod tests {
    use super::{read_members, Known, Member};
    use kcmp::{PendingPin, Pid};
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};

    /// A process known by its pidfd whose pid, after it exited and was
    /// reaped, names a newcomer with another parent: a member read after
    /// the walk must not be the newcomer (selected for the parent the
    /// first one had); a pin opened afresh reads the newcomer.
    #[test]
    fn a_member_whose_pid_was_reused_by_a_stranger_is_left_out() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: not root (ns_last_pid)");
            return;
        }
        let me = std::process::id() as i32;
        // The stranger's parent: a shell that starts a sleeper on request.
        let mut shell = Command::new("/bin/sh")
            .args(["-c", "while read x; do /bin/sleep 30 & echo $!; done"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut to_shell = shell.stdin.take().unwrap();
        let mut from_shell = BufReader::new(shell.stdout.take().unwrap());
        let (mut reused, mut strangers) = (None, Vec::new());
        for _ in 0..20 {
            let mut first = Command::new("/bin/sleep").arg("30").spawn().unwrap();
            let pid = Pid::new(first.id() as i32).unwrap();
            let pending = PendingPin::open(pid).unwrap();
            first.kill().unwrap();
            first.wait().unwrap();
            let _ = std::fs::write("/proc/sys/kernel/ns_last_pid", (pid.get() - 1).to_string());
            writeln!(to_shell, "go").unwrap();
            let mut line = String::new();
            from_shell.read_line(&mut line).unwrap();
            strangers.extend(line.trim().parse::<i32>().ok());
            if strangers.last() == Some(&pid.get()) {
                reused = Some((pid, pending));
                break;
            }
        }
        let end = |shell: &mut std::process::Child, to_shell| {
            drop(to_shell);
            for p in &strangers {
                let p = rustix::process::Pid::from_raw(*p).unwrap();
                let _ = rustix::process::kill_process(p, rustix::process::Signal::TERM);
            }
            let _ = shell.wait();
        };
        let Some((pid, pending)) = reused else {
            end(&mut shell, to_shell);
            eprintln!("skipped: no pid could be reused (a busy host)");
            return;
        };
        let member = |pending| Member {
            pid,
            known: Known::Pidfd { ppid: me, pending },
        };
        let read = read_members(vec![member(pending)], Vec::new(), 1);
        assert!(
            read.is_empty(),
            "the stranger was selected: {:?}",
            read.keys()
        );
        let named = read_members(vec![member(PendingPin::open(pid).unwrap())], Vec::new(), 1);
        assert_eq!(named[&pid].0.ppid, shell.id() as i32);
        end(&mut shell, to_shell);
    }

    /// A live descendant known by its pidfd is read and pinned.
    #[test]
    fn a_live_descendant_is_read_and_pinned() {
        let mut child = Command::new("/bin/sleep").arg("30").spawn().unwrap();
        let pid = Pid::new(child.id() as i32).unwrap();
        let member = Member {
            pid,
            known: Known::Pidfd {
                ppid: std::process::id() as i32,
                pending: PendingPin::open(pid).unwrap(),
            },
        };
        // Beside it, processes outside the trees: only their pidfds close.
        let others: Vec<Known> = (0..(super::CLOSE_CHUNK * 2 + 1))
            .map(|_| Known::Pidfd {
                ppid: 1,
                pending: PendingPin::open(Pid::this()).unwrap(),
            })
            .collect();
        let read = read_members(vec![member], others, 2);
        assert_eq!(read.len(), 1);
        let (stat, handle) = &read[&pid];
        assert_eq!(stat.ppid, std::process::id() as i32);
        assert!(handle.as_ref().is_some_and(|h| h.verify().is_ok()));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// A member that exited but was not reaped (a zombie) is read: its pid
    /// still names it.
    #[test]
    fn a_zombie_member_is_read_as_itself() {
        let mut child = Command::new("/bin/sleep").arg("30").spawn().unwrap();
        let pid = Pid::new(child.id() as i32).unwrap();
        let pending = PendingPin::open(pid).unwrap();
        child.kill().unwrap();
        while !pending.pidfd().is_some_and(|fd| {
            let mut fds = [rustix::event::PollFd::new(
                &fd,
                rustix::event::PollFlags::IN,
            )];
            rustix::event::poll(&mut fds, None).is_ok_and(|n| n > 0)
        }) {}
        let member = Member {
            pid,
            known: Known::Pidfd {
                ppid: std::process::id() as i32,
                pending,
            },
        };
        let read = read_members(vec![member], Vec::new(), 1);
        let kept = read.get(&pid).map(|(st, _)| st.is_zombie());
        child.wait().unwrap();
        assert_eq!(kept, Some(true), "the zombie was not read as itself");
    }
}
