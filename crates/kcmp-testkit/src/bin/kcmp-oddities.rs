//! `kcmp-oddities MODE`: processes an adversarial user would build, each
//! printing one line of JSON (its truth) and waiting for EOF on stdin.
//!
//! - `opath-socket`: a socketpair end `socket` and an `O_PATH` reopen of it
//!   (`/proc/self/fd/N`), `opath`: a second description with the same
//!   `socket:[ino]` link text; a child inherits both.
//! - `main-exit`: the main thread calls `pthread_exit` while a thread lives
//!   on holding the read end `read` of a pipe whose write end `write` only
//!   the child `child` holds.
//! - `own-table`: a thread `tid` unshares its fd table (`CLONE_FILES`) and
//!   opens a pipe (`read`, `write`) that only its table holds, and an epoll
//!   instance `epoll` watching `read` (also held as `dup`).
//! - `long-path`: fd `long` open on a file whose path is longer than
//!   PATH_MAX (built with mkdirat/openat), next to a pipe end `pipe` shared
//!   with a child `child`.
//! - `many N`: N children (`children`) sharing one pipe end `pipe` with the
//!   parent.
//! - `limit N PROGRAM ARGS...`: sets RLIMIT_NOFILE to N (soft and hard),
//!   then execs PROGRAM (an absolute path).

use std::ffi::CString;
use std::io::{Read, Write};

fn check(r: i32, what: &str) -> i32 {
    if r < 0 {
        eprintln!("kcmp-oddities: {what}: {}", std::io::Error::last_os_error());
        std::process::exit(1);
    }
    r
}

fn pipe() -> (i32, i32) {
    let mut fds = [0i32; 2];
    // SAFETY: pipe writes two ints into a live array.
    check(unsafe { libc::pipe(fds.as_mut_ptr()) }, "pipe");
    (fds[0], fds[1])
}

/// Forks a child that waits for its parent's death (PDEATHSIG) after
/// running `then`; returns its pid. Called while single-threaded, or with
/// a `then` that is async-signal-safe.
fn fork_waiting(then: impl FnOnce()) -> i32 {
    // SAFETY: single-threaded, or the child runs only async-signal-safe
    // calls (see above).
    let pid = check(unsafe { libc::fork() }, "fork");
    if pid == 0 {
        // SAFETY: prctl and pause take integers only.
        unsafe {
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            )
        };
        then();
        loop {
            // SAFETY: pause has no arguments.
            unsafe { libc::pause() };
        }
    }
    pid
}

fn close(fd: i32) {
    // SAFETY: closes an fd this process owns.
    unsafe { libc::close(fd) };
}

fn announce(json: String) {
    println!("{json}");
    let _ = std::io::stdout().flush();
}

fn wait_eof() {
    let mut buf = [0u8; 64];
    while matches!(std::io::stdin().read(&mut buf), Ok(n) if n > 0) {}
}

fn me() -> i32 {
    std::process::id() as i32
}

fn opath_socket() {
    let mut sv = [0i32; 2];
    // SAFETY: socketpair writes two ints into a live array.
    check(
        unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, sv.as_mut_ptr()) },
        "socketpair",
    );
    let path = CString::new(format!("/proc/self/fd/{}", sv[0])).unwrap();
    // SAFETY: path is a valid C string.
    let opath = check(
        unsafe { libc::open(path.as_ptr(), libc::O_PATH) },
        "open O_PATH",
    );
    let child = fork_waiting(|| {});
    announce(format!(
        "{{\"pid\":{},\"child\":{child},\"socket\":{},\"opath\":{opath}}}",
        me(),
        sv[0]
    ));
    wait_eof();
}

fn main_exit() {
    // The child is forked by the thread that lives on: PR_SET_PDEATHSIG
    // follows the thread that forked, not the process.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (r, w) = pipe();
        // SAFETY: the child calls only close, prctl and pause
        // (async-signal-safe) before it dies with this process.
        let child = fork_waiting(|| close(r));
        close(w);
        tx.send(()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        announce(format!(
            "{{\"pid\":{},\"child\":{child},\"read\":{r},\"write\":{w}}}",
            me()
        ));
        wait_eof();
        std::process::exit(0);
    });
    rx.recv().unwrap();
    // The main thread exits (SYS_exit ends one thread, as pthread_exit
    // does, without unwinding through Rust frames); the spawned thread
    // keeps the process alive and exits it on EOF.
    // SAFETY: exit takes an integer; no Rust frame of this thread runs again.
    unsafe { libc::syscall(libc::SYS_exit, 0) };
}

fn own_table() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // SAFETY: unshare takes flags only; affects this thread's table.
        check(
            unsafe { libc::unshare(libc::CLONE_FILES) },
            "unshare(CLONE_FILES)",
        );
        let (r, w) = pipe();
        // SAFETY: epoll_create1 takes flags; epoll_ctl reads one live event.
        let ep = check(unsafe { libc::epoll_create1(0) }, "epoll_create1");
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: 7,
        };
        // SAFETY: ep and r are open; ev is a live local.
        check(
            unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, r, &mut ev) },
            "epoll_ctl",
        );
        // SAFETY: dup takes an open fd; gettid has no arguments.
        let (dup, tid) = unsafe { (check(libc::dup(r), "dup"), libc::gettid()) };
        tx.send((tid, r, w, ep, dup)).unwrap();
        loop {
            std::thread::park();
        }
    });
    let (tid, r, w, ep, dup) = rx.recv().unwrap();
    announce(format!(
        "{{\"pid\":{},\"tid\":{tid},\"read\":{r},\"write\":{w},\"epoll\":{ep},\"dup\":{dup}}}",
        me()
    ));
    wait_eof();
}

fn long_path() {
    let base = format!("/tmp/kcmp-long-{}", me());
    std::fs::create_dir_all(&base).unwrap();
    let name = CString::new("d".repeat(200)).unwrap();
    let mut dir = check(
        // SAFETY: a valid C string path.
        unsafe {
            libc::open(
                CString::new(base.clone()).unwrap().as_ptr(),
                libc::O_DIRECTORY,
            )
        },
        "open base",
    );
    for _ in 0..25 {
        // SAFETY: dir is open; name is a valid C string.
        unsafe { libc::mkdirat(dir, name.as_ptr(), 0o700) };
        let next = check(
            unsafe { libc::openat(dir, name.as_ptr(), libc::O_DIRECTORY) },
            "openat",
        );
        close(dir);
        dir = next;
    }
    let file = CString::new("f").unwrap();
    // SAFETY: dir is open; file is a valid C string.
    let long = check(
        unsafe { libc::openat(dir, file.as_ptr(), libc::O_CREAT | libc::O_RDWR, 0o600) },
        "openat f",
    );
    close(dir);
    let (r, w) = pipe();
    let child = fork_waiting(|| {});
    announce(format!(
        "{{\"pid\":{},\"child\":{child},\"long\":{long},\"pipe\":{r},\"write\":{w}}}",
        me()
    ));
    wait_eof();
    let _ = std::process::Command::new("/bin/rm")
        .args(["-rf", &base])
        .status();
}

fn many(n: usize) {
    let (r, _w) = pipe();
    let children: Vec<String> = (0..n).map(|_| fork_waiting(|| {}).to_string()).collect();
    announce(format!(
        "{{\"pid\":{},\"pipe\":{r},\"children\":[{}]}}",
        me(),
        children.join(",")
    ));
    wait_eof();
}

fn limit(n: u64, program: &str, args: &[String]) {
    let lim = libc::rlimit {
        rlim_cur: n,
        rlim_max: n,
    };
    // SAFETY: setrlimit reads one live struct.
    check(
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) },
        "setrlimit",
    );
    let err =
        std::os::unix::process::CommandExt::exec(std::process::Command::new(program).args(args));
    eprintln!("kcmp-oddities: exec {program}: {err}");
    std::process::exit(1);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize| args.get(i).and_then(|v| v.parse::<u64>().ok());
    match args.first().map(String::as_str) {
        Some("opath-socket") => opath_socket(),
        Some("main-exit") => main_exit(),
        Some("own-table") => own_table(),
        Some("long-path") => long_path(),
        Some("many") if num(1).is_some() => many(num(1).unwrap() as usize),
        Some("limit") if num(1).is_some() && args.len() > 2 => {
            limit(num(1).unwrap(), &args[2], &args[3..])
        }
        _ => {
            eprintln!("usage: kcmp-oddities opath-socket|main-exit|own-table|long-path|many N|limit N PROGRAM ARGS...");
            std::process::exit(2);
        }
    }
}
