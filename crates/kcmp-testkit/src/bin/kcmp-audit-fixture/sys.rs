//! Raw calls of the audit fixture: its only `unsafe` code. Fds are plain
//! numbers: the fixture's purpose is to leave them open in planned places.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Errors are strings naming the call.
pub type R<T> = Result<T, String>;

fn check(what: &str, ret: libc::c_int) -> R<i32> {
    if ret < 0 {
        Err(format!("{what}: {}", std::io::Error::last_os_error()))
    } else {
        Ok(ret)
    }
}

fn cpath(path: &Path) -> R<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|e| e.to_string())
}

/// `open(path, flags, 0644)`: no O_CLOEXEC unless `flags` has it.
pub fn open(path: &Path, flags: i32) -> R<i32> {
    let c = cpath(path)?;
    // SAFETY: `c` is a NUL-terminated path that outlives the call.
    check(&format!("open {}", path.display()), unsafe {
        libc::open(c.as_ptr(), flags, 0o644)
    })
}

/// `pipe2(flags)`: (read end, write end).
pub fn pipe(flags: i32) -> R<(i32, i32)> {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` is a valid array of two ints for the kernel to fill.
    check("pipe2", unsafe { libc::pipe2(fds.as_mut_ptr(), flags) })?;
    Ok((fds[0], fds[1]))
}

/// A unix stream socketpair, no O_CLOEXEC.
pub fn socketpair() -> R<(i32, i32)> {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` is a valid array of two ints for the kernel to fill.
    check("socketpair", unsafe {
        libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr())
    })?;
    Ok((fds[0], fds[1]))
}

/// A TCP socket listening on 127.0.0.1 (an ephemeral port), no O_CLOEXEC.
pub fn tcp_listener() -> R<i32> {
    // SAFETY: plain syscall with integer arguments.
    let fd = check("socket", unsafe {
        libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0)
    })?;
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes([127, 0, 0, 1]),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: `addr` is a valid sockaddr_in of the size passed.
    check("bind", unsafe {
        libc::bind(
            fd,
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    })?;
    // SAFETY: plain syscall with integer arguments.
    check("listen", unsafe { libc::listen(fd, 16) })?;
    Ok(fd)
}

/// `epoll_create1(0)`.
pub fn epoll_create() -> R<i32> {
    // SAFETY: plain syscall with integer arguments.
    check("epoll_create1", unsafe { libc::epoll_create1(0) })
}

/// Registers `fd` in `ep` for input.
pub fn epoll_add(ep: i32, fd: i32) -> R<()> {
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: fd as u64,
    };
    // SAFETY: `ev` is a valid epoll_event that outlives the call.
    check("epoll_ctl", unsafe {
        libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev)
    })?;
    Ok(())
}

/// `memfd_create(name, 0)`.
pub fn memfd(name: &str) -> R<i32> {
    let c = CString::new(name).map_err(|e| e.to_string())?;
    // SAFETY: `c` is a NUL-terminated name that outlives the call.
    check("memfd_create", unsafe { libc::memfd_create(c.as_ptr(), 0) })
}

/// `eventfd(0, 0)`.
pub fn eventfd() -> R<i32> {
    // SAFETY: plain syscall with integer arguments.
    check("eventfd", unsafe { libc::eventfd(0, 0) })
}

/// `dup2(src, dst)`.
pub fn dup2(src: i32, dst: i32) -> R<()> {
    // SAFETY: plain syscall with integer arguments.
    check("dup2", unsafe { libc::dup2(src, dst) })?;
    Ok(())
}

/// `close(fd)`.
pub fn close(fd: i32) -> R<()> {
    // SAFETY: closing an fd number the fixture planned; no Rust object
    // owns it.
    check("close", unsafe { libc::close(fd) })?;
    Ok(())
}

/// Sets or clears FD_CLOEXEC on `fd`.
pub fn set_cloexec(fd: i32, on: bool) -> R<()> {
    let flag = if on { libc::FD_CLOEXEC } else { 0 };
    // SAFETY: plain syscall with integer arguments.
    check("fcntl(F_SETFD)", unsafe {
        libc::fcntl(fd, libc::F_SETFD, flag)
    })?;
    Ok(())
}

/// Writes `data` at the start of `fd`.
pub fn write_all(fd: i32, data: &[u8]) -> R<()> {
    // SAFETY: `data` is a valid buffer of `data.len()` bytes.
    let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
    if n as usize == data.len() {
        Ok(())
    } else {
        Err(format!("write: {}", std::io::Error::last_os_error()))
    }
}

/// Reads one byte: Ok(true) when one arrived, Ok(false) on EOF.
pub fn read_byte(fd: i32) -> bool {
    let mut b = [0u8];
    // SAFETY: `b` is a valid one-byte buffer.
    unsafe { libc::read(fd, b.as_mut_ptr().cast(), 1) == 1 }
}

/// `getpid()`.
pub fn getpid() -> i32 {
    // SAFETY: getpid cannot fail.
    unsafe { libc::getpid() }
}

/// `fork()`; the fixture is single-threaded when it forks.
pub fn fork() -> R<i32> {
    // SAFETY: the fixture has no other threads, so the child inherits no
    // locks held by other threads and may run ordinary code.
    check("fork", unsafe { libc::fork() })
}

/// In a child: die with `parent`; exit if it is already gone.
pub fn die_with_parent(parent: i32) {
    // SAFETY: prctl with integer arguments; getppid cannot fail.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        );
        if libc::getppid() != parent {
            libc::_exit(1);
        }
    }
}

/// In a child: closes every fd below 1024 that is not in `keep`.
pub fn close_all_except(keep: &[i32]) {
    for fd in 0..1024 {
        if !keep.contains(&fd) {
            // SAFETY: the child owns its copy of the fd table and no Rust
            // object in it is used after this point.
            unsafe {
                libc::close(fd);
            }
        }
    }
}

/// Sets this task's command name (`comm`) to raw bytes (at most 15).
pub fn set_comm(name: &[u8]) {
    let mut buf = [0u8; 16];
    let n = name.len().min(15);
    buf[..n].copy_from_slice(&name[..n]);
    // SAFETY: `buf` is a NUL-terminated 16-byte buffer.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, buf.as_ptr() as libc::c_ulong, 0, 0, 0);
    }
}

/// `unshare(flags)`.
pub fn unshare(flags: i32) -> R<()> {
    // SAFETY: plain syscall with integer arguments.
    check("unshare", unsafe { libc::unshare(flags) })?;
    Ok(())
}

/// Makes every mount of this (new) mount namespace private, so that
/// nothing mounted or unmounted here propagates to the host.
pub fn make_mounts_private() -> R<()> {
    let root = cpath(Path::new("/"))?;
    // SAFETY: valid NUL-terminated path; null source, type and data are
    // allowed for a propagation change.
    check("mount --make-rprivate /", unsafe {
        libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    })?;
    Ok(())
}

/// Mounts a tmpfs at `target`.
pub fn mount_tmpfs(target: &Path) -> R<()> {
    let t = cpath(target)?;
    let src = CString::new("tmpfs").unwrap();
    let data = CString::new("mode=0755,size=128m").unwrap();
    // SAFETY: every pointer is a NUL-terminated string that outlives the call.
    check(&format!("mount tmpfs {}", target.display()), unsafe {
        libc::mount(
            src.as_ptr(),
            t.as_ptr(),
            src.as_ptr(),
            0,
            data.as_ptr().cast(),
        )
    })?;
    Ok(())
}

/// `umount2(target, MNT_DETACH)`.
pub fn umount(target: &Path) -> R<()> {
    let t = cpath(target)?;
    // SAFETY: `t` is a NUL-terminated path that outlives the call.
    check(&format!("umount {}", target.display()), unsafe {
        libc::umount2(t.as_ptr(), libc::MNT_DETACH)
    })?;
    Ok(())
}

/// Drops to `uid` (and gid `uid`, no supplementary groups).
pub fn become_user(uid: u32) -> R<()> {
    // SAFETY: plain syscalls with integer arguments; a null list with size
    // 0 clears the supplementary groups.
    unsafe {
        check("setgroups", libc::setgroups(0, std::ptr::null()))?;
        check("setresgid", libc::setresgid(uid, uid, uid))?;
        check("setresuid", libc::setresuid(uid, uid, uid))?;
    }
    Ok(())
}

/// `execv(path, args)`; returns only on failure.
pub fn exec(path: &Path, args: &[String]) -> String {
    let Ok(p) = cpath(path) else {
        return "bad path".into();
    };
    let cargs: Vec<CString> = args
        .iter()
        .filter_map(|a| CString::new(a.as_str()).ok())
        .collect();
    let mut argv: Vec<*const libc::c_char> = cargs.iter().map(|c| c.as_ptr()).collect();
    argv.push(std::ptr::null());
    // SAFETY: `p` and every argv string are NUL-terminated and outlive the
    // call; argv ends with a null pointer.
    unsafe {
        libc::execv(p.as_ptr(), argv.as_ptr());
    }
    format!(
        "exec {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    )
}

/// Waits for a signal, forever.
pub fn pause_forever() -> ! {
    loop {
        // SAFETY: pause() only blocks until a signal arrives.
        unsafe {
            libc::pause();
        }
    }
}

/// `_exit(code)`.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit ends the process without running atexit handlers, as a
    // forked child of a Rust program should.
    unsafe { libc::_exit(code) }
}

/// Kills and reaps a child.
pub fn kill_and_reap(pid: i32) {
    // SAFETY: signalling and reaping our own child.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
}
