//! This process's fd table, as the engine uses it. The engine takes its
//! copies (anchors) into the calling thread's table and hands them to
//! kcmp(2) under the tid of the thread that compares ([`ThreadIds`]); its
//! closer thread (one for the process, outliving a scan by 100 ms) closes
//! them; it reads its own fds and their fdinfo through the calling
//! thread's /proc/TID ([`own_fds_task`]): all of them must be one table
//! ([`check_shared`]).

use crate::procfs;
use kcmp::{Error, FdNum, Pid, Result};
use rustix::io::Errno;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The calling thread's tid, read now.
pub(crate) fn this_thread() -> Option<Pid> {
    Pid::new(rustix::thread::gettid().as_raw_nonzero().get()).ok()
}

/// The task whose /proc/TID/fd and fdinfo show the engine's own fd table:
/// the calling thread (every thread shares its table: [`check_shared`]),
/// not the main thread, which may have exited (a zombie shows no fd).
pub(crate) fn own_fds_task() -> Pid {
    this_thread().unwrap_or_else(Pid::this)
}

/// The tid under which a scan's worker hands its anchors to kcmp: the
/// thread that compares. kcmp finds a task by tid and locks it twice a
/// call (`task_lock`, to check access and to look the fd up); under the
/// process's pid every worker would lock the main thread, each call. Read
/// once per thread and scan: a thread's tid does not change during a scan,
/// while a fork's child (whose thread inherits the parent thread's memory)
/// has another.
#[derive(Debug)]
pub(crate) struct ThreadIds {
    scan: u64,
}

impl ThreadIds {
    pub(crate) fn new() -> ThreadIds {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        ThreadIds {
            scan: NEXT.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The calling thread's tid.
    pub(crate) fn current(&self) -> Option<Pid> {
        thread_local! {
            static SEEN: Cell<(u64, i32)> = const { Cell::new((0, 0)) };
        }
        SEEN.with(|seen| match seen.get() {
            (scan, tid) if scan == self.scan => Pid::new(tid).ok(),
            _ => {
                let tid = this_thread()?;
                seen.set((self.scan, tid.get()));
                Some(tid)
            }
        })
    }
}

/// Ok when every thread of this process shares the calling thread's fd
/// table; `EINVAL` naming a thread with another (`unshare(CLONE_FILES)`,
/// the caller or another thread): the engine's copies could be closed in
/// the wrong table. Told without kcmp(2): a pipe opened here must show
/// under its number in every thread's /proc/TID/fd. A thread without a
/// table (a main thread that exited, a thread exiting) is passed over.
pub(crate) fn check_shared() -> Result<()> {
    let pid = Pid::this();
    let (Some(me), Ok(tids)) = (this_thread(), procfs::list_tids(pid)) else {
        return Ok(());
    };
    if tids.iter().all(|&t| t == me) {
        return Ok(());
    }
    // Without a free fd, nothing can be told (the scan finds out soon).
    let Ok((probe, _w)) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC) else {
        return Ok(());
    };
    let n = FdNum::new(rustix::fd::AsRawFd::as_raw_fd(&probe)).expect("an open fd");
    let Ok(ours) = procfs::fd_target(me, n) else {
        return Ok(());
    };
    let apart = |tid: Pid| {
        let shared = procfs::fd_target(tid, n).is_ok_and(|l| l == ours);
        // Gone, a zombie main thread, or exiting (its table let go a
        // moment before it turns into a zombie: looked at again).
        let with_table = || procfs::read_task_stat(pid, tid).is_ok_and(|s| !s.is_zombie());
        !shared && with_table()
    };
    let still_apart = |tid: Pid| {
        std::thread::sleep(Duration::from_millis(1));
        apart(tid)
    };
    match tids
        .into_iter()
        .find(|&t| t != me && apart(t) && still_apart(t))
    {
        None => Ok(()),
        Some(tid) => Err(Error::os(
            format!(
                "thread {tid} of this process has another fd table than thread {me} \
                 (unshare(CLONE_FILES)): the engine's copies could be closed in the wrong \
                 table; scan from a process whose threads share one fd table"
            ),
            Errno::INVAL,
        )),
    }
}

/// Engine operations (scans, holder searches, `absent::compare_present`,
/// `doctor::run`) running in this process, and
/// how many ever started: another operation's copies and pidfds are in the
/// same fd table, where nothing tells them from the caller's.
static RUNNING: AtomicU64 = AtomicU64::new(0);
static STARTED: AtomicU64 = AtomicU64::new(0);

/// One engine operation of this process, running until dropped. It tells
/// whether its view of the caller's own fds is clean: no other operation
/// ran when it began, and none began since.
#[derive(Debug)]
pub(crate) struct Operation {
    alone: bool,
    started: u64,
}

impl Operation {
    pub(crate) fn start() -> Operation {
        let others = RUNNING.fetch_add(1, Ordering::SeqCst);
        let started = STARTED.fetch_add(1, Ordering::SeqCst) + 1;
        Operation {
            alone: others == 0,
            started,
        }
    }

    /// `Ok` while this operation has run alone in this process; else the
    /// error to report the caller's own fds with (they cannot be told from
    /// the other operation's).
    pub(crate) fn alone(&self) -> Result<()> {
        if self.alone && STARTED.load(Ordering::SeqCst) == self.started {
            return Ok(());
        }
        Err(Error::os(
            "another kcmp operation of this process ran at the same time: \
             its fds cannot be told from this process's own",
            Errno::BUSY,
        ))
    }
}

impl Drop for Operation {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::SeqCst);
    }
}
