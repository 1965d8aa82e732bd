//! `kcmp-churn --stable MODE`: stable fds next to churn, with the truth.
//!
//! The churner (P) opens a file F twice: description A on fds 40 and 41
//! (a dup), description B on fds 42 and 43 (a second `open()`), then forks
//! a child C that inherits all four. These eight (pid, fd) pairs never
//! change. Meanwhile, by MODE:
//! - `dup2`: P and C switch fds 30..37 between A and B with `dup2`;
//! - `open-close`: P and C open F (new descriptions) and close them again;
//! - `fork-exit`: P forks children that inherit everything, move one stable
//!   fd onto another stable number, and exit;
//! - `rename`: a process R (not P's tree: started before P opened F, and
//!   not listed in the truth) renames F between two names;
//! - `dup2-many`: `dup2`, and P also holds [`MANY`] more descriptions of F
//!   (separate `open()`s on fds 50.., inherited by C), so that F's bucket is
//!   mostly distinct descriptions: the engine then places its fds by
//!   searching with its own copy first. Each of them is held by exactly
//!   (P, n) and (C, n); the truth lists them as `"many"`;
//! - `memfd`: `dup2`, but A and B are two memfds of one name (one link
//!   text, `/memfd:kcmp-churn (deleted)`), whose mount (fdinfo `mnt_id` 0
//!   on Linux 6.x, the internal shmem mount) is in no mount table;
//! - `pipe-many`: `dup2`, but A and B are the two ends of one pipe, and the
//!   [`MANY`] more descriptions are reopens of it (`/proc/self/fd/N`,
//!   `O_RDWR`): one bucket (`pipe:[ino]`) of mostly distinct descriptions
//!   without a path, copied first;
//! - `pipe-swap-many`: `pipe-many`, and P also holds a dup of each of them
//!   at `n + DUPS` (found among its own descriptions); C swaps each pair
//!   (n, n ^ 1) of them right after the fork (before the truth is printed),
//!   so that its inheritance hints for them miss: description n is held by
//!   (P, n), (P, n + DUPS), (C, partner n) and (C, n + DUPS), with
//!   `"swap": true` in the truth;
//! - `pipe-big-many`: `pipe-many` with [`MANY_BIG`] extra descriptions: a
//!   bucket of over 1024 fds, grouped in parts on all workers and merged.
//!
//! Prints `{"parent": P, "child": C, "a": [[pid, fd]...], "b": [...],
//! "helper": R or 0, "dir": D}` and churns until stdin reaches EOF.

use std::ffi::CString;
use std::io::{Read, Write};

/// The fds that `dup2` churn switches: below the stable ones, so that a
/// grouping which takes the lowest fd as representative meets them first.
const CHURN: i32 = 30;

/// The extra stable descriptions of `dup2-many`, on fds `MANY_BASE..`.
const MANY: i32 = 40;
const MANY_BASE: i32 = 50;

/// The extra descriptions of `pipe-big-many`.
const MANY_BIG: i32 = 600;

/// `pipe-swap-many`: P's dup of each extra description n is on `n + DUPS`.
const DUPS: i32 = 100;

/// The stable fds of description A and B.
const A: [i32; 2] = [40, 41];
const B: [i32; 2] = [42, 43];

/// Sets PR_SET_PDEATHSIG(SIGKILL) for the calling (child) process.
fn die_with_parent() {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes integer arguments only.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
}

fn open_rw(path: &CString) -> i32 {
    // SAFETY: path is a valid NUL-terminated string.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CREAT, 0o600) };
    assert!(
        fd >= 0,
        "open {path:?}: {}",
        std::io::Error::last_os_error()
    );
    fd
}

/// A new memfd named `kcmp-churn` (every one has the same link text).
fn memfd() -> i32 {
    let name = CString::new("kcmp-churn").unwrap();
    // SAFETY: name is a valid NUL-terminated string.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), 0) };
    assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
    fd
}

fn dup_to(from: i32, to: i32) {
    // SAFETY: dup2 and close take integers; `from` is open.
    unsafe {
        assert!(libc::dup2(from, to) == to, "dup2");
    }
}

fn close(fd: i32) {
    // SAFETY: close takes an integer; closing an fd this process owns.
    unsafe { libc::close(fd) };
}

/// A tiny xorshift generator.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// One churn step of MODE in the calling process; `extra` holds the fds
/// opened by `open-close`.
fn step(mode: &str, rng: &mut u64, file: &CString, extra: &mut Vec<i32>) {
    match mode {
        "dup2" | "dup2-many" | "memfd" | "pipe-many" | "pipe-swap-many" | "pipe-big-many" => {
            let r = next(rng);
            let from = if r & 1 == 0 { A[0] } else { B[0] };
            dup_to(from, CHURN + ((r >> 1) % 8) as i32);
        }
        "open-close" => {
            if extra.len() < 8 && next(rng) & 1 == 0 {
                extra.push(open_rw(file));
            } else if !extra.is_empty() {
                let i = (next(rng) % extra.len() as u64) as usize;
                close(extra.swap_remove(i));
            }
        }
        "fork-exit" => fork_exit_step(rng, extra),
        _ => std::thread::yield_now(),
    }
}

/// Forks a child that, a while later, moves one inherited stable fd onto
/// another stable number (a child's fd 40 may then be B) and exits; reaps
/// the children that exited. At most eight live at once (`kids`).
fn fork_exit_step(rng: &mut u64, kids: &mut Vec<i32>) {
    kids.retain(|&k| {
        let mut status = 0;
        // SAFETY: waitpid writes one int into a live local.
        unsafe { libc::waitpid(k, &mut status, libc::WNOHANG) == 0 }
    });
    if kids.len() >= 8 {
        std::thread::yield_now();
        return;
    }
    let r = next(rng);
    // SAFETY: this process is single-threaded; the child calls only
    // nanosleep, dup2 and _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // A while after the fork (a scan may be listing or grouping this
        // child by then), one stable number takes another description.
        let nap = |ns: u64| std::thread::sleep(std::time::Duration::from_nanos(ns));
        nap((r >> 4) % 10_000_000);
        let stable = [A[0], A[1], B[0], B[1]];
        dup_to(stable[(r % 4) as usize], stable[((r >> 2) % 4) as usize]);
        nap((r >> 28) % 10_000_000);
        // SAFETY: _exit ends the child at once.
        unsafe { libc::_exit(0) };
    }
    if pid > 0 {
        kids.push(pid);
    }
}

/// True when stdin has reached EOF (stdin is non-blocking).
fn stdin_closed() -> bool {
    let mut buf = [0u8; 64];
    match std::io::stdin().lock().read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

/// The renamer: F and G swap names until killed (PDEATHSIG).
fn renamer(dir: &str) -> ! {
    die_with_parent();
    let (f, g) = (
        CString::new(format!("{dir}/f")).unwrap(),
        CString::new(format!("{dir}/g")).unwrap(),
    );
    loop {
        // SAFETY: both paths are valid NUL-terminated strings.
        unsafe {
            libc::rename(f.as_ptr(), g.as_ptr());
            libc::rename(g.as_ptr(), f.as_ptr());
        }
    }
}

/// Runs MODE until stdin reaches EOF.
pub fn run(mode: &str) {
    let modes = [
        "dup2",
        "dup2-many",
        "open-close",
        "fork-exit",
        "rename",
        "memfd",
        "pipe-many",
        "pipe-swap-many",
        "pipe-big-many",
    ];
    if !modes.contains(&mode) {
        eprintln!(
            "kcmp-churn: unknown --stable mode {mode:?} (dup2, dup2-many, open-close, fork-exit, rename, memfd, pipe-many, pipe-swap-many, pipe-big-many)"
        );
        std::process::exit(2);
    }
    let dir = format!("/tmp/kcmp-churn-{}", std::process::id());
    std::fs::create_dir_all(&dir).expect("create the churn directory");
    let file = CString::new(format!("{dir}/f")).unwrap();
    let (a, b) = match mode {
        "memfd" => (memfd(), memfd()),
        "pipe-many" | "pipe-swap-many" | "pipe-big-many" => {
            let mut ends = [0; 2];
            // SAFETY: pipe writes two ints into a live local array.
            assert!(unsafe { libc::pipe(ends.as_mut_ptr()) } == 0, "pipe");
            (ends[0], ends[1])
        }
        _ => (open_rw(&file), open_rw(&file)),
    };
    dup_to(a, A[0]);
    dup_to(a, A[1]);
    dup_to(b, B[0]);
    dup_to(b, B[1]);
    close(a);
    close(b);
    let many = match mode {
        "pipe-big-many" => MANY_BIG,
        _ if mode.ends_with("-many") => MANY,
        _ => 0,
    };
    let reopen = CString::new(format!("/proc/self/fd/{}", A[0])).unwrap();
    for n in MANY_BASE..MANY_BASE + many {
        let fd = open_rw(if mode.starts_with("pipe") {
            &reopen
        } else {
            &file
        });
        dup_to(fd, n);
        close(fd);
        if mode == "pipe-swap-many" {
            dup_to(n, n + DUPS);
        }
    }
    let swap = mode == "pipe-swap-many";
    let mut sync = [0; 2];
    // SAFETY: pipe writes two ints into a live local array.
    assert!(unsafe { libc::pipe(sync.as_mut_ptr()) } == 0, "pipe");
    let helper = if mode == "rename" {
        // SAFETY: single-threaded; the child runs `renamer` only.
        match unsafe { libc::fork() } {
            0 => renamer(&dir),
            p => p,
        }
    } else {
        0
    };
    let stdin = std::io::stdin();
    let _ = rustix::io::ioctl_fionbio(&stdin, true);
    // SAFETY: single-threaded; the child churns until its parent dies.
    let child = unsafe { libc::fork() };
    if child == 0 {
        die_with_parent();
        if swap {
            for n in (MANY_BASE..MANY_BASE + many).step_by(2) {
                dup_to(n, 1000);
                dup_to(n + 1, n);
                dup_to(1000, n + 1);
                close(1000);
            }
        }
        // SAFETY: writes one byte from a live local; then closes own fds.
        unsafe {
            libc::write(sync[1], b"r".as_ptr().cast(), 1);
            libc::close(sync[0]);
            libc::close(sync[1]);
        }
        let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ std::process::id() as u64;
        let mut extra = Vec::new();
        let child_mode = if mode == "fork-exit" { "idle" } else { mode };
        loop {
            step(child_mode, &mut rng, &file, &mut extra);
        }
    }
    let mut byte = [0u8; 1];
    // SAFETY: reads one byte into a live local; then closes own fds.
    unsafe {
        libc::close(sync[1]);
        libc::read(sync[0], byte.as_mut_ptr().cast(), 1);
        libc::close(sync[0]);
    }
    let pairs = |pid: i32, fds: &[i32]| {
        fds.iter()
            .map(|&f| format!("[{pid},{f}]"))
            .collect::<Vec<_>>()
    };
    let me = std::process::id() as i32;
    let a_pairs = [pairs(me, &A), pairs(child, &A)].concat().join(",");
    let b_pairs = [pairs(me, &B), pairs(child, &B)].concat().join(",");
    let many: Vec<String> = (MANY_BASE..MANY_BASE + many)
        .map(|n| n.to_string())
        .collect();
    println!(
        "{{\"parent\":{me},\"child\":{child},\"a\":[{a_pairs}],\"b\":[{b_pairs}],\"helper\":{helper},\"dir\":\"{dir}\",\"many\":[{}],\"swap\":{swap},\"dups\":{DUPS}}}",
        many.join(",")
    );
    let _ = std::io::stdout().flush();
    let mut rng = 0x2545_F491_4F6C_DD1Du64 ^ me as u64;
    let mut extra = Vec::new();
    let mut n = 0u64;
    loop {
        step(mode, &mut rng, &file, &mut extra);
        n += 1;
        if n % 256 == 0 && stdin_closed() {
            break;
        }
    }
    for p in [child, helper] {
        if p > 0 {
            // SAFETY: kill and waitpid take integers and a live out-pointer.
            unsafe {
                libc::kill(p, libc::SIGKILL);
                let mut status = 0;
                libc::waitpid(p, &mut status, 0);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
