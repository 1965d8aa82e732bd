//! `kcmp-topology`: builds real process topologies with KNOWN sharing and
//! prints the truth.
//!
//! ```text
//! kcmp-topology <scenario> [--procs N] [--fds M] [--seed S]
//! scenarios: general (default; N=12 workers, M=10 fds each), bench (N=500, M=100),
//!            prefork (N workers inheriting a few sockets, a log, a pipe),
//!            basic, clone, epoll
//! kcmp-topology shape [--procs N] [--fds M] [--inherit PCT] [--reuse PCT]
//!                     [--opens K] [--depth D] [--paths N] [--seed S]
//! ```
//!
//! `shape` (module `shape`) builds a topology from parameters for the
//! benchmark suite and prints a smaller truth (counts, not every fd).
//!
//! The other scenarios: `args` parses the command line, `scenarios` says
//! what each builds, `root` spawns and reaps the processes, `ctx` is one
//! process's fd table as built, `slots` the memory the children report
//! through, `truth` the JSON decided from it, `sys` the raw calls.
//!
//! Protocol: when every process is in place, one line of JSON (the truth,
//! see `kcmp_testkit::Truth`) is printed on stdout. The fixture then waits
//! for EOF on its stdin, kills and reaps every process it created, removes
//! its temporary directory and exits 0. Every child sets
//! `PR_SET_PDEATHSIG(SIGKILL)`, so nothing outlives a SIGKILLed fixture (the
//! temporary directory would, in `$TMPDIR/kcmp-topology.<pid>`). The SysV
//! semaphore set is removed before the truth is printed: the undo lists of
//! the processes that used it outlive the set, which is all the topology
//! needs, and nothing leaks even on SIGKILL.
//!
//! ## How the truth is decided
//! By construction only: every fd a process holds is recorded with the id of
//! the open file description it was created with (`open`, `pipe`,
//! `socketpair`, `eventfd`, `epoll_create1`) or copied from (`dup`, `dup2`,
//! `F_DUPFD_CLOEXEC`, inheritance through `fork`/`clone`, `SCM_RIGHTS`, whose
//! message carries the description id as data). Nothing is derived from
//! /proc or kcmp; each process merely checks that /proc/self/fd lists exactly
//! the fds it recorded (completeness), and fails loudly otherwise.
//!
//! Children communicate with the root through one `MAP_SHARED` anonymous
//! mapping (no fd), so no synchronisation fd is ever left behind.
//!
//! ## Stdio
//! The root keeps 0, 1 and 2 (stdin: the EOF channel; stdout: the truth;
//! stderr: diagnostics). Every other process keeps only fd 2, inherited from
//! the root (one description, shared with the root), and closes 0 and 1.
//!
//! ## Per-process objects
//! * Threads (Rust std threads, i.e. `pthread_create`) share vm, files, fs,
//!   sighand and — because glibc and musl pass `CLONE_SYSVSEM` — the SysV undo
//!   list, which that clone allocates. They do not pass `CLONE_IO`: a thread
//!   gets its own I/O context only if its process has one with a valid
//!   priority, otherwise none; so threads never share `io`.
//! * `fork`/`clone` without `CLONE_IO` from a process whose I/O context has a
//!   valid priority (after `ioprio_set`) gives the child its own context.
//! * `clone(CLONE_SYSVSEM)` allocates the undo list (if absent) and shares it.
//! * Zombies own no mm, no I/O context, no undo list: they share nothing.
//!   Absent objects are never listed as shared even though kcmp(2) compares
//!   two absent objects "equal".

mod args;
mod ctx;
mod rng;
mod root;
mod scenarios;
mod shape;
mod slots;
mod sys;
mod truth;

use args::{parse_args, shape_of, Args};
use ctx::{Ctx, Kind};
use kcmp_testkit::Truth;
use rng::Rng;
use root::Root;
use scenarios::run;
use slots::shared_slots;
use std::collections::BTreeMap;
use std::io::{Read, Write};

type R<T> = Result<T, String>;

fn e<E: std::fmt::Display>(what: impl std::fmt::Display) -> impl FnOnce(E) -> String {
    move |err| format!("{what}: {err}")
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("kcmp-topology: {msg}");
            std::process::exit(2);
        }
    };
    if args.scenario == "shape" {
        if let Err(msg) = shape_of(&args).validate() {
            eprintln!("kcmp-topology: {msg}");
            std::process::exit(2);
        }
    }
    match main_inner(&args) {
        Ok(()) => std::process::exit(0),
        Err(msg) => {
            eprintln!("kcmp-topology: {msg}");
            std::process::exit(1);
        }
    }
}

fn main_inner(a: &Args) -> R<()> {
    sys::raise_nofile();
    sys::set_child_subreaper().map_err(e("PR_SET_CHILD_SUBREAPER"))?;
    // Drop whatever fds the caller leaked into us: the root keeps 0, 1, 2.
    sys::close_range(3, u32::MAX).map_err(e("close_range"))?;
    if a.scenario == "shape" {
        return shape::main(&shape_of(a));
    }
    let me = std::process::id() as i32;
    let tmp = std::env::temp_dir().join(format!("kcmp-topology.{me}"));
    std::fs::create_dir(&tmp).map_err(e(format!("mkdir {}", tmp.display())))?;
    let data = tmp.join("data");
    let slots = shared_slots(a.procs + 64)?;
    let mut root = Root {
        ctx: Ctx {
            idx: 0,
            slots,
            table: BTreeMap::new(),
            next: 0,
            data: data.clone(),
            sem: -1,
            rng: Rng::new(a.seed, 0),
        },
        labels: vec!["root".into()],
        pids: vec![me],
        zombies: Vec::new(),
        tmp,
        sem: None,
    };
    let result = (|| -> R<Truth> {
        std::fs::write(&data, b"kcmp topology data\n").map_err(e("write data file"))?;
        let sem = sys::sem_create().map_err(e("semget"))?;
        root.sem = Some(sem);
        root.ctx.sem = sem;
        for (fd, kind) in [(0, Kind::Stdin), (1, Kind::Stdout), (2, Kind::Stderr)] {
            root.ctx.add_new(fd, kind, None);
        }
        run(&mut root, a)?;
        root.wait_all()?;
        // The undo lists outlive the set; removing it now leaks nothing later.
        if let Some(id) = root.sem.take() {
            sys::sem_remove(id).map_err(e("semctl IPC_RMID"))?;
        }
        root.ctx.verify()?;
        root.truth(&a.scenario)
    })();
    let truth = match result {
        Ok(t) => t,
        Err(msg) => {
            root.cleanup();
            return Err(msg);
        }
    };
    let line = serde_json::to_string(&truth).map_err(e("json"))?;
    let mut out = std::io::stdout().lock();
    let printed = writeln!(out, "{line}").and_then(|_| out.flush());
    drop(out);
    if printed.is_ok() {
        let mut buf = [0u8; 256];
        let mut stdin = std::io::stdin().lock();
        loop {
            match stdin.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    }
    root.cleanup();
    printed.map_err(e("writing the truth"))
}
