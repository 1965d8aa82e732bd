//! Step 2, pin: each selected task gets a handle (pidfd or start time) so
//! that an answer about a task that exited, or whose pid was reused, is
//! discarded rather than attributed to a newcomer.

use super::select::skipped_from;
use crate::model::{Skipped, TaskRecord};
use crate::parallel::parallel_map;
use crate::procfs::{self, TaskStat};
use kcmp::ProcessHandle;

/// A task selected for inspection, with its handle.
pub(crate) struct SelectedTask {
    pub record: TaskRecord,
    pub handle: ProcessHandle,
}

/// Expands processes into tasks (threads when `threads`) and pins each.
pub(crate) fn pin_tasks(
    procs: &[TaskStat],
    threads: bool,
    workers: usize,
) -> (Vec<SelectedTask>, Vec<Skipped>) {
    let results = parallel_map(procs.len(), workers, |i| {
        let st = &procs[i];
        let mut out: Vec<std::result::Result<SelectedTask, Skipped>> = Vec::new();
        let tids = if threads && !st.is_zombie() {
            procfs::list_tids(st.pid).unwrap_or_else(|_| vec![st.pid])
        } else {
            vec![st.pid]
        };
        for tid in tids {
            let stat = if tid == st.pid {
                Ok(st.clone())
            } else {
                procfs::read_task_stat(st.pid, tid)
            };
            let pinned =
                stat.and_then(|stat| ProcessHandle::pin(tid, stat.start_time).map(|h| (stat, h)));
            out.push(match pinned {
                Ok((stat, handle)) => Ok(SelectedTask {
                    record: TaskRecord {
                        pid: tid,
                        tgid: st.pid,
                        ppid: stat.ppid,
                        comm: stat.comm.clone(),
                        state: stat.state,
                        kernel_thread: stat.is_kernel_thread(),
                    },
                    handle,
                }),
                Err(e) => Err(skipped_from(tid, &e, "pin")),
            });
        }
        out
    });
    let mut tasks = Vec::new();
    let mut skipped = Vec::new();
    for r in results.into_iter().flatten() {
        match r {
            Ok(t) => tasks.push(t),
            Err(s) => skipped.push(s),
        }
    }
    (tasks, skipped)
}

/// Makes room for `extra` more open fds: raises the soft `RLIMIT_NOFILE`
/// toward the hard limit when it is too low (a host with thousands of
/// processes needs a pidfd for each), and grows the fd table once.
pub(crate) fn reserve_fds(extra: usize) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let want = (extra + 256) as u64;
    let limit = getrlimit(Resource::Nofile);
    let mut usable = limit.current.unwrap_or(u64::MAX);
    if usable < want {
        let raised = limit.maximum.map_or(want, |max| max.min(want));
        if raised > usable
            && setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: Some(raised),
                    maximum: limit.maximum,
                },
            )
            .is_ok()
        {
            usable = raised;
        }
    }
    // Growing the table: duplicate any fd to the highest number needed.
    let target = want.min(usable).saturating_sub(1).min(i32::MAX as u64) as i32;
    if let Ok(dir) = rustix::fs::openat(
        rustix::fs::CWD,
        "/proc/self",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) {
        let _ = rustix::io::fcntl_dupfd_cloexec(&dir, target);
    }
}

/// Marks every task that did not live through the scan as failed: its
/// answers are discarded.
pub(crate) fn verify_tasks(
    tasks: &[SelectedTask],
    failed: &mut std::collections::HashMap<u32, Skipped>,
) {
    for (i, t) in tasks.iter().enumerate() {
        if failed.contains_key(&(i as u32)) {
            continue;
        }
        if let Err(e) = t.handle.verify() {
            failed.insert(
                i as u32,
                Skipped {
                    pid: t.record.pid,
                    reason: "ESRCH".into(),
                    detail: format!("{e}; its answers were discarded"),
                },
            );
        }
    }
}
