//! Processes that make a careless inspector hang or misreport (issue 10).
//!
//! `kcmp-hang-fixture vfork`: two ordinary children blocked reading stdin
//! (sleepers), and a vfork parent whose child never execs: the parent sits
//! in uninterruptible sleep and cannot be stopped. Prints
//! `{"sleepers": [A, B], "vfork_parent": P, "vfork_child": C}`.
//!
//! `kcmp-hang-fixture fuse`: a FUSE filesystem served by a minimal server
//! (`/dev/fuse` and mount(2), no libfuse) in a private mount namespace. The
//! fixture (the holder) opens a file on it and a FIFO, both watched by an
//! epoll, then the server stops answering: any `stat` of the file through
//! `/proc/HOLDER/fd/N` waits forever. Prints `{"server": S, "holder": H,
//! "epfd": E, "fuse_fd": F, "fifo_fd": Q, "mount": "…"}`.
//!
//! `kcmp-hang-fixture fuse-swap`: the same server, answering only the
//! holder (see `swap.rs`), while the holder switches two fds between a
//! FUSE file and a pipe / a regular file. Prints `{"server": S, "holder":
//! H, "swap_fds": [A, B], …}`.
//!
//! `kcmp-hang-fixture fuse-swap-late`: the holder holds a pipe and a file
//! at A and B, and no FUSE filesystem exists until a line arrives on stdin;
//! then as `fuse-swap`. Prints `{"holder": H, "swap_fds": [A, B]}`.
//!
//! All run until stdin closes, then end every process they started (and
//! those die with the fixture: `PR_SET_PDEATHSIG`).

use std::ffi::CString;

fn check(what: &str, r: libc::c_int) -> i32 {
    if r < 0 {
        eprintln!(
            "kcmp-hang-fixture: {what}: {}",
            std::io::Error::last_os_error()
        );
        std::process::exit(1);
    }
    r
}

/// Forks; the child dies with its parent, runs `child` and exits.
fn fork_with(child: impl FnOnce()) -> i32 {
    // SAFETY: the fixture is single-threaded when it forks.
    let pid = check("fork", unsafe { libc::fork() });
    if pid == 0 {
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
        child();
        // SAFETY: _exit ends the child without running the parent's handlers.
        unsafe { libc::_exit(0) };
    }
    pid
}

/// Blocks reading stdin until EOF, then exits.
fn sleeper() {
    let mut buf = [0u8; 16];
    // SAFETY: reading into a valid stack buffer.
    while unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
}

fn wait_stdin_eof() {
    let mut buf = [0u8; 16];
    // SAFETY: reading into a valid stack buffer.
    while unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
}

fn state_of(pid: i32) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s[s.rfind(')')? + 2..].chars().next()
}

extern "C" fn vfork_child(_: *mut libc::c_void) -> libc::c_int {
    // SAFETY: raw system calls with integer arguments.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
        loop {
            libc::pause();
        }
    }
}

fn vfork_mode() {
    let sleepers = [fork_with(sleeper), fork_with(sleeper)];
    let parent = fork_with(|| {
        // A vfork (CLONE_VM | CLONE_VFORK) whose child runs on a stack of
        // its own and never execs: this process waits uninterruptibly.
        let mut stack = vec![0u8; 64 * 1024];
        // SAFETY: the child runs `vfork_child` on the top of `stack`, which
        // outlives it (this process waits for it in clone and is killed
        // with it); the child touches no memory of this frame.
        unsafe {
            let top = stack.as_mut_ptr().add(stack.len());
            libc::clone(
                vfork_child,
                top.cast(),
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                std::ptr::null_mut(),
            );
        }
    });
    let children = format!("/proc/{parent}/task/{parent}/children");
    let mut child = 0;
    for _ in 0..5000 {
        child = std::fs::read_to_string(&children)
            .ok()
            .and_then(|c| c.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        if child != 0 && state_of(parent) == Some('D') {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    println!(
        "{{\"sleepers\": [{}, {}], \"vfork_parent\": {parent}, \"vfork_child\": {child}}}",
        sleepers[0], sleepers[1]
    );
    wait_stdin_eof();
    for p in [child, parent, sleepers[0], sleepers[1]] {
        // SAFETY: kill and waitpid take integers / a valid int pointer.
        unsafe {
            libc::kill(p, libc::SIGKILL);
            libc::waitpid(p, std::ptr::null_mut(), 0);
        }
    }
}

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("vfork") => vfork_mode(),
        Some("fuse") => fuse::run(),
        Some("fuse-swap") => swap::run(),
        Some("fuse-swap-late") => swap::run_late(),
        _ => {
            eprintln!("usage: kcmp-hang-fixture vfork|fuse|fuse-swap|fuse-swap-late");
            std::process::exit(2);
        }
    }
}

#[path = "kcmp-hang-fixture/swap.rs"]
mod swap;

mod fuse {
    //! A FUSE server in ~150 lines: INIT, LOOKUP of one file `f`, GETATTR
    //! (no caching: every stat asks), OPEN, FLUSH, RELEASE; ENOSYS for the
    //! rest.
    use super::{check, fork_with, wait_stdin_eof, CString};

    const LOOKUP: u32 = 1;
    const FORGET: u32 = 2;
    const GETATTR: u32 = 3;
    const OPEN: u32 = 14;
    const RELEASE: u32 = 18;
    const FLUSH: u32 = 25;
    const INIT: u32 = 26;
    const INTERRUPT: u32 = 36;
    const BATCH_FORGET: u32 = 42;

    fn u32_at(b: &[u8], off: usize) -> u32 {
        u32::from_ne_bytes(b[off..off + 4].try_into().unwrap())
    }

    fn u64_at(b: &[u8], off: usize) -> u64 {
        u64::from_ne_bytes(b[off..off + 8].try_into().unwrap())
    }

    /// struct fuse_attr (88 bytes).
    fn attr(nodeid: u64) -> Vec<u8> {
        let mut a = Vec::with_capacity(88);
        let (mode, nlink) = if nodeid == 1 {
            (libc::S_IFDIR | 0o755, 2u32)
        } else {
            (libc::S_IFREG | 0o644, 1u32)
        };
        for v in [nodeid, 0, 0, 0, 0, 0] {
            a.extend_from_slice(&v.to_ne_bytes());
        }
        for v in [0u32, 0, 0, mode, nlink, 0, 0, 0, 4096, 0] {
            a.extend_from_slice(&v.to_ne_bytes());
        }
        a
    }

    fn reply(dev: i32, unique: u64, error: i32, body: &[u8]) {
        let mut out = Vec::with_capacity(16 + body.len());
        out.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        out.extend_from_slice(&error.to_ne_bytes());
        out.extend_from_slice(&unique.to_ne_bytes());
        out.extend_from_slice(body);
        // SAFETY: writing a valid buffer.
        unsafe { libc::write(dev, out.as_ptr().cast(), out.len()) };
    }

    /// Answers one request.
    pub(super) fn answer(dev: i32, req: &[u8]) {
        let (opcode, unique, nodeid) = (u32_at(req, 4), u64_at(req, 8), u64_at(req, 16));
        let arg = &req[40..];
        match opcode {
            INIT => {
                let mut b = Vec::new();
                // major, minor, max_readahead, flags
                for v in [7u32, 31, 0, 0] {
                    b.extend_from_slice(&v.to_ne_bytes());
                }
                b.extend_from_slice(&1u16.to_ne_bytes()); // max_background
                b.extend_from_slice(&1u16.to_ne_bytes()); // congestion_threshold
                b.extend_from_slice(&131072u32.to_ne_bytes()); // max_write
                b.extend_from_slice(&1u32.to_ne_bytes()); // time_gran
                b.resize(64, 0);
                reply(dev, unique, 0, &b);
            }
            LOOKUP if nodeid == 1 && arg.starts_with(b"f\0") => {
                let mut b = Vec::new();
                for v in [2u64, 0, 0, 0] {
                    b.extend_from_slice(&v.to_ne_bytes()); // nodeid, generation, entry/attr valid
                }
                b.extend_from_slice(&[0u8; 8]); // nsecs
                b.extend_from_slice(&attr(2));
                reply(dev, unique, 0, &b);
            }
            LOOKUP => reply(dev, unique, -libc::ENOENT, &[]),
            GETATTR => {
                let mut b = vec![0u8; 16]; // attr_valid 0: no caching
                b.extend_from_slice(&attr(nodeid));
                reply(dev, unique, 0, &b);
            }
            OPEN => reply(dev, unique, 0, &[0u8; 16]),
            FLUSH | RELEASE => reply(dev, unique, 0, &[]),
            FORGET | BATCH_FORGET | INTERRUPT => {}
            _ => reply(dev, unique, -libc::ENOSYS, &[]),
        }
    }

    /// Serves until `ctl` becomes readable, then stops answering for good.
    fn serve(dev: i32, ctl: i32) {
        let mut buf = vec![0u8; 1 << 21];
        loop {
            let mut fds = [
                libc::pollfd {
                    fd: dev,
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: ctl,
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: two valid pollfds.
            unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
            if fds[1].revents != 0 {
                loop {
                    // SAFETY: pause takes no arguments.
                    unsafe { libc::pause() };
                }
            }
            // SAFETY: reading into a valid buffer.
            let n = unsafe { libc::read(dev, buf.as_mut_ptr().cast(), buf.len()) };
            if n >= 40 {
                answer(dev, &buf[..n as usize]);
            } else if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENODEV)
            {
                // SAFETY: _exit in a forked child.
                unsafe { libc::_exit(0) };
            }
        }
    }

    pub(super) fn cstr(s: &str) -> CString {
        CString::new(s).unwrap()
    }

    /// Mounts a FUSE filesystem on a new directory under /tmp in a private
    /// mount namespace; returns the directory and the `/dev/fuse` fd.
    pub(super) fn mount() -> (String, i32) {
        // SAFETY: unshare and mount with valid C strings or null pointers.
        unsafe {
            check("unshare(CLONE_NEWNS)", libc::unshare(libc::CLONE_NEWNS));
            check(
                "mount --make-rprivate /",
                libc::mount(
                    std::ptr::null(),
                    cstr("/").as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ),
            );
        }
        let dir = format!("/tmp/kcmp-fuse-{}", std::process::id());
        let _ = std::fs::create_dir(&dir);
        // SAFETY: open with a valid C string.
        let dev = check("open /dev/fuse", unsafe {
            libc::open(cstr("/dev/fuse").as_ptr(), libc::O_RDWR)
        });
        let opts = cstr(&format!(
            "fd={dev},rootmode=40000,user_id=0,group_id=0,allow_other"
        ));
        // SAFETY: mount with valid C strings.
        check("mount fuse", unsafe {
            libc::mount(
                cstr("kcmp-fixture").as_ptr(),
                cstr(&dir).as_ptr(),
                cstr("fuse").as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                opts.as_ptr().cast(),
            )
        });
        (dir, dev)
    }

    pub fn run() {
        let (dir, dev) = mount();
        let mut ctl = [0i32; 2];
        // SAFETY: pipe fills two ints.
        check("pipe", unsafe { libc::pipe(ctl.as_mut_ptr()) });
        let server = fork_with(|| serve(dev, ctl[0]));
        // SAFETY: closing fds this process owns.
        unsafe {
            libc::close(dev);
            libc::close(ctl[0]);
        }
        // SAFETY: open/mkfifo/epoll with valid C strings and structs.
        let (file, fifo, epfd) = unsafe {
            let file = check(
                "open the FUSE file",
                libc::open(cstr(&format!("{dir}/f")).as_ptr(), libc::O_RDONLY),
            );
            let fifo_path = cstr(&format!("{dir}.fifo"));
            check("mkfifo", libc::mkfifo(fifo_path.as_ptr(), 0o600));
            let fifo = check("open fifo", libc::open(fifo_path.as_ptr(), libc::O_RDWR));
            let epfd = check("epoll_create1", libc::epoll_create1(0));
            let mut ev = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: 7,
            };
            check(
                "epoll_ctl",
                libc::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, fifo, &mut ev),
            );
            // The FUSE file itself too (the server answers its POLL with
            // ENOSYS: the kernel then polls it as always ready).
            let mut ev = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: 8,
            };
            check(
                "epoll_ctl on the FUSE file",
                libc::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, file, &mut ev),
            );
            (file, fifo, epfd)
        };
        // A second fd of the FUSE file's description: the scan groups the
        // two (a bucket of two), and holders finds both. A copy of it taken
        // and closed by kcmp would send FLUSH to the hung server.
        // SAFETY: dup of an fd this process owns.
        let dup = check("dup the FUSE file", unsafe { libc::dup(file) });
        // From now on the server answers nothing.
        // SAFETY: writing one byte from a valid buffer.
        unsafe { libc::write(ctl[1], b"x".as_ptr().cast(), 1) };
        println!(
            "{{\"server\": {server}, \"holder\": {}, \"epfd\": {epfd}, \"fuse_fd\": {file}, \
             \"fifo_fd\": {fifo}, \"fuse_dup\": {dup}, \"mount\": \"{dir}\"}}",
            std::process::id()
        );
        wait_stdin_eof();
        // Killing the server aborts the connection (the device's last fd
        // closes), so the close of the file below does not wait for it.
        // SAFETY: kill/waitpid/umount2 with integers and a valid C string.
        unsafe {
            libc::kill(server, libc::SIGKILL);
            libc::waitpid(server, std::ptr::null_mut(), 0);
            libc::umount2(cstr(&dir).as_ptr(), libc::MNT_DETACH);
        }
        let _ = std::fs::remove_dir(&dir);
        let _ = std::fs::remove_file(format!("{dir}.fifo"));
    }
}
