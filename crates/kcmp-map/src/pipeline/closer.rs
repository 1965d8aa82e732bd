//! Closing the engine's copies (anchors) off the scan's threads.
//!
//! A copy can become the last reference to its description: every holder
//! closed its fd or exited while the scan held the copy. Its close then
//! runs the file's `release`, which can wait: a TCP socket with `SO_LINGER`
//! waits for its send queue to drain, a serial tty for its output. So the
//! copies are closed by a closer thread, never joined: a close that waits
//! stalls that thread alone, never a scan. Copies reach it in batches of
//! [`BATCH`] (or [`BATCH_AGE`] old; the rest at the end of the grouping and
//! when the scan returns): one wake-up per batch. The thread ends after 100 ms
//! without work (a library caller's process does not stay multi-threaded
//! for it: `setns(CLONE_NEWNS)` wants a single thread) and starts again
//! when needed.
//!
//! A last close can also wait uninterruptibly: a block device's writeback,
//! an ext4 file's delayed allocation, while their I/O is stuck (a loop
//! device over a frozen filesystem: until the thaw). A thread in that wait
//! would keep this process from exiting, so the closer thread sends the
//! copies of block devices to a process of its own, which closes them
//! ([`crate::sys::outside`]); the closes here are never their last. Other
//! files' copies are closed here: sending every copy out cost a fifth of a
//! scan, and an ext4 file's wait (a file truncated and rewritten) is left
//! as a known limit.
//!
//! Closing any fd of a file also releases the POSIX locks this process
//! holds on it. The scan never copies a file this process had locked when
//! it began ([`super::anchor`]), and just before closing a copy the closer
//! asks the kernel whether this process holds such a lock now
//! (`F_OFD_GETLK`): a lock its caller took during the scan keeps the copy
//! open ([`leave_open`]). Between that question and the
//! close remains a window of a few microseconds.

use super::own_locks::OwnLocks;
use rustix::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Copies handed to the closer and not closed yet.
static PENDING: AtomicUsize = AtomicUsize::new(0);

/// The running closer's queue, if one runs, and the copies gathered for
/// its next batch. Sends happen under this lock, and the closer ends only
/// under it with its queue empty: no batch is ever sent to a closer that
/// ended.
static QUEUE: Mutex<Queue> = Mutex::new(Queue {
    tx: None,
    batch: Vec::new(),
    since: None,
    owner: 0,
});

struct Queue {
    tx: Option<Sender<Vec<OwnedFd>>>,
    batch: Vec<OwnedFd>,
    /// When the batch's first copy was added.
    since: Option<Instant>,
    /// The process whose thread `tx` reaches: in a fork's child, the
    /// closer thread (and what was sent to it) stayed in the parent.
    owner: u32,
}

/// How long the closer waits for work before it ends.
const IDLE: Duration = Duration::from_millis(100);

/// Copies sent to the closer at once: one wake-up of its thread per batch,
/// not per copy (a scan of 40,000 new descriptions spent a tenth of its
/// time waking it).
const BATCH: usize = 32;

/// The longest a copy waits in a batch while copies keep coming (a copy of
/// a pipe's write end delays its reader's EOF); the scan sends what is
/// left at the end of the grouping and when it returns.
const BATCH_AGE: Duration = Duration::from_millis(5);

/// Closes `copy` on the closer thread, with the next batch (here when no
/// thread can start). [`flush`] sends a batch not yet full.
pub(crate) fn close_later(copy: OwnedFd) {
    let now = Instant::now();
    let mut queue = QUEUE.lock().unwrap_or_else(|e| e.into_inner());
    // Counted under the lock: a process's first batch sets the count to
    // its length, and a copy counted before the lock but queued after
    // would be uncounted, its close then wrapping the count around (every
    // later `settle` waited its whole limit: 1.1 s in 1 of 2 fresh
    // processes queueing copies from two threads).
    PENDING.fetch_add(1, Ordering::SeqCst);
    queue.batch.push(copy);
    let since = *queue.since.get_or_insert(now);
    if queue.batch.len() >= BATCH || now.duration_since(since) >= BATCH_AGE {
        send(queue);
    }
}

/// Sends the copies released so far to the closer thread when dropped: a
/// scan that returns early (an error after grouping) leaves none in a
/// batch, where it would stay open until the next scan.
pub(crate) struct FlushOnReturn;

impl Drop for FlushOnReturn {
    fn drop(&mut self) {
        flush();
    }
}

/// Sends the copies gathered so far to the closer thread.
pub(crate) fn flush() {
    send(QUEUE.lock().unwrap_or_else(|e| e.into_inner()));
}

/// Sends the queue's batch, starting the closer thread if none runs (and
/// closing the batch here if none can start).
fn send(mut queue: std::sync::MutexGuard<'_, Queue>) {
    let me = std::process::id();
    if queue.owner != me {
        // This process's first batch, or a fork's child's: no closer here.
        queue.tx = None;
        queue.owner = me;
        PENDING.store(queue.batch.len(), Ordering::SeqCst);
    }
    let batch = std::mem::take(&mut queue.batch);
    queue.since = None;
    if batch.is_empty() {
        return;
    }
    if queue.tx.is_none() {
        let (tx, rx) = channel::<Vec<OwnedFd>>();
        let started = std::thread::Builder::new()
            .name("kcmp-closer".into())
            .spawn(move || closer(rx));
        if started.is_ok() {
            queue.tx = Some(tx);
        }
    }
    let Some(tx) = queue.tx.as_ref() else {
        drop(queue);
        return close_all(batch);
    };
    if let Err(unsent) = tx.send(batch) {
        queue.tx = None;
        drop(queue);
        close_all(unsent.0);
    }
}

/// The closer thread: closes what it receives; after [`IDLE`] without
/// work, ends (under the queue's lock, after a last look at its queue).
fn closer(rx: Receiver<Vec<OwnedFd>>) {
    loop {
        match rx.recv_timeout(IDLE) {
            Ok(batch) => close_all(batch),
            Err(RecvTimeoutError::Timeout) => {
                let mut queue = QUEUE.lock().unwrap_or_else(|e| e.into_inner());
                if let Ok(batch) = rx.try_recv() {
                    drop(queue);
                    close_all(batch);
                    continue;
                }
                queue.tx = None;
                end_outside();
                return;
            }
            Err(RecvTimeoutError::Disconnected) => return end_outside(),
        }
    }
}

/// Closes each copy of `batch` (unless this process holds a POSIX lock on
/// its file): block devices through the outside closer, the rest here.
fn close_all(batch: Vec<OwnedFd>) {
    let n = batch.len();
    let mut devices = Vec::new();
    for copy in batch {
        if holds_posix_lock_on(&copy) {
            leave_open(copy);
        } else if is_block_device(&copy) {
            devices.push(copy);
        } else {
            drop(copy);
        }
    }
    close_outside(devices);
    PENDING.fetch_sub(n, Ordering::SeqCst);
}

/// Whether `copy` is a block device, whose last close writes its dirty
/// pages back and waits for them uninterruptibly (`sync_blockdev`). Other
/// files are closed here: sending every copy out cost a fifth of a scan
/// whose descriptions are mostly new (26,000 copies), and their last close
/// waits uninterruptibly only in rarer cases (an ext4 file truncated and
/// rewritten, with its I/O stuck: README, known limits).
fn is_block_device(copy: &OwnedFd) -> bool {
    rustix::fs::fstat(copy).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFBLK)
}

/// Copies handed to the closer and not closed yet.
pub(crate) fn pending() -> usize {
    PENDING.load(Ordering::SeqCst)
}

/// Waits until every copy handed over so far is closed, at most `limit` (a
/// close that waits on a socket's linger or a tty's drain is left to finish
/// alone): a scan returns with its copies closed, as its caller expects.
pub(crate) fn settle(limit: Duration) {
    flush();
    let deadline = Instant::now() + limit;
    while pending() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// The outside closer ([`crate::sys::outside`]): started with the first
/// batch to close, ended with the closer thread.
enum Outside {
    NotStarted,
    Running(OwnedFd),
    /// It could not be started (no fork allowed, say): copies are closed
    /// here, as before it existed.
    Failed,
}

static OUTSIDE: Mutex<Outside> = Mutex::new(Outside::NotStarted);

/// Hands `copies` to the outside closer, a process of its own: a last close
/// that waits uninterruptibly (a block device's writeback, an ext4 file's
/// delayed allocation, with their I/O stuck) then waits there, not in a
/// thread of this one, which could then not exit; the close here is never
/// the last ([`crate::sys::outside::hand_over`]). Copies that cannot be
/// sent (the outside closer is stuck with a full socket) are left open
/// ([`leave_open`]: the keeper closes them at exit).
fn close_outside(copies: Vec<OwnedFd>) {
    if copies.is_empty() {
        return;
    }
    let mut outside = OUTSIDE.lock().unwrap_or_else(|e| e.into_inner());
    if matches!(*outside, Outside::NotStarted) {
        *outside = match crate::sys::outside::spawn() {
            Ok(sock) => Outside::Running(sock),
            Err(_) => Outside::Failed,
        };
    }
    let Outside::Running(sock) = &*outside else {
        drop(outside);
        return drop(copies);
    };
    let mut copies = copies;
    while !copies.is_empty() {
        let rest = copies.split_off(copies.len().min(crate::sys::outside::MAX));
        match crate::sys::outside::hand_over(sock.as_fd(), copies) {
            Ok(()) => {}
            Err((kept, e)) if would_wait(&e) => kept.into_iter().for_each(leave_open),
            // One copy that cannot be sent (an io_uring) fails the message:
            // one by one, and those closed here.
            Err((kept, _)) => {
                for copy in kept {
                    match crate::sys::outside::hand_over(sock.as_fd(), vec![copy]) {
                        Ok(()) => {}
                        Err((one, e)) if would_wait(&e) => one.into_iter().for_each(leave_open),
                        Err((one, _)) => drop(one),
                    }
                }
            }
        }
        copies = rest;
    }
}

/// Whether a send failed because the outside closer's socket is full.
fn would_wait(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::ENOBUFS))
}

/// Ends the outside closer, if one was started: it closes what it was sent
/// and exits (no fd of the engine stays in the caller's table).
fn end_outside() {
    let ended = std::mem::replace(
        &mut *OUTSIDE.lock().unwrap_or_else(|e| e.into_inner()),
        Outside::NotStarted,
    );
    drop(ended);
}

/// Whether this process holds a POSIX lock on `copy`'s file: an OFD
/// write-lock test conflicts with every lock of another owner, and reports
/// a POSIX lock's owner pid (an OFD lock reports -1). When another owner's
/// lock is reported, ours may hide behind it, and when the test fails
/// (a seccomp filter, say), nothing is known: this process's locks are
/// read then (rare). A file that takes no lock (`EINVAL`) or an `O_PATH`
/// copy (`EBADF`; its close releases no lock) holds none.
fn holds_posix_lock_on(copy: &OwnedFd) -> bool {
    use rustix::io::Errno;
    match crate::sys::process::ofd_write_lock_owner(copy.as_fd()) {
        Ok(None) | Err(Errno::INVAL | Errno::BADF) => false,
        Ok(Some(pid)) if pid == std::process::id() as i32 => true,
        Ok(Some(_)) | Err(_) => OwnLocks::read().covers(copy.as_fd()),
    }
}

/// Copies this process must not close (their close could wait on a server
/// or release a lock), left open until [`crate::exit`] hands them to the
/// keeper ([`crate::sys::keeper`]).
static LEFT_OPEN: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// Leaves `copy` open for the rest of this process's life.
pub(crate) fn leave_open(copy: OwnedFd) {
    let fd = rustix::fd::IntoRawFd::into_raw_fd(copy);
    LEFT_OPEN.lock().unwrap_or_else(|e| e.into_inner()).push(fd);
}

/// The copies left open so far, sorted.
pub(crate) fn left_open() -> Vec<i32> {
    let mut fds = LEFT_OPEN.lock().unwrap_or_else(|e| e.into_inner()).clone();
    fds.sort_unstable();
    fds
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Set in the copies of the test binary that
    /// [`copies_queued_during_a_first_batch_are_all_counted`] starts: a
    /// process's first batch happens once, so each run needs a fresh one.
    const ALONE: &str = "KCMP_TEST_CLOSER_ALONE";

    #[test]
    fn copies_queued_during_a_first_batch_are_all_counted() {
        if std::env::var_os(ALONE).is_some() {
            return first_batches_in_this_process();
        }
        let name = "copies_queued_during_a_first_batch_are_all_counted";
        for run in 0..20 {
            if let Err(out) = crate::test_alone::run_alone(module_path!(), name, ALONE) {
                panic!("run {run}: {out}");
            }
        }
    }

    /// Two threads queue copies at once from this process's start: the
    /// first batch is sent while the other thread waits to queue its copy.
    fn first_batches_in_this_process() {
        let start = std::sync::Arc::new(std::sync::Barrier::new(2));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let start = start.clone();
                std::thread::spawn(move || {
                    start.wait();
                    for _ in 0..2_000 {
                        let null = std::fs::File::open("/dev/null").expect("/dev/null");
                        close_later(OwnedFd::from(null));
                    }
                })
            })
            .collect();
        threads
            .into_iter()
            .for_each(|t| t.join().expect("no panic"));
        settle(Duration::from_secs(10));
        assert_eq!(
            pending(),
            0,
            "copies counted as pending after all were closed"
        );
    }
}
