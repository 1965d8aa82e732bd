//! fork without exec, and the few async-signal-safe calls its children and
//! kcmp's SIGTSTP handler make.
//!
//! kcmp never runs a program found by name: its helper processes (the
//! freezer, [`crate::freeze`], and the sentinel tasks, [`crate::sentinel`])
//! are forks of the calling process. When kcmp is a library, the calling
//! process may have other threads; a forked child has only the thread that
//! forked, and other threads' locks stay taken in it. The children below
//! therefore start with the async-signal-safe calls of this module (close
//! inherited fds with `close_range`, `setpgid`, `prctl`), and only the
//! freezer goes on to run Rust code, which needs a fork-safe `malloc` (glibc's
//! and musl's are: they reset their locks in the child).

use rustix::io::Errno;

fn last_errno() -> Errno {
    Errno::from_raw_os_error(
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO),
    )
}

/// Which side of a fork this is.
pub enum Forked {
    /// The parent, with the child's pid.
    Parent(i32),
    /// The child.
    Child,
}

/// `fork()`.
pub fn fork() -> Result<Forked, Errno> {
    // SAFETY: fork has no memory arguments. The child runs only code that
    // tolerates a fork from a multi-threaded process (see the module docs):
    // every caller either makes async-signal-safe calls and `_exit`s, or
    // runs the freezer, which needs nothing but malloc and plain syscalls.
    let pid = unsafe { libc::fork() };
    match pid {
        p if p < 0 => Err(last_errno()),
        0 => Ok(Forked::Child),
        p => Ok(Forked::Parent(p)),
    }
}

/// `_exit(code)`: ends the process without running atexit handlers or
/// flushing stdio buffers copied from the parent.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit takes an integer and does not return.
    unsafe { libc::_exit(code) }
}

/// In a forked child: moves `keep` (at most 4 fds) to 0, 1, … in order and
/// closes every other fd (`close_range(len, ~0)`). Falls back to closing one by one
/// up to 65536 on kernels before 5.9. Async-signal-safe.
pub fn keep_only_fds(keep: &[i32]) {
    // Above the targets first (a new fd is never an open one), so that
    // moving one down never clobbers another.
    let mut high = [-1i32; 4];
    for (slot, &fd) in high.iter_mut().zip(keep) {
        // SAFETY: fcntl(F_DUPFD_CLOEXEC) takes integers.
        *slot = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, keep.len() as libc::c_int) };
    }
    for (i, &fd) in high.iter().take(keep.len()).enumerate() {
        // SAFETY: dup2 takes integers; a bad fd gives EBADF. The new fd has
        // no close-on-exec flag (nothing is exec'd anyway).
        unsafe { libc::dup2(fd, i as i32) };
    }
    let first = keep.len() as libc::c_uint;
    // SAFETY: close_range takes integers and closes fds of this process only.
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, libc::c_uint::MAX, 0) };
    if r < 0 {
        for fd in first as i32..65536 {
            // SAFETY: close takes an integer; a closed fd gives EBADF.
            unsafe { libc::close(fd) };
        }
    }
}

/// `setpgid(0, 0)`: a process group of its own, so that job control on the
/// terminal (Ctrl-Z, Ctrl-C) does not reach it. Async-signal-safe.
pub fn own_process_group() {
    // SAFETY: setpgid takes integers.
    unsafe { libc::setpgid(0, 0) };
}

/// `prctl(PR_SET_NAME, name)`: the comm of this thread (up to 15 bytes).
pub fn set_comm(name: &std::ffi::CStr) {
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes
    // from the pointer, which `name` provides for the duration of the call.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0) };
}

/// Resets every signal's disposition to the default and unblocks all
/// signals (a forked child inherits the caller's handlers and mask).
/// Async-signal-safe.
pub fn default_signals() {
    for sig in 1..libc::SIGRTMIN() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: signal() with SIG_DFL installs no handler code.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    // SAFETY: an all-zero sigset_t is a valid empty set; sigprocmask reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// `waitpid(pid)` for at most `limit`: a child that cannot die (it inherited a
/// copy of a FUSE file that the engine left open, and its exit waits on
/// the server) is left unreaped rather than waited for. True once reaped.
pub fn reap_within(pid: i32, limit: std::time::Duration) -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let deadline = std::time::Instant::now() + limit;
    // A pidfd turns readable the moment the child exits: no sleeping in
    // steps (Linux 5.3+; before it, steps of 50 µs).
    let pidfd = rustix::process::Pid::from_raw(pid)
        .and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok());
    loop {
        if try_reap(pid) {
            return true;
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return false;
        }
        match &pidfd {
            Some(fd) => {
                let wait = Timespec {
                    tv_sec: left.as_secs() as i64,
                    tv_nsec: i64::from(left.subsec_nanos()),
                };
                let _ = poll(&mut [PollFd::new(fd, PollFlags::IN)], Some(&wait));
            }
            None => std::thread::sleep(std::time::Duration::from_micros(50)),
        }
    }
}

/// `waitpid(pid, WNOHANG)`: true once the child has been reaped (or is not
/// ours).
pub fn try_reap(pid: i32) -> bool {
    let mut status = 0;
    // SAFETY: `status` is a valid writable int.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::__WALL | libc::WNOHANG) };
    r != 0
}

/// `send(fd, byte, MSG_NOSIGNAL|MSG_DONTWAIT)`: one byte, never SIGPIPE.
/// Async-signal-safe.
pub fn send_byte(fd: i32, byte: u8) -> bool {
    // SAFETY: one readable byte on the stack.
    let n = unsafe {
        libc::send(
            fd,
            (&byte as *const u8).cast(),
            1,
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        )
    };
    n == 1
}

/// The handler installed by [`on_terminal_stop`].
static STOP_HOOK: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

extern "C" fn tstp_handler(_sig: libc::c_int) {
    let hook = STOP_HOOK.load(std::sync::atomic::Ordering::SeqCst);
    if hook != 0 {
        // SAFETY: STOP_HOOK only ever holds a `fn()` stored by
        // on_terminal_stop; such a pointer is valid for the whole program.
        let f: fn() = unsafe { std::mem::transmute::<usize, fn()>(hook) };
        f();
    }
    // SAFETY: raise takes an integer; SIGSTOP cannot be caught.
    unsafe { libc::raise(libc::SIGSTOP) };
}

/// Installs a handler for SIGTSTP (Ctrl-Z) and SIGTTIN/SIGTTOU that calls
/// `hook` (which must be async-signal-safe) and then stops the process with
/// SIGSTOP, as the default action would have.
pub fn on_terminal_stop(hook: fn()) -> Result<(), Errno> {
    STOP_HOOK.store(
        hook as *const () as usize,
        std::sync::atomic::Ordering::SeqCst,
    );
    for sig in [libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU] {
        // SAFETY: an all-zero sigaction is valid; we then fill the handler
        // (an extern "C" fn with the right signature) and an empty mask.
        let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
        act.sa_sigaction = tstp_handler as extern "C" fn(libc::c_int) as *const () as usize;
        act.sa_flags = libc::SA_RESTART;
        // SAFETY: `act` is initialised; the old action is not requested.
        let r = unsafe {
            libc::sigemptyset(&mut act.sa_mask);
            libc::sigaction(sig, &act, std::ptr::null_mut())
        };
        if r < 0 {
            return Err(last_errno());
        }
    }
    Ok(())
}

/// Waits at most `wait` for `fd` to be readable, then reads into `buf`:
/// `Ok(None)` when nothing came, `Ok(Some(0))` at EOF.
pub fn read_within(
    fd: i32,
    wait: std::time::Duration,
    buf: &mut [u8],
) -> Result<Option<usize>, Errno> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = wait.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: `pfd` is one valid pollfd, as the count says.
    let r = unsafe { libc::poll(&mut pfd, 1, ms) };
    if r < 0 {
        let e = last_errno();
        return if e == Errno::INTR { Ok(None) } else { Err(e) };
    }
    if r == 0 {
        return Ok(None);
    }
    // SAFETY: `buf` is a valid writable buffer of the given length.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        let e = last_errno();
        return if e == Errno::INTR || e == Errno::AGAIN {
            Ok(None)
        } else {
            Err(e)
        };
    }
    Ok(Some(n as usize))
}

/// Sends all of `bytes` on socket `fd` (`MSG_NOSIGNAL`); false on an error.
pub fn send_all(fd: i32, mut bytes: &[u8]) -> bool {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a valid readable buffer of the given length.
        let n = unsafe { libc::send(fd, bytes.as_ptr().cast(), bytes.len(), libc::MSG_NOSIGNAL) };
        if n < 0 {
            if last_errno() == Errno::INTR {
                continue;
            }
            return false;
        }
        bytes = &bytes[n as usize..];
    }
    true
}

/// `close(fd)` of an fd this process owns and nothing else refers to.
pub fn close(fd: i32) {
    // SAFETY: close takes an integer; the callers own `fd` (the freezer's
    // inherited lock file) and never use it again.
    unsafe { libc::close(fd) };
}

/// `kill(pid, SIGKILL)`.
pub fn kill(pid: i32) {
    // SAFETY: kill takes integers.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// `fcntl(fd, F_OFD_GETLK)` for a write lock on the whole file: `None`
/// when no lock would conflict, else the conflicting lock's `l_pid` (the
/// owner's pid for a POSIX lock, -1 for an OFD lock).
pub fn ofd_write_lock_owner(fd: std::os::fd::BorrowedFd<'_>) -> Result<Option<i32>, Errno> {
    use std::os::fd::AsRawFd;
    // SAFETY: an all-zero flock is a valid value (plain integers).
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: fcntl(F_OFD_GETLK) reads and writes the flock we own; `fd`
    // is borrowed, so it is open for the call.
    let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_GETLK, &mut lock) };
    if r < 0 {
        return Err(last_errno());
    }
    Ok((lock.l_type != libc::F_UNLCK as libc::c_short).then_some(lock.l_pid))
}

/// A fork with exit signal 0 (no caller's SIGCHLD handler or `wait(-1)`
/// sees it) and clone `flags` (0 or `CLONE_FILES`): 0 in the child, its pid
/// in the parent, -1 on failure.
///
/// # Safety
/// The child runs on a copy of this address space with only the calling
/// thread, whose other threads' locks may be held: it must make only raw
/// syscalls on integers and on memory it owns (no allocation, no lock, no
/// libc wrapper that is a cancellation point) and end with `_exit`, never
/// returning. With `CLONE_FILES` it shares the caller's fd table and must
/// close no fd of it.
pub(crate) unsafe fn clone_quietly(flags: usize) -> libc::c_long {
    // SAFETY: clone without CLONE_VM and with a null stack runs the child on
    // a copy of this address space, as fork does; what the child may do is
    // this function's contract with its caller. s390 takes the stack first
    // (CLONE_BACKWARDS2).
    unsafe {
        #[cfg(target_arch = "s390x")]
        let pid = libc::syscall(libc::SYS_clone, 0usize, flags, 0usize, 0usize, 0usize);
        #[cfg(not(target_arch = "s390x"))]
        let pid = libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize);
        pid
    }
}

/// What a child of [`fork_quiet`] does.
#[derive(Debug, Clone, Copy)]
pub(crate) enum QuietChild {
    /// Keeps only this fd (as fd 0), blocks reading it until EOF, then exits.
    ReadUntilEof(i32),
    /// Exits at once.
    Exit,
}

/// Forks a child with exit signal 0 ([`clone_quietly`]) that does `what`
/// and exits. No SIGCHLD announces its exit, so a caller that ignores
/// SIGCHLD (`SIG_IGN`, `SA_NOCLDWAIT`: the kernel reaps such children as
/// they exit) or that reaps every child (`waitpid(-1)`) neither takes it
/// away nor sees it: it stays a zombie until this process reaps it
/// (`__WALL`, [`reap_within`]). It runs with every signal blocked (SIGKILL
/// ends it) and makes raw syscalls only. Returns its pid.
pub(crate) fn fork_quiet(what: QuietChild) -> Result<i32, Errno> {
    // SAFETY: an all-zero sigset_t is valid storage for sigfillset and
    // pthread_sigmask, which write it.
    let (mut all, mut before): (libc::sigset_t, libc::sigset_t) =
        unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
    // SAFETY: sigfillset and pthread_sigmask write sigsets we own.
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut before);
    }
    // SAFETY: the child runs `quiet_child` only: raw syscalls on integers
    // and on a buffer of its own stack, in a table of its own, ending in
    // exit_group.
    let pid = unsafe { clone_quietly(0) };
    if pid == 0 {
        quiet_child(what);
    }
    let failed = (pid < 0).then(last_errno);
    // SAFETY: pthread_sigmask reads the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &before, std::ptr::null_mut()) };
    match failed {
        Some(e) => Err(e),
        None => Ok(pid as i32),
    }
}

/// The life of a [`fork_quiet`] child: raw syscalls only.
fn quiet_child(what: QuietChild) -> ! {
    if let QuietChild::ReadUntilEof(fd) = what {
        // SAFETY: dup3, close_range, close and read take integers and, for
        // read, a buffer of this stack; they touch this child's own fd
        // table (a copy of the parent's).
        unsafe {
            if fd != 0 {
                libc::syscall(libc::SYS_dup3, fd, 0, 0);
            }
            if libc::syscall(libc::SYS_close_range, 1u32, u32::MAX, 0) < 0 {
                for other in 1..65536 {
                    libc::syscall(libc::SYS_close, other);
                }
            }
            let mut buf = [0u8; 64];
            while libc::syscall(libc::SYS_read, 0, buf.as_mut_ptr(), buf.len()) > 0 {}
        }
    }
    // SAFETY: exit_group takes an integer and does not return.
    unsafe { libc::syscall(libc::SYS_exit_group, 0) };
    unreachable!("exit_group returned")
}

/// What became of a child of this process, asked without reaping it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChildState {
    /// Still running.
    Running,
    /// Exited and not reaped: a zombie, its pid still its own.
    Exited,
    /// Not a child of this process (any more): reaped by another thread's
    /// `waitpid(__WALL)`, say.
    Gone,
}

/// `waitid(idtype, id, WEXITED | WNOHANG | __WALL | extra)`: whether the
/// child exited (`si_pid` set), or the errno.
fn waitid_exited(
    idtype: libc::idtype_t,
    id: libc::id_t,
    extra: libc::c_int,
) -> Result<bool, Errno> {
    // SAFETY: an all-zero siginfo_t is valid storage for waitid to write.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let options = libc::WEXITED | libc::WNOHANG | libc::__WALL | extra;
    // SAFETY: waitid writes the siginfo_t we own; an id that names no
    // child of ours is an error, never a wait on another process.
    if unsafe { libc::waitid(idtype, id, &mut info, options) } < 0 {
        return Err(last_errno());
    }
    // SAFETY: si_pid is set by waitid (0 when no child changed state).
    Ok(unsafe { info.si_pid() } != 0)
}

/// The answer of a `WNOWAIT` [`waitid_exited`] as a [`ChildState`].
fn state_from(answer: Result<bool, Errno>) -> ChildState {
    match answer {
        Ok(true) => ChildState::Exited,
        Ok(false) => ChildState::Running,
        Err(Errno::CHILD) => ChildState::Gone,
        Err(_) => ChildState::Running,
    }
}

/// `waitid(P_PID, pid, WEXITED | WNOWAIT | WNOHANG | __WALL)`.
pub(crate) fn child_state(pid: i32) -> ChildState {
    state_from(waitid_exited(libc::P_PID, pid as libc::id_t, libc::WNOWAIT))
}

/// `P_PIDFD` (Linux 5.4): `waitid` on the process a pidfd refers to.
const P_PIDFD: libc::idtype_t = 3;

/// [`child_state`] of exactly the child `pidfd` refers to (never another
/// process that took its pid after it was reaped); of `pid` on Linux 5.3,
/// which has pidfds but not `P_PIDFD`.
pub(crate) fn child_state_of(pidfd: std::os::fd::BorrowedFd<'_>, pid: i32) -> ChildState {
    use std::os::fd::AsRawFd;
    match waitid_exited(P_PIDFD, pidfd.as_raw_fd() as libc::id_t, libc::WNOWAIT) {
        Err(Errno::INVAL) => child_state(pid),
        answer => state_from(answer),
    }
}

/// Reaps the child `pidfd` refers to if it exited: true once reaped, or
/// when it is not a child of this process any more (by `pid` on Linux 5.3,
/// which has no `P_PIDFD`).
pub(crate) fn try_reap_pidfd(pidfd: std::os::fd::BorrowedFd<'_>, pid: i32) -> bool {
    use std::os::fd::AsRawFd;
    match waitid_exited(P_PIDFD, pidfd.as_raw_fd() as libc::id_t, 0) {
        Ok(exited) => exited,
        Err(Errno::INVAL) => try_reap(pid),
        Err(_) => true,
    }
}

/// `unshare(CLONE_FILES)`: the calling thread gets a table of its own, a
/// copy of the process's. For tests of [`crate::pipeline`]'s check that
/// every thread shares one table.
#[cfg(test)]
pub(crate) fn unshare_fd_table() -> Result<(), Errno> {
    // SAFETY: unshare takes flags only. After it, the fds of this thread's
    // table are copies; the test thread that calls it uses only fds it
    // opens itself afterwards, and hands none to other threads.
    match unsafe { libc::unshare(libc::CLONE_FILES) } {
        0 => Ok(()),
        _ => Err(last_errno()),
    }
}
