//! Process handles that cannot be fooled by pid reuse.
//!
//! A [`ProcessHandle`] pins a task with a pidfd (and its start time) before
//! it is inspected. Afterwards [`ProcessHandle::verify`] tells whether the
//! task lived through the whole inspection: while a task is alive its pid
//! cannot be given to another, so a task that is still alive at the end is
//! the task every answer was about. One that exited — or whose pid now names
//! a newcomer — is reported as vanished and its answers are discarded.
#![forbid(unsafe_code)]

use crate::proc_stat;
use crate::{
    compare_files, compare_process, Error, FdNum, KcmpOrdering, Pid, ProcessResource, Result,
};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::process::{pidfd_open, PidfdFlags};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// `PIDFD_THREAD` (Linux 6.9): a pidfd for one thread rather than a process.
const PIDFD_THREAD: u32 = libc::O_EXCL as u32;

/// A pinned process or thread: its pid, a pidfd when the kernel offers one,
/// and its start time.
///
/// ```
/// use kcmp::{Pid, ProcessHandle};
/// let me = ProcessHandle::open(Pid::this()).unwrap();
/// assert!(me.verify().is_ok());
/// assert!(me.pidfd().is_some());
/// ```
#[derive(Debug)]
pub struct ProcessHandle {
    pid: Pid,
    pidfd: Option<OwnedFd>,
    start_time: u64,
    exited_at_open: bool,
}

impl ProcessHandle {
    /// Pins a process (or, on Linux 6.9+, a thread; older kernels pin
    /// threads by start time only).
    pub fn open(pid: Pid) -> Result<Self> {
        Self::pin(pid, proc_stat::start_time(pid)?)
    }

    /// Pins `pid` as the task that started at `start_time` (clock ticks
    /// after boot, from /proc/PID/stat), without reading /proc again. If the
    /// pid was reused between that read and this call, the handle names the
    /// newcomer with the old start time: that is detected here (or, without
    /// a pidfd, by [`verify`](Self::verify)) and reported as
    /// [`Error::Vanished`], never attributed to the newcomer.
    ///
    /// ```
    /// use kcmp::{Pid, ProcessHandle};
    /// let me = Pid::this();
    /// let start = ProcessHandle::open(me).unwrap().start_time();
    /// let h = ProcessHandle::pin(me, start).unwrap();
    /// assert!(h.verify().is_ok());
    /// // A start time that is not this task's: refused, never attributed.
    /// assert!(ProcessHandle::pin(me, 1).is_err());
    /// ```
    pub fn pin(pid: Pid, start_time: u64) -> Result<Self> {
        let pidfd = open_pidfd(pid)?;
        let mut handle = ProcessHandle {
            pid,
            pidfd,
            start_time,
            exited_at_open: false,
        };
        handle.exited_at_open = handle.pidfd_readable().unwrap_or(false);
        // The start time must name the task the pidfd pins (checked once,
        // after pidfd_open, so a reuse before it cannot slip through).
        // A failed read that does not mean the task is gone (EMFILE under a
        // low fd limit, ENOMEM, …) is that error, never "vanished".
        if handle.pidfd.is_some() {
            match proc_stat::start_time(pid) {
                Ok(t) if t == start_time => {}
                Err(e) if !e.is_gone() => return Err(e),
                _ => return Err(Error::Vanished { pid: pid.get() }),
            }
        }
        Ok(handle)
    }

    /// Pins `pid` by opening its pidfd first and then calling `read`, which
    /// reads the task's start time from /proc (with whatever else the
    /// caller wants from the same read, returned as `T`). A pidfd still
    /// not readable after `read` proves the task lived through the read,
    /// so `read` saw that very task: no second read of /proc is needed,
    /// unlike [`pin`](Self::pin) after a read of the caller's own. A task
    /// that exited meanwhile (or was a zombie) is pinned as a zombie when it
    /// was not reaped yet after the read; one reaped by then may have left
    /// its pid to a newcomer that the read saw: [`Error::Vanished`]
    /// ([`PendingPin::read_then_pin`]).
    ///
    /// `read` must read /proc itself, when called: a start time read
    /// before the call could name a task that held the pid earlier.
    ///
    /// ```
    /// use kcmp::{Pid, ProcessHandle};
    /// let me = Pid::this();
    /// let (h, comm) = ProcessHandle::open_with(me, || {
    ///     let stat = std::fs::read_to_string(format!("/proc/{me}/stat")).unwrap();
    ///     let (left, fields) = stat.rsplit_once(')').unwrap();
    ///     let start = fields.split_whitespace().nth(19).unwrap().parse().unwrap();
    ///     Ok((start, left.split_once('(').unwrap().1.to_string()))
    /// })
    /// .unwrap();
    /// assert!(h.verify().is_ok() && !comm.is_empty());
    /// assert_eq!(h.start_time(), ProcessHandle::open(me).unwrap().start_time());
    /// ```
    pub fn open_with<T>(pid: Pid, read: impl FnOnce() -> Result<(u64, T)>) -> Result<(Self, T)> {
        PendingPin::open(pid)?.read_then_pin(read)
    }

    fn pidfd_readable(&self) -> Option<bool> {
        self.pidfd.as_ref().map(readable)
    }

    fn start_time_matches(&self) -> bool {
        proc_stat::start_time(self.pid).is_ok_and(|t| t == self.start_time)
    }

    /// The pid.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// The pidfd, when there is one.
    pub fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        self.pidfd.as_ref().map(|fd| fd.as_fd())
    }

    /// The start time (clock ticks after boot) read when the handle was opened.
    pub fn start_time(&self) -> u64 {
        self.start_time
    }

    /// Whether the task had already exited (a zombie) when it was pinned.
    pub fn was_exited_at_open(&self) -> bool {
        self.exited_at_open
    }

    /// Whether the task has exited since (its pidfd is readable), or its pid
    /// now names a task with another start time.
    pub fn has_exited(&self) -> bool {
        match self.pidfd_readable() {
            Some(readable) => readable,
            None => !self.start_time_matches(),
        }
    }

    /// `Ok` when the task lived from [`open`](Self::open) until now (or was
    /// already a zombie then and its pid still names it); otherwise
    /// [`Error::Vanished`]. With a pidfd this is one poll: a task whose pidfd
    /// is not readable is alive, so its pid cannot have been reused.
    pub fn verify(&self) -> Result<()> {
        let gone = match (&self.pidfd, self.exited_at_open) {
            // A zombie's pidfd stays readable: it is gone once reaped (its
            // pid may then name another task, even one that started in
            // the same clock tick).
            (Some(fd), true) => reaped(fd).unwrap_or_else(|| !self.start_time_matches()),
            (Some(_), false) => self.has_exited(),
            (None, _) => !self.start_time_matches(),
        };
        if gone {
            Err(Error::Vanished {
                pid: self.pid.get(),
            })
        } else {
            Ok(())
        }
    }

    /// [`compare_files`] between two pinned tasks; an answer about a task
    /// that vanished meanwhile is discarded as [`Error::Vanished`].
    ///
    /// ```
    /// use kcmp::{FdNum, Pid, ProcessHandle};
    /// let me = ProcessHandle::open(Pid::this()).unwrap();
    /// let fd = FdNum::new(2).unwrap();
    /// assert!(me.compare_files(fd, &me, fd).unwrap().is_equal());
    /// ```
    pub fn compare_files(
        &self,
        fd1: FdNum,
        other: &ProcessHandle,
        fd2: FdNum,
    ) -> Result<KcmpOrdering> {
        let result = compare_files(self.pid, fd1, other.pid, fd2);
        self.verify()?;
        other.verify()?;
        result
    }

    /// [`compare_process`] between two pinned tasks, verified like
    /// [`compare_files`](Self::compare_files).
    ///
    /// ```
    /// use kcmp::{Pid, ProcessHandle, ProcessResource};
    /// let me = ProcessHandle::open(Pid::this()).unwrap();
    /// assert!(me.compare_process(ProcessResource::Files, &me).unwrap().is_equal());
    /// ```
    pub fn compare_process(
        &self,
        resource: ProcessResource,
        other: &ProcessHandle,
    ) -> Result<KcmpOrdering> {
        let result = compare_process(resource, self.pid, other.pid);
        self.verify()?;
        other.verify()?;
        result
    }
}

/// The first half of [`ProcessHandle::open_with`]: a pidfd opened for a
/// pid before anything about the task is read. What the caller learns
/// through the pidfd meanwhile (its parent, with `PIDFD_GET_INFO`) is about
/// the task it pins; [`read_then_pin`](Self::read_then_pin) reads /proc and
/// completes the pin, later, without a second `pidfd_open`.
///
/// ```
/// use kcmp::{PendingPin, Pid};
/// let me = Pid::this();
/// let pending = PendingPin::open(me).unwrap();
/// assert!(pending.pidfd().is_some());
/// let (h, ()) = pending
///     .read_then_pin(|| {
///         let stat = std::fs::read_to_string(format!("/proc/{me}/stat")).unwrap();
///         let fields = stat.rsplit_once(')').unwrap().1;
///         Ok((fields.split_whitespace().nth(19).unwrap().parse().unwrap(), ()))
///     })
///     .unwrap();
/// assert!(h.verify().is_ok());
/// ```
#[derive(Debug)]
pub struct PendingPin {
    pid: Pid,
    pidfd: Option<OwnedFd>,
}

impl PendingPin {
    /// Opens the pidfd of `pid` (`PIDFD_THREAD` for a thread that is not
    /// its group's leader; none when the kernel offers none, before Linux
    /// 5.3 or in a sandbox). [`Error::Os`] `ESRCH` when there is no such
    /// task.
    pub fn open(pid: Pid) -> Result<Self> {
        Ok(PendingPin {
            pid,
            pidfd: open_pidfd(pid)?,
        })
    }

    /// The pid.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// The pidfd, when there is one.
    pub fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        self.pidfd.as_ref().map(|fd| fd.as_fd())
    }

    /// Calls `read`, which gives the task's start time as read from /proc
    /// (and whatever else the caller wants from the same read, returned as
    /// `T`), and pins the task: a pidfd still not readable after `read`
    /// proves the task lived through the read, so `read` saw that very
    /// task. `read` reads /proc itself, or gives what the caller read
    /// since [`open`](Self::open) (never before it: that could be of a
    /// task that held the pid earlier). A task that exited meanwhile (or
    /// was a zombie) is pinned as a zombie when it was still not reaped
    /// after the read (the read was of it); once reaped, its pid may have
    /// named a newcomer during the read: [`Error::Vanished`]. Without a
    /// pidfd, the read's start time pins it (checked by
    /// [`ProcessHandle::verify`]).
    pub fn read_then_pin<T>(
        self,
        read: impl FnOnce() -> Result<(u64, T)>,
    ) -> Result<(ProcessHandle, T)> {
        let (start_time, extra) = read()?;
        let handle = ProcessHandle {
            pid: self.pid,
            pidfd: self.pidfd,
            start_time,
            exited_at_open: false,
        };
        match handle.pidfd_readable() {
            // Alive after the read: the read was of the task pinned.
            Some(false) | None => Ok((handle, extra)),
            // Exited: a zombie not reaped after the read was read itself;
            // one reaped may have left its pid to a newcomer before it.
            Some(true) => match handle.pidfd.as_ref().and_then(reaped) {
                Some(false) => Ok((
                    ProcessHandle {
                        exited_at_open: true,
                        ..handle
                    },
                    extra,
                )),
                Some(true) => Err(Error::Vanished {
                    pid: self.pid.get(),
                }),
                None => Ok((ProcessHandle::pin(self.pid, start_time)?, extra)),
            },
        }
    }
}

/// Whether the task of `pidfd` was reaped (its pid no longer names it):
/// a signal 0 sent through the pidfd finds no task (`ESRCH`); a zombie
/// still takes it. `None` when that cannot be asked (before Linux 5.1, a
/// sandbox).
fn reaped(pidfd: &OwnedFd) -> Option<bool> {
    match crate::sys::pidfd_signal_zero(pidfd.as_fd()) {
        Ok(()) | Err(rustix::io::Errno::PERM) => Some(false),
        Err(rustix::io::Errno::SRCH) => Some(true),
        Err(_) => None,
    }
}

/// Whether a pidfd is readable now: its task has exited (an error of
/// poll counts as readable: nothing proves the task alive).
fn readable(pidfd: &OwnedFd) -> bool {
    let mut fds = [PollFd::new(pidfd, PollFlags::IN)];
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    !matches!(poll(&mut fds, Some(&zero)), Ok(0))
}

/// A pidfd for `pid` (`PIDFD_THREAD` for a thread that is not a group
/// leader); `None` when the kernel offers none (before 5.3, a sandbox),
/// [`Error::Os`] `ESRCH` when there is no such task.
fn open_pidfd(pid: Pid) -> Result<Option<OwnedFd>> {
    let raw = rustix::process::Pid::from_raw(pid.get()).expect("Pid is positive");
    match pidfd_open(raw, PidfdFlags::empty()) {
        Ok(fd) => Ok(Some(fd)),
        // A thread that is not a group leader (EINVAL; ENOENT since Linux
        // 6.15 or so): try PIDFD_THREAD.
        Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOENT => {
            Ok(pidfd_open(raw, PidfdFlags::from_bits_retain(PIDFD_THREAD)).ok())
        }
        Err(e) if e == rustix::io::Errno::SRCH => Err(Error::os(format!("pidfd_open({pid})"), e)),
        // ENOSYS (before 5.3) or a sandbox: fall back to the start time.
        Err(_) => Ok(None),
    }
}
