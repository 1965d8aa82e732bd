//! `kcmp-churn [--procs N]`: a load for stress tests (`--stable MODE`: stable
//! fds amid churn, with their truth; see `stable.rs`). Keeps N child
//! processes busy forking, exiting, creating threads and opening, dup'ing,
//! passing and closing fds, continuously, until its stdin reaches EOF (then
//! it kills and reaps everything and exits 0).
//!
//! Prints `ready <pid>` on stdout once the first children run. Every child
//! has `PR_SET_PDEATHSIG(SIGKILL)`, so nothing outlives a killed churner.
//! The churner itself stays single-threaded (it forks); children may start
//! threads.

mod stable;

use rustix::fd::OwnedFd;
use rustix::fs::{Mode, OFlags};
use std::io::{Read, Write};
use std::time::Duration;

/// A tiny xorshift generator (deterministic per seed, no dependency).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One random fd operation on `fds`.
fn fd_step(rng: &mut Rng, fds: &mut Vec<OwnedFd>) {
    match rng.below(6) {
        0 => {
            if let Ok(f) =
                rustix::fs::open("/dev/null", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            {
                fds.push(f);
            }
        }
        1 => {
            if let Ok((r, w)) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC) {
                fds.push(r);
                fds.push(w);
            }
        }
        2 | 3 if !fds.is_empty() => {
            let i = rng.below(fds.len() as u64) as usize;
            if let Ok(d) = fds[i].try_clone() {
                fds.push(d);
            }
        }
        _ if !fds.is_empty() => {
            let i = rng.below(fds.len() as u64) as usize;
            fds.swap_remove(i);
        }
        _ => {}
    }
    if fds.len() > 40 {
        fds.truncate(20);
    }
}

/// The life of one child: a short burst of fd churn, maybe threads and a
/// grandchild, then exit.
fn child_life(seed: u64) -> ! {
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
    let mut rng = Rng(seed | 1);
    let mut fds = Vec::new();
    let steps = 20 + rng.below(200);
    let mut threads = Vec::new();
    for step in 0..steps {
        fd_step(&mut rng, &mut fds);
        if step % 25 == 0 && rng.below(3) == 0 {
            let s = rng.next();
            threads.push(std::thread::spawn(move || {
                let mut rng = Rng(s | 1);
                let mut fds = Vec::new();
                for _ in 0..rng.below(50) {
                    fd_step(&mut rng, &mut fds);
                    std::thread::sleep(Duration::from_micros(200));
                }
            }));
        }
        std::thread::sleep(Duration::from_micros(100 + rng.below(400)));
    }
    for t in threads {
        let _ = t.join();
    }
    // SAFETY: _exit ends the process at once, without running the parent's
    // atexit handlers or flushing stdio buffers copied from it by fork.
    unsafe { libc::_exit(0) }
}

fn fork_child(seed: u64) -> Option<i32> {
    // SAFETY: the churner is single-threaded when it forks (children start
    // threads only after the fork, in their own process), so the child may
    // use the allocator and std freely.
    let pid = unsafe { libc::fork() };
    match pid {
        0 => child_life(seed),
        p if p > 0 => Some(p),
        _ => None,
    }
}

fn main() {
    let mut procs = 6usize;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--stable" => {
                stable::run(args.get(i + 1).map_or("", String::as_str));
                return;
            }
            "--procs" => {
                procs = args
                    .get(i + 1)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| {
                        eprintln!("kcmp-churn: --procs needs a number");
                        std::process::exit(2)
                    });
                i += 2;
            }
            other => {
                eprintln!("kcmp-churn: unknown argument {other:?} (usage: kcmp-churn [--procs N])");
                std::process::exit(2);
            }
        }
    }
    // EOF on stdin ends the churn: a reader thread would make the churner
    // multi-threaded, so poll stdin without blocking instead.
    let stdin = std::io::stdin();
    let _ = rustix::io::ioctl_fionbio(&stdin, true);
    let mut rng = Rng((std::process::id() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut children: Vec<i32> = Vec::new();
    let mut own_fds = Vec::new();
    let mut announced = false;
    loop {
        while children.len() < procs {
            match fork_child(rng.next()) {
                Some(p) => children.push(p),
                None => break,
            }
        }
        if !announced {
            println!("ready {}", std::process::id());
            let _ = std::io::stdout().flush();
            announced = true;
        }
        // Reap whoever exited.
        children.retain(|&p| {
            let mut status = 0;
            // SAFETY: waitpid writes one int into `status`, a live local.
            let r = unsafe { libc::waitpid(p, &mut status, libc::WNOHANG) };
            r == 0
        });
        fd_step(&mut rng, &mut own_fds);
        let mut buf = [0u8; 64];
        match stdin.lock().read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => break,
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    for &p in &children {
        // SAFETY: kill and waitpid take integers (and one live out-pointer).
        unsafe {
            libc::kill(p, libc::SIGKILL);
            let mut status = 0;
            libc::waitpid(p, &mut status, 0);
        }
    }
}
