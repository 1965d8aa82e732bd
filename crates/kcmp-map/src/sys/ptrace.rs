//! ptrace(2) and waitid(2), the calls [`crate::freeze`] is built on.
//!
//! rustix has no ptrace; these are thin shims over `libc::ptrace` and
//! `libc::waitid` that pass only integers (no pointers into the tracee), so
//! no argument value can break memory safety in this process.
//!
//! ptrace requests are valid only from the thread that attached (the kernel
//! records the tracer per thread); [`crate::freeze`] keeps every call for a
//! frozen set on one dedicated thread.

use rustix::io::Errno;

fn last_errno() -> Errno {
    Errno::from_raw_os_error(
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO),
    )
}

fn check(ret: libc::c_long) -> Result<(), Errno> {
    if ret < 0 {
        Err(last_errno())
    } else {
        Ok(())
    }
}

/// `ptrace(PTRACE_SEIZE, tid, 0, 0)`: attach without stopping the task and
/// without options (no auto-attach of new threads, no exec SIGTRAP).
pub fn seize(tid: i32) -> Result<(), Errno> {
    // SAFETY: PTRACE_SEIZE reads only its integer arguments; addr is 0 and
    // data (the option bits) is 0, no memory is passed to the kernel.
    let ret = unsafe {
        libc::ptrace(
            libc::PTRACE_SEIZE,
            tid as libc::pid_t,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_void>(),
        )
    };
    check(ret)
}

/// `ptrace(PTRACE_INTERRUPT, tid, 0, 0)`: make a seized task trap into a
/// `PTRACE_EVENT_STOP` at its next chance.
pub fn interrupt(tid: i32) -> Result<(), Errno> {
    // SAFETY: PTRACE_INTERRUPT takes no memory arguments; addr and data are 0.
    let ret = unsafe {
        libc::ptrace(
            libc::PTRACE_INTERRUPT,
            tid as libc::pid_t,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_void>(),
        )
    };
    check(ret)
}

/// `ptrace(PTRACE_DETACH, tid, 0, sig)`: release a stopped tracee. `sig` is
/// the signal to deliver on release (the one it was stopped for in a
/// signal-delivery-stop), or 0.
pub fn detach(tid: i32, sig: i32) -> Result<(), Errno> {
    // SAFETY: PTRACE_DETACH interprets data as a signal number (an integer
    // smuggled through the pointer-sized argument, as the ABI prescribes);
    // no memory is read or written.
    let ret = unsafe {
        libc::ptrace(
            libc::PTRACE_DETACH,
            tid as libc::pid_t,
            std::ptr::null_mut::<libc::c_void>(),
            sig as usize as *mut libc::c_void,
        )
    };
    check(ret)
}

/// What `waitid` reported about one tracee.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceeState {
    /// Nothing to report yet (still running towards its stop).
    Running,
    /// In a ptrace stop. `status` is the kernel's exit_code: the signal in
    /// the low byte, the `PTRACE_EVENT_*` in bits 8..16 (0 for a
    /// signal-delivery-stop).
    Stopped {
        /// The raw status (si_status of the report).
        status: i32,
        /// True for a ptrace stop (`CLD_TRAPPED`), false for a plain
        /// group-stop report (`CLD_STOPPED`, seen when the tracer's process
        /// is also the real parent).
        trapped: bool,
    },
    /// It exited or was killed (`CLD_EXITED`, `CLD_KILLED`, `CLD_DUMPED`).
    Exited,
}

fn waitid_raw(tid: i32, options: libc::c_int) -> Result<TraceeState, Errno> {
    // SAFETY: siginfo_t is a plain C struct for which all-zero bytes is a
    // valid value.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a valid, writable siginfo_t that lives across the
    // call; the kernel writes at most sizeof(siginfo_t) bytes into it.
    let ret = unsafe { libc::waitid(libc::P_PID, tid as libc::id_t, &mut info, options) };
    if ret < 0 {
        return Err(last_errno());
    }
    // SAFETY: waitid filled `info` for a SIGCHLD-style report (or left it
    // zeroed under WNOHANG); si_pid and si_status are the fields of that
    // union member and are initialised either way.
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    if pid == 0 {
        return Ok(TraceeState::Running);
    }
    Ok(match info.si_code {
        libc::CLD_TRAPPED => TraceeState::Stopped {
            status,
            trapped: true,
        },
        libc::CLD_STOPPED => TraceeState::Stopped {
            status,
            trapped: false,
        },
        libc::CLD_EXITED | libc::CLD_KILLED | libc::CLD_DUMPED => TraceeState::Exited,
        _ => TraceeState::Running,
    })
}

/// Looks at a tracee's state without consuming the report (`waitid(P_PID,
/// tid, WSTOPPED|WEXITED|__WALL|WNOHANG|WNOWAIT)`).
///
/// Not consuming a stop report matters: consuming it clears the tracee's
/// pending signal number in the kernel, and if the tracer then died without
/// detaching, a signal that arrived during the freeze would be lost.
pub fn peek(tid: i32) -> Result<TraceeState, Errno> {
    waitid_raw(
        tid,
        libc::WSTOPPED | libc::WEXITED | libc::__WALL | libc::WNOHANG | libc::WNOWAIT,
    )
}

/// Reaps an exited tracee's report (`waitid(P_PID, tid,
/// WEXITED|__WALL|WNOHANG)`), handing it back to its real parent.
pub fn reap_exited(tid: i32) -> Result<TraceeState, Errno> {
    waitid_raw(tid, libc::WEXITED | libc::__WALL | libc::WNOHANG)
}
