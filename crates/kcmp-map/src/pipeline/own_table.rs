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
/// table (a main thread that exited, a thread exiting) is passed over: a
/// thread lets go of its table only in `do_exit`, after the kernel marked
/// it `PF_EXITING`, and may stay there long after (the last close of a
/// private table's files runs there too: a FUSE file's FLUSH waits for
/// its server).
pub(crate) fn check_shared() -> Result<()> {
    /// `PF_EXITING` in the `flags` field of /proc/PID/task/TID/stat.
    const PF_EXITING: u32 = 0x4;
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
        // Gone, a zombie main thread, or exiting.
        let with_table = || {
            procfs::read_task_stat(pid, tid)
                .is_ok_and(|s| !s.is_zombie() && s.flags & PF_EXITING == 0)
        };
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

#[cfg(test)]
mod tests {
    use super::*;
    use kcmp_testkit::process::{no_fuse, JsonFixture};
    use std::os::fd::IntoRawFd;

    /// Set in the copy of the test binary that
    /// [`a_thread_exiting_with_a_table_of_its_own_is_passed_over`] starts: a
    /// thread with a table of its own would fail every other test's scan.
    const ALONE: &str = "KCMP_TEST_OWN_TABLE_ALONE";

    #[test]
    fn a_thread_exiting_with_a_table_of_its_own_is_passed_over() {
        if let Some(why) = no_fuse() {
            eprintln!("skipped: {why}");
            return;
        }
        if std::env::var_os(ALONE).is_some() {
            return exiting_thread_in_this_process();
        }
        let name = "a_thread_exiting_with_a_table_of_its_own_is_passed_over";
        if let Err(out) = crate::test_alone::run_alone(module_path!(), name, ALONE) {
            panic!("{out}");
        }
    }

    /// A thread unshares its table and takes into it a copy of a file on a
    /// FUSE filesystem whose server answers no more (`kcmp-hang-fixture
    /// fuse`); then it exits: its exit lets go of its table, then closes
    /// the file, which waits for the server's answer to FLUSH until the
    /// fixture ends. The check passes it over (before, it took the thread
    /// for one with another table as long as it waited: `EINVAL`); alive
    /// with its own table, the thread fails the check.
    fn exiting_thread_in_this_process() {
        let bin = kcmp_testkit::workspace_bin("kcmp-hang-fixture");
        let mut fixture = JsonFixture::start(
            std::process::Command::new(bin).arg("fuse"),
            Duration::from_secs(10),
        );
        let holder = Pid::new(fixture.json["holder"].as_i64().unwrap() as i32).unwrap();
        let fuse_fd = fixture.json["fuse_fd"].as_i64().unwrap() as i32;
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            crate::sys::process::unshare_fd_table().expect("unshare(CLONE_FILES)");
            let pid = rustix::process::Pid::from_raw(holder.get()).expect("a pid");
            let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())
                .expect("pidfd_open");
            let flags = rustix::process::PidfdGetfdFlags::empty();
            let copy = rustix::process::pidfd_getfd(&pidfd, fuse_fd, flags).expect("getfd");
            // Closed only by this thread's exit, with its table.
            let _ = copy.into_raw_fd();
            tid_tx.send(this_thread().expect("tid")).expect("send");
            let _ = go_rx.recv();
        });
        let tid = tid_rx.recv().expect("the thread's tid");
        assert!(check_shared().is_err(), "a live thread with its own table");
        drop(go_tx);
        // Wait until it let go of its table (its /proc/TID/fd lists
        // nothing) while it still exists, waiting in the close of its copy.
        let mut exiting = false;
        for _ in 0..500 {
            let stat = procfs::read_task_stat(Pid::this(), tid);
            let fds = procfs::FdDir::open(tid).and_then(|d| d.fds());
            let no_table = fds.map_or(true, |f| f.is_empty());
            if stat.is_ok_and(|s| !s.is_zombie()) && no_table {
                exiting = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let checked = check_shared();
        // The server ends: the FLUSH fails, the thread's exit completes.
        fixture.end();
        thread.join().expect("no panic");
        assert!(
            exiting,
            "the thread never waited in its exit: nothing shown"
        );
        checked.expect("an exiting thread taken for one with another table");
    }
}
