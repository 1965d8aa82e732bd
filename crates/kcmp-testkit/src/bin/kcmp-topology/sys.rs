//! Raw process-building calls of the fixture: the only `unsafe` code of
//! `kcmp-topology`. Every function is a thin wrapper returning
//! `io::Result`; fds are plain numbers because the fixture's whole purpose
//! is to leave them open in planned places.

use std::ffi::CString;
use std::io;
use std::sync::atomic::{AtomicU32, Ordering};

fn check(ret: libc::c_long) -> io::Result<i32> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as i32)
    }
}

fn check_int(ret: libc::c_int) -> io::Result<i32> {
    check(ret as libc::c_long)
}

/// `fork()`. Must only be called while the process is single-threaded.
pub fn fork() -> io::Result<i32> {
    // SAFETY: the fixture's root and its children call this only while they
    // are single-threaded (the only threads are created in the "threaded"
    // child after its last fork), so the child inherits no locks held by
    // other threads and may keep running ordinary Rust code.
    check_int(unsafe { libc::fork() })
}

/// Raw `clone(flags | SIGCHLD)` without `CLONE_VM`: like fork (the child gets
/// a copy of the memory and continues here, returning 0) but with sharing
/// flags such as `CLONE_FILES`, `CLONE_FS`, `CLONE_IO`, `CLONE_SYSVSEM`.
pub fn clone_fork_like(flags: u64) -> io::Result<i32> {
    assert_eq!(
        flags & (libc::CLONE_VM | libc::CLONE_SIGHAND | libc::CLONE_THREAD) as u64,
        0,
        "clone_fork_like cannot share the address space"
    );
    // SAFETY: without CLONE_VM the child runs on a private copy of the
    // caller's memory, exactly as after fork(); a null stack pointer means
    // "the same stack address", which is the copy. No tid pointers or TLS are
    // passed (all zero). The caller is single-threaded, so the copy holds no
    // locks of other threads. The child skips glibc's fork handlers, which is
    // fine: it only calls prctl, atomics and pause afterwards.
    check(unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD as u64) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    })
}

/// What a `CLONE_VM` child needs: written by the parent before the clone,
/// only read by the child.
#[repr(C)]
pub struct VmChildArg {
    /// The parent's pid (for the PR_SET_PDEATHSIG race check).
    pub parent: i32,
    /// Incremented by the child once it is in place.
    pub ready: &'static AtomicU32,
}

extern "C" fn vm_child_main(arg: *mut libc::c_void) -> libc::c_int {
    // This child shares the parent's memory (and TLS pointer): it must not
    // allocate, unwind, or use thread-locals. Raw syscalls and an atomic only.
    // SAFETY: `arg` points to a leaked `VmChildArg` (see `clone_vm_blocker`),
    // valid for the whole life of the process and never written after clone.
    let arg = unsafe { &*(arg as *const VmChildArg) };
    // SAFETY: plain integer-argument syscalls; they touch no memory of ours.
    unsafe {
        libc::syscall(
            libc::SYS_prctl,
            libc::PR_SET_PDEATHSIG as libc::c_long,
            libc::SIGKILL as libc::c_long,
            0 as libc::c_long,
            0 as libc::c_long,
            0 as libc::c_long,
        );
        if libc::syscall(libc::SYS_getppid) as i32 != arg.parent {
            libc::syscall(libc::SYS_exit, 1 as libc::c_long);
        }
    }
    arg.ready.fetch_add(1, Ordering::AcqRel);
    loop {
        // SAFETY: pause() only blocks; with no signal handlers installed the
        // child stays here until SIGKILL.
        unsafe {
            libc::pause();
        }
    }
}

/// `clone(flags | SIGCHLD)` with `CLONE_VM` (and possibly `CLONE_SIGHAND`)
/// on a fresh stack; the child sets PR_SET_PDEATHSIG, increments `ready`
/// and blocks forever without allocating.
pub fn clone_vm_blocker(flags: u64, ready: &'static AtomicU32) -> io::Result<i32> {
    assert_ne!(flags & libc::CLONE_VM as u64, 0);
    assert_eq!(flags & libc::CLONE_THREAD as u64, 0);
    const STACK: usize = 256 * 1024;
    // SAFETY: a fresh anonymous private mapping; no existing memory is affected.
    let stack = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            STACK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
            -1,
            0,
        )
    };
    if stack == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let arg: &'static VmChildArg = Box::leak(Box::new(VmChildArg {
        parent: std::process::id() as i32,
        ready,
    }));
    // SAFETY: the child runs `vm_child_main` on its own stack (the top of the
    // mapping above, which is never unmapped: the mapping is leaked), with a
    // leaked, immutable argument. It shares our memory but only reads `arg`,
    // does an atomic add and raw syscalls, so it cannot race with us on
    // anything but the atomic.
    check_int(unsafe {
        libc::clone(
            vm_child_main,
            (stack as *mut u8).add(STACK) as *mut libc::c_void,
            (flags | libc::SIGCHLD as u64) as libc::c_int,
            arg as *const VmChildArg as *mut libc::c_void,
        )
    })
}

/// `prctl(PR_SET_PDEATHSIG, SIGKILL)`, then exits at once if the parent
/// already died (the classic race) — `expected_parent` is the parent's pid.
pub fn die_with_parent(expected_parent: i32) {
    // SAFETY: integer-argument prctl.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        );
    }
    if getppid() != expected_parent {
        exit_now(1);
    }
}

/// `prctl(PR_SET_CHILD_SUBREAPER, 1)`: orphaned descendants are reparented
/// to us, so the fixture can reap all of them.
pub fn set_child_subreaper() -> io::Result<()> {
    // SAFETY: integer-argument prctl.
    check_int(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) })
        .map(drop)
}

/// `getppid()`.
pub fn getppid() -> i32 {
    // SAFETY: no arguments, cannot fail.
    unsafe { libc::getppid() }
}

/// `gettid()`.
pub fn gettid() -> i32 {
    // SAFETY: no arguments, cannot fail.
    unsafe { libc::gettid() }
}

/// `_exit(code)`: no destructors, no atexit handlers, no stdio flush.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: terminates the process immediately.
    unsafe { libc::_exit(code) }
}

/// Blocks until killed.
pub fn block_forever() -> ! {
    loop {
        // SAFETY: pause() only blocks until a signal arrives.
        unsafe {
            libc::pause();
        }
    }
}

/// `kill(pid, SIGKILL)`, ignoring errors (the process may be gone).
pub fn kill9(pid: i32) {
    if pid > 0 {
        // SAFETY: sends a signal; `pid` is positive so it names one process,
        // one we created and have not reaped (so the pid cannot be reused).
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

/// Reaps any child; `None` when there are none left (ECHILD).
pub fn reap_any() -> Option<i32> {
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid out-pointer.
        let r = unsafe { libc::waitpid(-1, &mut status, libc::__WALL) };
        if r > 0 {
            return Some(r);
        }
        if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        return None;
    }
}

/// Waits until child `pid` has exited, without reaping it (it stays a zombie).
pub fn wait_exited_keep_zombie(pid: i32) -> io::Result<()> {
    loop {
        // SAFETY: all-zero siginfo_t is a valid value; `info` is a valid out-pointer.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is valid for writes.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// Raises RLIMIT_NOFILE's soft limit to its hard limit.
pub fn raise_nofile() {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a valid rlimit for reading and writing.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

/// `close_range(lo, hi, 0)`; an empty range is a no-op.
pub fn close_range(lo: u32, hi: u32) -> io::Result<()> {
    if lo > hi {
        return Ok(());
    }
    // SAFETY: closing fd numbers is memory-safe; the fixture owns every fd in
    // its processes (nothing else in the process holds fds it relies on).
    check(unsafe {
        libc::syscall(
            libc::SYS_close_range,
            lo as libc::c_uint,
            hi as libc::c_uint,
            0 as libc::c_uint,
        )
    })
    .map(drop)
}

/// `close(fd)`.
pub fn close(fd: i32) -> io::Result<()> {
    // SAFETY: see `close_range`.
    check_int(unsafe { libc::close(fd) }).map(drop)
}

/// True when `fd` is open.
pub fn fd_is_open(fd: i32) -> bool {
    // SAFETY: F_GETFD only reads the fd flags.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// `dup(fd)`.
pub fn dup(fd: i32) -> io::Result<i32> {
    // SAFETY: creates a new fd; touches no memory.
    check_int(unsafe { libc::dup(fd) })
}

/// `dup2(fd, new)`. The caller guarantees `new` is unused (or planned to be replaced).
pub fn dup2(fd: i32, new: i32) -> io::Result<i32> {
    // SAFETY: as `dup`; replacing `new` is intended by the caller.
    check_int(unsafe { libc::dup2(fd, new) })
}

/// `fcntl(fd, F_DUPFD_CLOEXEC, min)`.
pub fn dupfd_cloexec(fd: i32, min: i32) -> io::Result<i32> {
    // SAFETY: as `dup`.
    check_int(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) })
}

/// `open(path, flags, 0600)`.
pub fn open(path: &std::path::Path, flags: i32) -> io::Result<i32> {
    use std::os::unix::ffi::OsStrExt;
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    check_int(unsafe { libc::open(c.as_ptr(), flags, 0o600 as libc::c_uint) })
}

/// `pipe()` -> (read end, write end).
pub fn pipe() -> io::Result<(i32, i32)> {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for two ints.
    check_int(unsafe { libc::pipe(fds.as_mut_ptr()) })?;
    Ok((fds[0], fds[1]))
}

/// `socketpair(AF_UNIX, ty, 0)`.
pub fn socketpair(ty: i32) -> io::Result<(i32, i32)> {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for two ints.
    check_int(unsafe { libc::socketpair(libc::AF_UNIX, ty, 0, fds.as_mut_ptr()) })?;
    Ok((fds[0], fds[1]))
}

/// `eventfd(0, 0)`.
pub fn eventfd() -> io::Result<i32> {
    // SAFETY: creates an fd.
    check_int(unsafe { libc::eventfd(0, 0) })
}

/// `epoll_create1(0)`.
pub fn epoll_create() -> io::Result<i32> {
    // SAFETY: creates an fd.
    check_int(unsafe { libc::epoll_create1(0) })
}

/// `epoll_ctl(ep, EPOLL_CTL_ADD, fd, {EPOLLIN})`.
pub fn epoll_add(ep: i32, fd: i32) -> io::Result<()> {
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: fd as u64,
    };
    // SAFETY: `ev` is a valid epoll_event for the duration of the call.
    check_int(unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev) }).map(drop)
}

/// `ioprio_set(IOPRIO_WHO_PROCESS, 0, IOPRIO_PRIO_VALUE(IOPRIO_CLASS_BE, 4))`:
/// gives the calling process an I/O context with a valid priority.
pub fn ioprio_set_be4() -> io::Result<()> {
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    const IOPRIO_CLASS_BE: libc::c_long = 2;
    const IOPRIO_CLASS_SHIFT: libc::c_long = 13;
    // SAFETY: integer-argument syscall.
    check(unsafe {
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            0 as libc::c_long,
            (IOPRIO_CLASS_BE << IOPRIO_CLASS_SHIFT) | 4,
        )
    })
    .map(drop)
}

/// `semget(IPC_PRIVATE, 1, 0600)`: a private SysV semaphore set.
pub fn sem_create() -> io::Result<i32> {
    // SAFETY: integer-argument call.
    check_int(unsafe { libc::semget(libc::IPC_PRIVATE, 1, 0o600 | libc::IPC_CREAT) })
}

/// `semop(id, {0, +1, SEM_UNDO})`: allocates the caller's undo list.
pub fn sem_up_undo(id: i32) -> io::Result<()> {
    let mut op = libc::sembuf {
        sem_num: 0,
        sem_op: 1,
        sem_flg: libc::SEM_UNDO as libc::c_short,
    };
    // SAFETY: `op` is one valid sembuf.
    check_int(unsafe { libc::semop(id, &mut op, 1) }).map(drop)
}

/// `semctl(id, 0, IPC_RMID)`.
pub fn sem_remove(id: i32) -> io::Result<()> {
    // SAFETY: IPC_RMID takes no fourth argument.
    check_int(unsafe { libc::semctl(id, 0, libc::IPC_RMID) }).map(drop)
}

/// Sends `fds` with SCM_RIGHTS and `payload` as data over a unix socket.
pub fn send_fds(sock: i32, fds: &[i32], payload: &[u8]) -> io::Result<()> {
    let fd_bytes = std::mem::size_of_val(fds);
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(fd_bytes as u32) } as usize;
    let mut cbuf = vec![0u64; space.div_ceil(8)];
    let mut iov = libc::iovec {
        iov_base: payload.as_ptr() as *mut libc::c_void,
        iov_len: payload.len(),
    };
    // SAFETY: all-zero msghdr is valid; the fields are filled below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = space as _;
    // SAFETY: `msg` points to `cbuf`, which is CMSG_SPACE(fd_bytes) long and
    // 8-aligned, so the first cmsghdr and its data fit; we copy exactly
    // `fd_bytes` into CMSG_DATA. `iov` points to `payload`, only read by sendmsg.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(fd_bytes as u32) as _;
        std::ptr::copy_nonoverlapping(fds.as_ptr() as *const u8, libc::CMSG_DATA(cmsg), fd_bytes);
        check(libc::sendmsg(sock, &msg, 0) as libc::c_long).map(drop)
    }
}

/// Receives up to `max_fds` fds with SCM_RIGHTS and up to `payload.len()`
/// data bytes; returns the fds (received with their natural numbers).
pub fn recv_fds(sock: i32, max_fds: usize, payload: &mut [u8]) -> io::Result<Vec<i32>> {
    let fd_bytes = max_fds * std::mem::size_of::<i32>();
    // SAFETY: pure size computation.
    let space = unsafe { libc::CMSG_SPACE(fd_bytes as u32) } as usize;
    let mut cbuf = vec![0u64; space.div_ceil(8)];
    let mut iov = libc::iovec {
        iov_base: payload.as_mut_ptr() as *mut libc::c_void,
        iov_len: payload.len(),
    };
    // SAFETY: all-zero msghdr is valid; the fields are filled below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = space as _;
    // SAFETY: recvmsg writes at most iov_len bytes into `payload` and at most
    // msg_controllen bytes into `cbuf`; both buffers outlive the call.
    loop {
        let r = unsafe { libc::recvmsg(sock, &mut msg, 0) };
        if r >= 0 {
            break;
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
    let mut out = Vec::new();
    // SAFETY: the kernel filled `cbuf` and msg_controllen; the CMSG_* walk
    // stays within it, and each SCM_RIGHTS payload holds
    // (cmsg_len - CMSG_LEN(0)) / 4 ints, read unaligned.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let n = ((*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize)
                    / std::mem::size_of::<i32>();
                let data = libc::CMSG_DATA(cmsg) as *const i32;
                for i in 0..n {
                    out.push(std::ptr::read_unaligned(data.add(i)));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(out)
}

/// A zero-filled `MAP_SHARED | MAP_ANONYMOUS` mapping of `len` bytes, never
/// unmapped: memory shared by the fixture and all its children without any
/// fd.
pub fn shared_zeroed(len: usize) -> io::Result<*mut u8> {
    // SAFETY: a fresh anonymous mapping; no existing memory is affected.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        Err(io::Error::last_os_error())
    } else {
        Ok(p as *mut u8)
    }
}

/// `n` zero-initialised `AtomicU64`s in a `MAP_SHARED` anonymous mapping
/// (never unmapped): counters and tables shared by a fixture and its
/// children without any fd.
pub fn shared_u64s(n: usize) -> io::Result<&'static [std::sync::atomic::AtomicU64]> {
    let len = n.max(1) * std::mem::size_of::<std::sync::atomic::AtomicU64>();
    let p = shared_zeroed(len)?;
    // SAFETY: `p` is a fresh, page-aligned (so 8-aligned) zero-filled mapping
    // of `len` bytes that is never unmapped; all-zero bytes are a valid
    // AtomicU64, and every access goes through the atomics, so sharing it
    // (also with other processes through MAP_SHARED) is sound.
    Ok(unsafe { std::slice::from_raw_parts(p as *const std::sync::atomic::AtomicU64, n.max(1)) })
}
