//! One pair of tasks, one process-level kind: "shared", "different", or
//! "neither has one" — decided exactly.
//!
//! kcmp(2) compares pointers, and a task without the object has `NULL`: two
//! zombies compare *equal* on `KCMP_VM`, `KCMP_FILES` and `KCMP_FS`, two
//! kernel threads on `KCMP_VM`, and two tasks without an I/O context or SysV
//! undo list on `KCMP_IO` / `KCMP_SYSVSEM`. [`kcmp::compare_process`]
//! reports what the kernel says; [`compare_present`] tells absence apart.
//!
//! **How absence is decided.** A task that has exited has none of the five
//! objects: `do_exit()` drops its mm (`exit_mm`), undo list (`exit_sem`),
//! fd table (`exit_files`), fs struct (`exit_fs`) and I/O context
//! (`exit_io_context`) and leaves `NULL` behind. The zombie sentinel of
//! [`Sentinels`] is such a task, so a task compares *equal* to it exactly
//! when it has no such object either (two real objects are two
//! allocations, never equal to `NULL`). No guess from /proc is involved.
//! The signal-handler table (`KCMP_SIGHAND`) lives until a task is reaped,
//! so it is never absent for a task kcmp can find.
//!
//! **Threads.** A process has the object when any live thread of it has
//! one: a leader that called `pthread_exit()` is a zombie without mm, fd
//! table or fs, while its live threads keep them. When a given task has
//! none, its thread group (`/proc/PID/task`) is searched for a thread that
//! has one, and that thread stands in for it ([`PairAnswer::compared`]).
//!
//! The same task given twice is the same task: `same`, without any
//! sentinel.
//!
//! ```
//! use kcmp::{Pid, ProcessResource};
//! use kcmp_map::absent::compare_present;
//! let me = Pid::this();
//! let answer = compare_present(ProcessResource::Vm, me, me, None).unwrap();
//! assert!(answer.is_same() && answer.absent.is_empty());
//! ```

use crate::sentinel::Sentinels;
use kcmp::{compare_process, Error, KcmpOrdering, Pid, ProcessResource, Result};

/// The answer of [`compare_present`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairAnswer {
    /// kcmp's ordering of the tasks in [`compared`](Self::compared). When a
    /// task has no object this is not "equal" (see [`is_same`](Self::is_same)).
    pub ordering: KcmpOrdering,
    /// The given pids that have no such object (no live thread of theirs
    /// has one), in the order given; empty when both have one.
    pub absent: Vec<Pid>,
    /// The tasks actually compared: the given ones, or for a task without
    /// the object a live thread of its group that has one.
    pub compared: (Pid, Pid),
}

impl PairAnswer {
    /// True when both tasks have the object and it is one object.
    pub fn is_same(&self) -> bool {
        self.absent.is_empty() && self.ordering.is_equal()
    }
}

/// Whether a kind can be absent from a task that kcmp finds (all but
/// `Sighand`).
fn may_be_absent(resource: ProcessResource) -> bool {
    resource != ProcessResource::Sighand
}

/// Compares `resource` of two tasks, telling "neither has one" from
/// "shared" (see the [module docs](self)).
///
/// `sentinels` may be given to reuse running sentinels; otherwise they are
/// started only when needed (a pid against itself, or `Sighand`, needs
/// none) and ended before returning. Failing to start them is an error,
/// never a guess.
///
/// ```
/// use kcmp::{Pid, ProcessResource};
/// use kcmp_map::absent::compare_present;
/// use kcmp_map::sentinel::Sentinels;
/// let s = Sentinels::start().unwrap();
/// let zombie = s.zombie_pid().unwrap();
/// let me = Pid::this();
/// // The zombie has no fd table; this process has one.
/// let a = compare_present(ProcessResource::Files, zombie, me, Some(&s)).unwrap();
/// assert_eq!(a.absent, vec![zombie]);
/// assert!(!a.is_same());
/// ```
pub fn compare_present(
    resource: ProcessResource,
    pid1: Pid,
    pid2: Pid,
    sentinels: Option<&Sentinels>,
) -> Result<PairAnswer> {
    if pid1 == pid2 || !may_be_absent(resource) {
        return Ok(PairAnswer {
            ordering: compare_process(resource, pid1, pid2)?,
            absent: Vec::new(),
            compared: (pid1, pid2),
        });
    }
    // The sentinel's pipes are in this process's table: a self-scan beside
    // this call says it cannot tell them from the caller's fds.
    let _operation = crate::pipeline::own_table::Operation::start();
    let started;
    let sentinels = match sentinels {
        Some(s) => s,
        None => {
            started = Sentinels::start().map_err(|e| {
                Error::io(
                    "starting a sentinel task to tell \"neither has one\" from \"shared\"",
                    &e,
                )
            })?;
            &started
        }
    };
    let zombie = sentinels.zombie_pid().ok_or_else(|| {
        Error::os(
            "the zombie sentinel task is not there (it did not exit in time, or another thread \
             of this process reaped it): cannot tell \"neither has one\" from \"shared\"",
            kcmp::Errno::AGAIN,
        )
    })?;
    let (c1, has1) = stand_in(resource, pid1, zombie)?;
    let (c2, has2) = stand_in(resource, pid2, zombie)?;
    let absent: Vec<Pid> = [(pid1, has1), (pid2, has2)]
        .into_iter()
        .filter(|&(_, has)| !has)
        .map(|(p, _)| p)
        .collect();
    let ordering = compare_process(resource, c1, c2)?;
    // Still the zombie after the comparisons: its pid named no other
    // process meanwhile (a caller's thread reaping with `__WALL` could
    // have freed it).
    if sentinels.zombie_pid() != Some(zombie) {
        return Err(Error::os(
            "the zombie sentinel task was reaped by another thread of this process: cannot \
             tell \"neither has one\" from \"shared\"",
            kcmp::Errno::AGAIN,
        ));
    }
    Ok(PairAnswer {
        ordering,
        absent,
        compared: (c1, c2),
    })
}

/// Whether `pid` has the object (it does not compare equal to the zombie
/// sentinel's `NULL`).
fn has_object(resource: ProcessResource, pid: Pid, zombie: Pid) -> Result<bool> {
    Ok(!compare_process(resource, pid, zombie)?.is_equal())
}

/// The task to compare for `pid`, and whether it has the object: `pid`
/// itself when it has one, else a live thread of its group that has one.
fn stand_in(resource: ProcessResource, pid: Pid, zombie: Pid) -> Result<(Pid, bool)> {
    if has_object(resource, pid, zombie)? {
        return Ok((pid, true));
    }
    // /proc/PID/task lists the thread group of any tid; a group that is
    // gone, or a kernel thread, simply offers no stand-in.
    let tids = crate::procfs::list_tids(pid).unwrap_or_default();
    for tid in tids.into_iter().filter(|&t| t != pid) {
        match has_object(resource, tid, zombie) {
            Ok(true) => return Ok((tid, true)),
            Ok(false) => {}
            Err(e) if e.is_gone() => {} // the thread exited meanwhile
            Err(e) => return Err(e),
        }
    }
    Ok((pid, false))
}
