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

mod shape;
mod sys;

use kcmp_testkit::{
    FdRef, FileTruth, Named, PresentTruth, SharedTruth, TaskTruth, Truth, RESOURCES,
};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

type R<T> = Result<T, String>;

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_RECS: usize = 320;
const MAX_TIDS: usize = 8;
const MAX_EXTRA: usize = 4;
const MAX_NUMS: usize = 8;

const READY: u32 = 1;
const FAILED: u32 = 2;

// ---------------------------------------------------------------------------
// Shared memory between the root and its children (all atomics, zero = empty).

#[repr(C)]
struct Str<const N: usize> {
    len: AtomicU32,
    bytes: [AtomicU8; N],
}

impl<const N: usize> Str<N> {
    fn set(&self, s: &str) {
        let b = s.as_bytes();
        let n = b.len().min(N);
        for (i, c) in b[..n].iter().enumerate() {
            self.bytes[i].store(*c, Ordering::Relaxed);
        }
        self.len.store(n as u32, Ordering::Release);
    }
    fn get(&self) -> String {
        let n = self.len.load(Ordering::Acquire) as usize;
        let v: Vec<u8> = self.bytes[..n.min(N)]
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        String::from_utf8_lossy(&v).into_owned()
    }
}

/// One recorded fd: its number, kind, description id and optional name.
#[repr(C)]
struct Rec {
    fd: AtomicI32,
    kind: AtomicU32,
    desc: AtomicU64,
    name: Str<40>,
}

/// A process created by a child (a clone twin or a plain fork).
#[repr(C)]
struct Extra {
    pid: AtomicI32,
    flags: AtomicU64,
    io: AtomicU32,
    undo: AtomicU32,
    name: Str<40>,
}

#[repr(C)]
struct Num {
    value: AtomicI64,
    name: Str<40>,
}

/// Everything one child reports. Written only by that child (and its
/// twins/threads, which touch only `extra_ready` and `tids`).
#[repr(C)]
struct Slot {
    state: AtomicU32,
    extra_ready: AtomicU32,
    has_io: AtomicU32,
    has_undo: AtomicU32,
    ntids: AtomicU32,
    tids: [AtomicI32; MAX_TIDS],
    nextra: AtomicU32,
    extras: [Extra; MAX_EXTRA],
    nnums: AtomicU32,
    nums: [Num; MAX_NUMS],
    nrec: AtomicU32,
    recs: [Rec; MAX_RECS],
    err: Str<400>,
}

fn shared_slots(n: usize) -> R<&'static [Slot]> {
    let len = n * std::mem::size_of::<Slot>();
    let p = sys::shared_zeroed(len).map_err(|e| format!("mmap shared: {e}"))?;
    // SAFETY: `p` is a fresh, page-aligned (so suitably aligned for `Slot`)
    // zero-filled mapping of n * size_of::<Slot>() bytes that is never
    // unmapped. `Slot` consists only of atomics, for which all-zero bytes are
    // a valid value, and all access goes through atomics, so sharing it (also
    // with other processes through MAP_SHARED) is sound.
    Ok(unsafe { std::slice::from_raw_parts(p as *const Slot, n) })
}

// ---------------------------------------------------------------------------
// Kinds of open files.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
enum Kind {
    Stdin = 1,
    Stdout,
    Stderr,
    File,
    OPath,
    PipeR,
    PipeW,
    Socket,
    Eventfd,
    Epoll,
}

impl Kind {
    const ALL: [Kind; 10] = [
        Kind::Stdin,
        Kind::Stdout,
        Kind::Stderr,
        Kind::File,
        Kind::OPath,
        Kind::PipeR,
        Kind::PipeW,
        Kind::Socket,
        Kind::Eventfd,
        Kind::Epoll,
    ];
    fn name(self) -> &'static str {
        match self {
            Kind::Stdin => "stdin",
            Kind::Stdout => "stdout",
            Kind::Stderr => "stderr",
            Kind::File => "file",
            Kind::OPath => "opath",
            Kind::PipeR => "pipe-r",
            Kind::PipeW => "pipe-w",
            Kind::Socket => "socket",
            Kind::Eventfd => "eventfd",
            Kind::Epoll => "epoll",
        }
    }
    fn from_u32(v: u32) -> R<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| *k as u32 == v)
            .ok_or_else(|| format!("bad kind {v}"))
    }
}

// ---------------------------------------------------------------------------
// A process's view of its own fd table, as built.

#[derive(Debug, Clone)]
struct Entry {
    desc: u64,
    kind: Kind,
    name: Option<String>,
}

fn e<E: std::fmt::Display>(what: impl std::fmt::Display) -> impl FnOnce(E) -> String {
    move |err| format!("{what}: {err}")
}

struct Ctx {
    idx: usize,
    slots: &'static [Slot],
    table: BTreeMap<i32, Entry>,
    next: u32,
    data: PathBuf,
    sem: i32,
    rng: Rng,
}

impl Ctx {
    fn slot(&self) -> &'static Slot {
        &self.slots[self.idx]
    }

    /// A new description id: creator slot in the high half, a counter below.
    fn new_desc(&mut self) -> u64 {
        self.next += 1;
        ((self.idx as u64 + 1) << 32) | self.next as u64
    }

    fn add_new(&mut self, fd: i32, kind: Kind, name: Option<&str>) -> i32 {
        let desc = self.new_desc();
        self.insert(fd, desc, kind, name);
        fd
    }

    fn insert(&mut self, fd: i32, desc: u64, kind: Kind, name: Option<&str>) {
        self.table.insert(
            fd,
            Entry {
                desc,
                kind,
                name: name.map(str::to_string),
            },
        );
    }

    fn entry(&self, fd: i32) -> R<Entry> {
        self.table
            .get(&fd)
            .cloned()
            .ok_or_else(|| format!("fd {fd} is not in the plan"))
    }

    fn add_copy(&mut self, new: i32, src: i32, name: Option<&str>) -> R<i32> {
        let en = self.entry(src)?;
        self.insert(new, en.desc, en.kind, name);
        Ok(new)
    }

    fn name(&mut self, fd: i32, name: &str) -> R<()> {
        let en = self
            .table
            .get_mut(&fd)
            .ok_or_else(|| format!("naming fd {fd}: not open"))?;
        en.name = Some(name.to_string());
        Ok(())
    }

    fn number(&self, name: &str, value: i64) -> R<()> {
        let s = self.slot();
        let k = s.nnums.load(Ordering::Relaxed) as usize;
        if k >= MAX_NUMS {
            return Err("too many named numbers".into());
        }
        s.nums[k].value.store(value, Ordering::Relaxed);
        s.nums[k].name.set(name);
        s.nnums.store(k as u32 + 1, Ordering::Release);
        Ok(())
    }

    fn open_path(&mut self, path: &Path, flags: i32, name: Option<&str>) -> R<i32> {
        let fd = sys::open(path, flags).map_err(e(format!("open {}", path.display())))?;
        let kind = if flags & libc::O_PATH != 0 {
            Kind::OPath
        } else {
            Kind::File
        };
        Ok(self.add_new(fd, kind, name))
    }

    /// A separate `open()` of the data file: always a new description.
    fn open_data(&mut self, flags: i32, name: Option<&str>) -> R<i32> {
        let path = self.data.clone();
        self.open_path(&path, flags, name)
    }

    fn pipe(&mut self, names: (Option<&str>, Option<&str>)) -> R<(i32, i32)> {
        let (r, w) = sys::pipe().map_err(e("pipe"))?;
        self.add_new(r, Kind::PipeR, names.0);
        self.add_new(w, Kind::PipeW, names.1);
        Ok((r, w))
    }

    fn socketpair(&mut self, ty: i32, names: (Option<&str>, Option<&str>)) -> R<(i32, i32)> {
        let (a, b) = sys::socketpair(ty).map_err(e("socketpair"))?;
        self.add_new(a, Kind::Socket, names.0);
        self.add_new(b, Kind::Socket, names.1);
        Ok((a, b))
    }

    fn eventfd(&mut self, name: Option<&str>) -> R<i32> {
        let fd = sys::eventfd().map_err(e("eventfd"))?;
        Ok(self.add_new(fd, Kind::Eventfd, name))
    }

    fn epoll(&mut self, name: Option<&str>) -> R<i32> {
        let fd = sys::epoll_create().map_err(e("epoll_create1"))?;
        Ok(self.add_new(fd, Kind::Epoll, name))
    }

    fn dup(&mut self, src: i32, name: Option<&str>) -> R<i32> {
        let fd = sys::dup(src).map_err(e(format!("dup({src})")))?;
        self.add_copy(fd, src, name)
    }

    fn dup2(&mut self, src: i32, new: i32, name: Option<&str>) -> R<i32> {
        let fd = sys::dup2(src, new).map_err(e(format!("dup2({src}, {new})")))?;
        self.add_copy(fd, src, name)
    }

    fn dupfd_cloexec(&mut self, src: i32, min: i32, name: Option<&str>) -> R<i32> {
        let fd = sys::dupfd_cloexec(src, min).map_err(e(format!("F_DUPFD_CLOEXEC {src}")))?;
        self.add_copy(fd, src, name)
    }

    fn close(&mut self, fd: i32) -> R<()> {
        sys::close(fd).map_err(e(format!("close({fd})")))?;
        self.table.remove(&fd);
        Ok(())
    }

    /// Keeps only `keep` of the inherited fds: closes every other fd number.
    fn keep_only(&mut self, keep: &BTreeSet<i32>) -> R<()> {
        let mut lo = 0u32;
        for &fd in keep {
            if !self.table.contains_key(&fd) {
                return Err(format!("keep_only: fd {fd} was not inherited"));
            }
            if fd as u32 > lo {
                sys::close_range(lo, fd as u32 - 1).map_err(e("close_range"))?;
            }
            lo = fd as u32 + 1;
        }
        sys::close_range(lo, u32::MAX).map_err(e("close_range"))?;
        self.table.retain(|fd, _| keep.contains(fd));
        Ok(())
    }

    fn free_fd_above(&self, min: i32) -> i32 {
        let mut n = min;
        while self.table.contains_key(&n) {
            n += 1;
        }
        n
    }

    /// Checks that /proc/self/fd lists exactly the planned fds.
    fn verify(&self) -> R<()> {
        let listed: Vec<i32> = std::fs::read_dir("/proc/self/fd")
            .map_err(e("read /proc/self/fd"))?
            .filter_map(|d| d.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        // The directory's own fd appeared in the listing; it is closed now.
        let actual: BTreeSet<i32> = listed
            .into_iter()
            .filter(|fd| self.table.contains_key(fd) || sys::fd_is_open(*fd))
            .collect();
        let planned: BTreeSet<i32> = self.table.keys().copied().collect();
        if actual != planned {
            return Err(format!(
                "fd table differs from the plan: unplanned {:?}, missing {:?}",
                actual.difference(&planned).collect::<Vec<_>>(),
                planned.difference(&actual).collect::<Vec<_>>()
            ));
        }
        Ok(())
    }

    fn publish(&self) -> R<()> {
        let s = self.slot();
        if self.table.len() > MAX_RECS {
            return Err(format!("{} fds, at most {MAX_RECS}", self.table.len()));
        }
        for (i, (fd, en)) in self.table.iter().enumerate() {
            let r = &s.recs[i];
            r.fd.store(*fd, Ordering::Relaxed);
            r.kind.store(en.kind as u32, Ordering::Relaxed);
            r.desc.store(en.desc, Ordering::Relaxed);
            r.name.set(en.name.as_deref().unwrap_or(""));
        }
        s.nrec.store(self.table.len() as u32, Ordering::Release);
        Ok(())
    }

    fn ioprio(&mut self) -> R<()> {
        sys::ioprio_set_be4().map_err(e("ioprio_set"))?;
        self.slot().has_io.store(1, Ordering::Release);
        Ok(())
    }

    fn sem_undo(&mut self) -> R<()> {
        sys::sem_up_undo(self.sem).map_err(e("semop SEM_UNDO"))?;
        self.slot().has_undo.store(1, Ordering::Release);
        Ok(())
    }

    /// Creates a process sharing what `flags` says (0: a plain fork). It
    /// copies (or, with CLONE_FILES, shares) this process's fd table as it is
    /// now, so call this after the table is final.
    fn twin(&mut self, flags: u64, name: &str) -> R<i32> {
        let s = self.slot();
        let k = s.nextra.load(Ordering::Relaxed) as usize;
        if k >= MAX_EXTRA {
            return Err("too many twins".into());
        }
        let me = std::process::id() as i32;
        let pid = if flags & libc::CLONE_VM as u64 != 0 {
            sys::clone_vm_blocker(flags, &s.extra_ready).map_err(e("clone(CLONE_VM)"))?
        } else {
            let pid = if flags == 0 {
                sys::fork().map_err(e("fork"))?
            } else {
                sys::clone_fork_like(flags).map_err(e(format!("clone({flags:#x})")))?
            };
            if pid == 0 {
                sys::die_with_parent(me);
                s.extra_ready.fetch_add(1, Ordering::AcqRel);
                sys::block_forever();
            }
            pid
        };
        let parent_io = s.has_io.load(Ordering::Acquire) != 0;
        let x = &s.extras[k];
        x.pid.store(pid, Ordering::Relaxed);
        x.flags.store(flags, Ordering::Relaxed);
        // CLONE_IO shares the parent's context; without it a parent with a
        // valid priority (only ours after ioprio_set) gives the child its own.
        x.io.store(parent_io as u32, Ordering::Relaxed);
        if flags & libc::CLONE_SYSVSEM as u64 != 0 {
            x.undo.store(1, Ordering::Relaxed);
            s.has_undo.store(1, Ordering::Release);
        }
        x.name.set(name);
        s.nextra.store(k as u32 + 1, Ordering::Release);
        Ok(pid)
    }

    /// Starts `n` std threads that report their tids and park forever.
    fn threads(&mut self, n: usize) -> R<()> {
        let s = self.slot();
        if n + 1 > MAX_TIDS {
            return Err("too many threads".into());
        }
        s.tids[0].store(std::process::id() as i32, Ordering::Relaxed);
        for i in 0..n {
            std::thread::Builder::new()
                .name(format!("topology-{i}"))
                .stack_size(64 * 1024)
                .spawn(move || {
                    s.tids[i + 1].store(sys::gettid(), Ordering::Relaxed);
                    s.ntids.fetch_add(1, Ordering::AcqRel);
                    loop {
                        std::thread::park();
                    }
                })
                .map_err(e("spawn thread"))?;
        }
        let deadline = Instant::now() + READY_TIMEOUT;
        while (s.ntids.load(Ordering::Acquire) as usize) < n {
            if Instant::now() > deadline {
                return Err("threads did not start".into());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        // pthread_create passes CLONE_SYSVSEM: the first thread allocated an
        // undo list, shared by the process and its threads.
        s.has_undo.store(1, Ordering::Release);
        Ok(())
    }

    fn wait_extras(&self) -> R<()> {
        let s = self.slot();
        let deadline = Instant::now() + READY_TIMEOUT;
        while s.extra_ready.load(Ordering::Acquire) < s.nextra.load(Ordering::Acquire) {
            if Instant::now() > deadline {
                return Err("twins did not report ready".into());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// A tiny deterministic RNG (xorshift64*), seeded per process.

#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64) -> Rng {
        let mut r = Rng(seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x2545_F491_4F6C_DD1D);
        if r.0 == 0 {
            r.0 = 1;
        }
        r.next();
        r
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, num: usize, den: usize) -> bool {
        self.below(den) < num
    }
}

// ---------------------------------------------------------------------------
// The root: spawns children, collects their reports, prints the truth.

struct Zombie {
    label: String,
    pid: i32,
}

struct Root {
    ctx: Ctx,
    labels: Vec<String>,
    pids: Vec<i32>,
    zombies: Vec<Zombie>,
    tmp: PathBuf,
    sem: Option<i32>,
}

impl Root {
    /// Forks a child that runs `f` (with a copy of the root's table as
    /// inherited), checks its table, publishes it and blocks.
    fn spawn(&mut self, label: &str, f: impl FnOnce(&mut Ctx) -> R<()>) -> R<i32> {
        let idx = self.labels.len();
        if idx >= self.ctx.slots.len() {
            return Err("too many processes".into());
        }
        self.labels.push(label.to_string());
        let me = std::process::id() as i32;
        let pid = sys::fork().map_err(e("fork"))?;
        if pid == 0 {
            let mut ctx = Ctx {
                idx,
                slots: self.ctx.slots,
                // Inherited fds keep their description, not the root's names.
                table: self
                    .ctx
                    .table
                    .iter()
                    .map(|(fd, en)| {
                        let mut en = en.clone();
                        en.name = None;
                        (*fd, en)
                    })
                    .collect(),
                next: 0,
                data: self.ctx.data.clone(),
                sem: self.ctx.sem,
                rng: Rng::new(self.ctx.rng.0, idx as u64),
            };
            child_main(&mut ctx, me, f);
        }
        self.pids.push(pid);
        Ok(pid)
    }

    fn zombie(&mut self, label: &str) -> R<i32> {
        let pid = sys::fork().map_err(e("fork"))?;
        if pid == 0 {
            sys::exit_now(0);
        }
        self.zombies.push(Zombie {
            label: label.to_string(),
            pid,
        });
        Ok(pid)
    }

    fn wait_all(&self) -> R<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        for idx in 1..self.labels.len() {
            let s = &self.ctx.slots[idx];
            loop {
                match s.state.load(Ordering::Acquire) {
                    READY => break,
                    FAILED => {
                        return Err(format!(
                            "{} (pid {}): {}",
                            self.labels[idx],
                            self.pids[idx],
                            s.err.get()
                        ))
                    }
                    _ => {}
                }
                if Instant::now() > deadline {
                    return Err(format!(
                        "{} (pid {}) not ready within {READY_TIMEOUT:?}",
                        self.labels[idx], self.pids[idx]
                    ));
                }
                std::thread::sleep(Duration::from_micros(500));
            }
        }
        for z in &self.zombies {
            sys::wait_exited_keep_zombie(z.pid).map_err(e(format!("waitid {}", z.pid)))?;
        }
        Ok(())
    }

    fn all_pids(&self) -> Vec<i32> {
        let mut v: Vec<i32> = self.pids[1..].to_vec();
        for idx in 1..self.labels.len() {
            let s = &self.ctx.slots[idx];
            let n = s.nextra.load(Ordering::Acquire) as usize;
            v.extend(s.extras[..n].iter().map(|x| x.pid.load(Ordering::Relaxed)));
        }
        v
    }

    fn cleanup(&mut self) {
        for pid in self.all_pids() {
            sys::kill9(pid);
        }
        // As a child subreaper, orphaned twins come back to us: reap all.
        while sys::reap_any().is_some() {}
        if let Some(id) = self.sem.take() {
            let _ = sys::sem_remove(id);
        }
        let _ = std::fs::remove_dir_all(&self.tmp);
    }

    fn truth(&self, scenario: &str) -> R<Truth> {
        let root = std::process::id() as i32;
        let mut tasks = vec![TaskTruth {
            pid: root,
            tids: vec![root],
            zombie: false,
            label: "root".into(),
        }];
        let mut named: BTreeMap<String, Named> = BTreeMap::new();
        let add_name = |named: &mut BTreeMap<String, Named>, k: &str, v: Named| -> R<()> {
            if k.is_empty() {
                return Ok(());
            }
            if named.insert(k.to_string(), v).is_some() {
                return Err(format!("name {k:?} used twice"));
            }
            Ok(())
        };
        add_name(&mut named, "root", Named::Number(root as i64))?;
        // (pid, fd, desc, kind)
        let mut members: Vec<(i32, i32, u64, Kind)> = Vec::new();
        for (fd, en) in &self.ctx.table {
            members.push((root, *fd, en.desc, en.kind));
            if let Some(n) = &en.name {
                add_name(&mut named, n, Named::FdNum(FdRef { pid: root, fd: *fd }))?;
            }
        }
        let nums = |named: &mut BTreeMap<String, Named>, s: &Slot| -> R<()> {
            for n in &s.nums[..s.nnums.load(Ordering::Acquire) as usize] {
                add_name(
                    named,
                    &n.name.get(),
                    Named::Number(n.value.load(Ordering::Relaxed)),
                )?;
            }
            Ok(())
        };
        nums(&mut named, &self.ctx.slots[0])?;

        // Union-find per resource, over tids (a pid is its leader's tid).
        let mut uf: BTreeMap<&str, Uf> = RESOURCES.iter().map(|r| (*r, Uf::default())).collect();
        let mut present = PresentTruth::default();
        let mut thread_groups: Vec<Vec<i32>> = Vec::new();

        for idx in 1..self.labels.len() {
            let s = &self.ctx.slots[idx];
            let pid = self.pids[idx];
            let label = &self.labels[idx];
            let mut tids = vec![pid];
            let nt = s.ntids.load(Ordering::Acquire) as usize;
            tids.extend(s.tids[1..=nt].iter().map(|t| t.load(Ordering::Relaxed)));
            for (i, t) in tids.iter().enumerate().skip(1) {
                add_name(
                    &mut named,
                    &format!("{label}_thread_{i}"),
                    Named::Number(*t as i64),
                )?;
            }
            if tids.len() > 1 {
                thread_groups.push(tids.clone());
            }
            tasks.push(TaskTruth {
                pid,
                tids,
                zombie: false,
                label: label.clone(),
            });
            add_name(&mut named, label, Named::Number(pid as i64))?;
            nums(&mut named, s)?;
            if s.has_io.load(Ordering::Acquire) != 0 {
                present.io.push(pid);
            }
            if s.has_undo.load(Ordering::Acquire) != 0 {
                present.sysvsem.push(pid);
            }
            let nrec = s.nrec.load(Ordering::Acquire) as usize;
            let recs: Vec<(i32, u64, Kind, String)> = s.recs[..nrec]
                .iter()
                .map(|r| {
                    Ok((
                        r.fd.load(Ordering::Relaxed),
                        r.desc.load(Ordering::Relaxed),
                        Kind::from_u32(r.kind.load(Ordering::Relaxed))?,
                        r.name.get(),
                    ))
                })
                .collect::<R<_>>()?;
            for (fd, desc, kind, name) in &recs {
                members.push((pid, *fd, *desc, *kind));
                add_name(&mut named, name, Named::FdNum(FdRef { pid, fd: *fd }))?;
            }
            let nx = s.nextra.load(Ordering::Acquire) as usize;
            for x in &s.extras[..nx] {
                let xpid = x.pid.load(Ordering::Relaxed);
                let flags = x.flags.load(Ordering::Relaxed);
                let xlabel = x.name.get();
                tasks.push(TaskTruth {
                    pid: xpid,
                    tids: vec![xpid],
                    zombie: false,
                    label: xlabel.clone(),
                });
                add_name(&mut named, &xlabel, Named::Number(xpid as i64))?;
                // The twin's fd table is the parent's (copied or shared).
                for (fd, desc, kind, _) in &recs {
                    members.push((xpid, *fd, *desc, *kind));
                }
                for (res, bit) in [
                    ("vm", libc::CLONE_VM),
                    ("files", libc::CLONE_FILES),
                    ("fs", libc::CLONE_FS),
                    ("sighand", libc::CLONE_SIGHAND),
                    ("io", libc::CLONE_IO),
                    ("sysvsem", libc::CLONE_SYSVSEM),
                ] {
                    if flags & bit as u64 != 0 {
                        uf.get_mut(res).expect("resource").union(pid, xpid);
                    }
                }
                if x.io.load(Ordering::Relaxed) != 0 {
                    present.io.push(xpid);
                }
                if x.undo.load(Ordering::Relaxed) != 0 {
                    present.sysvsem.push(xpid);
                }
            }
        }
        for z in &self.zombies {
            tasks.push(TaskTruth {
                pid: z.pid,
                tids: vec![z.pid],
                zombie: true,
                label: z.label.clone(),
            });
            add_name(&mut named, &z.label, Named::Number(z.pid as i64))?;
        }

        let mut shared = SharedTruth::default();
        for res in RESOURCES {
            *shared.groups_mut(res) = uf[res].groups();
        }
        // Threads share everything but io with their process (see the module docs).
        for res in ["vm", "files", "fs", "sighand", "sysvsem"] {
            let u = uf.get_mut(res).expect("resource");
            for g in &thread_groups {
                for t in &g[1..] {
                    u.union(g[0], *t);
                }
            }
        }
        let mut shared_threads = SharedTruth::default();
        for res in RESOURCES {
            *shared_threads.groups_mut(res) = uf[res].groups();
        }
        present.io.sort_unstable();
        present.sysvsem.sort_unstable();

        // Group fds by description.
        let mut by_desc: BTreeMap<u64, (Kind, Vec<FdRef>)> = BTreeMap::new();
        let mut seen = BTreeSet::new();
        for (pid, fd, desc, kind) in members {
            if !seen.insert((pid, fd)) {
                return Err(format!("({pid}, {fd}) recorded twice"));
            }
            let ent = by_desc.entry(desc).or_insert((kind, Vec::new()));
            if ent.0 != kind {
                return Err(format!("description {desc:#x} has two kinds"));
            }
            ent.1.push(FdRef { pid, fd });
        }
        let mut files: Vec<FileTruth> = by_desc
            .into_iter()
            .map(|(desc, (kind, mut m))| {
                m.sort_unstable();
                let creator = ((desc >> 32) as usize).saturating_sub(1);
                FileTruth {
                    label: format!(
                        "{}:{}#{}",
                        self.labels.get(creator).map(String::as_str).unwrap_or("?"),
                        kind.name(),
                        desc & 0xffff_ffff
                    ),
                    kind: kind.name().into(),
                    members: m,
                }
            })
            .collect();
        files.sort_by(|a, b| a.members[0].cmp(&b.members[0]));
        // The root first, then ascending pids.
        tasks.sort_by_key(|t| (t.pid != root, t.pid));
        Ok(Truth {
            root,
            scenario: scenario.into(),
            tasks,
            files,
            shared,
            shared_threads,
            present,
            named,
        })
    }
}

fn child_main(ctx: &mut Ctx, parent: i32, f: impl FnOnce(&mut Ctx) -> R<()>) -> ! {
    sys::die_with_parent(parent);
    let s = ctx.slot();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        f(ctx)?;
        ctx.verify()?;
        ctx.publish()?;
        ctx.wait_extras()
    }))
    .unwrap_or_else(|_| Err("panicked".into()));
    match r {
        Ok(()) => {
            s.state.store(READY, Ordering::Release);
            sys::block_forever()
        }
        Err(msg) => {
            s.err.set(&msg);
            s.state.store(FAILED, Ordering::Release);
            sys::exit_now(1)
        }
    }
}

#[derive(Default)]
struct Uf {
    parent: BTreeMap<i32, i32>,
}

impl Uf {
    fn find(&mut self, x: i32) -> i32 {
        let p = *self.parent.entry(x).or_insert(x);
        if p == x {
            return x;
        }
        let r = self.find(p);
        self.parent.insert(x, r);
        r
    }
    fn union(&mut self, a: i32, b: i32) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.parent.insert(ra.max(rb), ra.min(rb));
        }
    }
    fn groups(&self) -> Vec<Vec<i32>> {
        let mut me = Uf {
            parent: self.parent.clone(),
        };
        let keys: Vec<i32> = self.parent.keys().copied().collect();
        let mut g: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for k in keys {
            let r = me.find(k);
            g.entry(r).or_default().push(k);
        }
        let mut out: Vec<Vec<i32>> = g
            .into_values()
            .filter(|v| v.len() >= 2)
            .map(|mut v| {
                v.sort_unstable();
                v
            })
            .collect();
        out.sort();
        out
    }
}

// ---------------------------------------------------------------------------
// Scenarios.

struct Args {
    scenario: String,
    procs: usize,
    fds: usize,
    seed: u64,
    /// The `shape` scenario's own parameters.
    shape: ShapeOpts,
}

/// `--inherit`, `--reuse`, `--opens`, `--depth`, `--paths` (shape only).
#[derive(Default)]
struct ShapeOpts {
    inherit: Option<usize>,
    reuse: Option<usize>,
    opens: Option<usize>,
    depth: Option<usize>,
    paths: Option<usize>,
}

const SCENARIOS: &str = "general, bench, basic, clone, epoll, prefork, shape";

fn parse_args() -> R<Args> {
    let mut it = std::env::args().skip(1);
    let mut scenario = None;
    let (mut procs, mut fds, mut seed) = (None, None, 1u64);
    let mut shape = ShapeOpts::default();
    while let Some(a) = it.next() {
        let mut num = |what: &str| -> R<u64> {
            let v = it.next().ok_or_else(|| format!("{what} needs a value"))?;
            v.parse()
                .map_err(|_| format!("{what}: {v:?} is not a number"))
        };
        match a.as_str() {
            "--procs" => procs = Some(num("--procs")? as usize),
            "--fds" => fds = Some(num("--fds")? as usize),
            "--seed" => seed = num("--seed")?,
            "--inherit" => shape.inherit = Some(num("--inherit")? as usize),
            "--reuse" => shape.reuse = Some(num("--reuse")? as usize),
            "--opens" => shape.opens = Some(num("--opens")? as usize),
            "--depth" => shape.depth = Some(num("--depth")? as usize),
            "--paths" => shape.paths = Some(num("--paths")? as usize),
            "-h" | "--help" => {
                println!(
                    "usage: kcmp-topology <scenario> [--procs N] [--fds M] [--seed S]\n\
                     \x20      kcmp-topology shape [--procs N] [--fds M] [--inherit PCT] [--reuse PCT]\n\
                     \x20                          [--opens K] [--depth D] [--paths N] [--seed S]\n\
                     scenarios: {SCENARIOS}\n\
                     Prints one line of JSON (the truth) when ready, then waits for EOF on stdin."
                );
                std::process::exit(0);
            }
            s if !s.starts_with('-') && scenario.is_none() => scenario = Some(s.to_string()),
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    let scenario = scenario.unwrap_or_else(|| "general".into());
    let given = [
        shape.inherit,
        shape.reuse,
        shape.opens,
        shape.depth,
        shape.paths,
    ];
    if scenario != "shape" && given.iter().any(Option::is_some) {
        return Err(
            "--inherit, --reuse, --opens, --depth and --paths apply to the shape scenario only"
                .into(),
        );
    }
    let (dp, df) = match scenario.as_str() {
        "bench" => (500, 100),
        "shape" => (100, 100),
        _ => (12, 10),
    };
    Ok(Args {
        scenario,
        procs: procs.unwrap_or(dp),
        fds: fds.unwrap_or(df),
        seed,
        shape,
    })
}

/// The `shape` scenario's parameters, defaults filled in.
fn shape_of(a: &Args) -> shape::Shape {
    let o = &a.shape;
    shape::Shape {
        procs: a.procs,
        fds: a.fds,
        inherit: o.inherit.unwrap_or(50),
        reuse: o.reuse.unwrap_or(0),
        opens: o.opens.unwrap_or(a.fds / 10),
        depth: o.depth.unwrap_or(1),
        paths: o.paths.unwrap_or(8),
        seed: a.seed,
    }
}

fn some(s: &str) -> Option<&str> {
    Some(s)
}

/// The root's pool of descriptions that workers inherit. Returns the fds.
fn pool(root: &mut Root, m: usize) -> R<Vec<i32>> {
    let c = &mut root.ctx;
    let mut pool = Vec::new();
    let nfiles = (m / 10).max(3);
    for j in 0..nfiles {
        let name = match j {
            0 => some("root_data_a"),
            1 => some("root_data_b"),
            _ => None,
        };
        // Same file, same flags (O_RDONLY), same offset (0): yet separate
        // descriptions.
        pool.push(c.open_data(libc::O_RDONLY, name)?);
    }
    for j in 0..(m / 20).max(1) {
        let names = if j == 0 {
            (some("pool_pipe_r"), some("pool_pipe_w"))
        } else {
            (None, None)
        };
        let (r, w) = c.pipe(names)?;
        pool.extend([r, w]);
    }
    for j in 0..(m / 20).max(1) {
        let names = if j == 0 {
            (some("pool_sock_a"), some("pool_sock_b"))
        } else {
            (None, None)
        };
        let (a, b) = c.socketpair(libc::SOCK_STREAM, names)?;
        pool.extend([a, b]);
    }
    let ev = c.eventfd(some("root_eventfd"))?;
    let ep = c.epoll(some("root_epoll"))?;
    sys::epoll_add(ep, ev).map_err(e("epoll_ctl"))?;
    sys::epoll_add(ep, pool[nfiles]).map_err(e("epoll_ctl"))?;
    let opath = c.open_data(libc::O_PATH, some("root_opath"))?;
    let dup = c.dup(pool[0], some("root_data_a_dup"))?;
    let target = c.free_fd_above(c.table.keys().max().copied().unwrap_or(0) + 5);
    let dup2 = c.dup2(pool[nfiles + 1], target, some("root_pipe_w_dup2"))?;
    pool.extend([ev, ep, opath, dup, dup2]);
    Ok(pool)
}

fn worker(c: &mut Ctx, i: usize, m: usize, pool: &[i32]) -> R<()> {
    let (pipe_r, pipe_w) = (pool[(m / 10).max(3)], pool[(m / 10).max(3) + 1]);
    let mut keep: BTreeSet<i32> = [2].into();
    let want = (m / 2).max(1);
    for &fd in pool {
        if c.rng.chance(want, pool.len().max(want)) {
            keep.insert(fd);
        }
    }
    // Both ends of the first pipe are inherited by several processes.
    if i < 3 {
        keep.insert(pipe_r);
    }
    if i < 2 || i == 3 {
        keep.insert(pipe_w);
    }
    c.keep_only(&keep)?;
    for _ in 0..(m / 10).max(1) {
        c.open_data(libc::O_RDONLY, None)?;
    }
    let (r, _) = c.pipe((None, None))?;
    c.socketpair(libc::SOCK_STREAM, (None, None))?;
    if i & 3 == 0 {
        let ev = c.eventfd(None)?;
        let ep = c.epoll(None)?;
        sys::epoll_add(ep, ev).map_err(e("epoll_ctl"))?;
        sys::epoll_add(ep, r).map_err(e("epoll_ctl"))?;
    }
    let mut k = 0;
    while c.table.len() < m || k < 2 {
        let fds: Vec<i32> = c.table.keys().copied().filter(|&f| f != 2).collect();
        let src = fds[c.rng.below(fds.len())];
        match k % 3 {
            0 => c.dup(src, None)?,
            1 => {
                let hi = c.table.keys().max().copied().unwrap_or(0);
                let gap = c.rng.below(4) as i32;
                let t = c.free_fd_above(hi + 1 + gap);
                c.dup2(src, t, None)?
            }
            _ => c.dupfd_cloexec(src, 10, None)?,
        };
        k += 1;
    }
    Ok(())
}

fn stderr_only(c: &mut Ctx) -> R<()> {
    c.keep_only(&[2].into())
}

/// A pre-forking server, as a host runs them (nginx, apache2, postgres):
/// the root opens a few listening sockets (socketpair ends), a log file, a
/// pipe and an eventfd; `--procs` workers inherit all of them and each
/// opens a data file, a pipe and a socket pair of its own. Few shared
/// descriptions, many holders.
fn prefork(root: &mut Root, a: &Args) -> R<()> {
    let c = &mut root.ctx;
    let mut shared: BTreeSet<i32> = [2].into();
    for _ in 0..4 {
        let (s, _) = c.socketpair(libc::SOCK_STREAM, (None, None))?;
        shared.insert(s);
    }
    shared.insert(c.open_data(libc::O_RDONLY, some("log"))?);
    let (r, w) = c.pipe((some("signal_pipe_r"), some("signal_pipe_w")))?;
    shared.extend([r, w, c.eventfd(None)?]);
    for i in 0..a.procs {
        let keep = shared.clone();
        root.spawn(&format!("worker{i}"), move |c| {
            c.keep_only(&keep)?;
            c.open_data(libc::O_RDONLY, None)?;
            c.pipe((None, None))?;
            c.socketpair(libc::SOCK_STREAM, (None, None))?;
            Ok(())
        })?;
    }
    Ok(())
}

/// One twin pair per clone flag, a plain fork, a process that used SEM_UNDO
/// alone, a process with two threads, and two zombies.
fn specials(root: &mut Root) -> R<()> {
    let vm_sighand = (libc::CLONE_VM | libc::CLONE_SIGHAND) as u64;
    root.spawn("vm_parent", |c| {
        stderr_only(c)?;
        c.twin(vm_sighand, "vm_child").map(drop)
    })?;
    root.spawn("files_parent", |c| {
        stderr_only(c)?;
        c.twin(libc::CLONE_FILES as u64, "files_child").map(drop)
    })?;
    root.spawn("fs_parent", |c| {
        stderr_only(c)?;
        c.twin(libc::CLONE_FS as u64, "fs_child").map(drop)
    })?;
    root.spawn("io_parent", |c| {
        stderr_only(c)?;
        c.ioprio()?;
        c.twin(libc::CLONE_IO as u64, "io_child")?;
        // A plain fork of a process with a valid I/O priority: its own context.
        c.twin(0, "io_other").map(drop)
    })?;
    root.spawn("sysvsem_parent", |c| {
        stderr_only(c)?;
        c.twin(libc::CLONE_SYSVSEM as u64, "sysvsem_child")
            .map(drop)
    })?;
    root.spawn("undo_alone", |c| {
        stderr_only(c)?;
        c.sem_undo()
    })?;
    root.spawn("fork_parent", |c| {
        stderr_only(c)?;
        c.twin(0, "fork_child").map(drop)
    })?;
    root.spawn("threaded", |c| {
        stderr_only(c)?;
        c.threads(2)
    })?;
    root.zombie("zombie_1")?;
    root.zombie("zombie_2")?;
    Ok(())
}

/// Two unrelated processes; one opens a file and creates a pipe after the
/// fork and passes both to the other with SCM_RIGHTS.
fn scm(root: &mut Root) -> R<()> {
    let (sa, sb) = root
        .ctx
        .socketpair(libc::SOCK_DGRAM, (some("scm_sock_a"), some("scm_sock_b")))?;
    root.spawn("scm_sender", move |c| {
        c.keep_only(&[2, sa].into())?;
        c.name(sa, "scm_sender_sock")?;
        let f = c.open_data(libc::O_RDONLY, some("scm_sent_file"))?;
        let (r, _) = c.pipe((some("scm_sent_pipe_r"), some("scm_sender_pipe_w")))?;
        let mut payload = Vec::new();
        for fd in [f, r] {
            let en = c.entry(fd)?;
            payload.extend(en.desc.to_le_bytes());
            payload.extend((en.kind as u32).to_le_bytes());
        }
        sys::send_fds(sa, &[f, r], &payload).map_err(e("sendmsg SCM_RIGHTS"))
    })?;
    root.spawn("scm_receiver", move |c| {
        c.keep_only(&[2, sb].into())?;
        c.name(sb, "scm_receiver_sock")?;
        let mut buf = [0u8; 24];
        let fds = sys::recv_fds(sb, 2, &mut buf).map_err(e("recvmsg SCM_RIGHTS"))?;
        if fds.len() != 2 {
            return Err(format!("received {} fds, expected 2", fds.len()));
        }
        for (i, (fd, name)) in fds
            .iter()
            .zip(["scm_recv_file", "scm_recv_pipe_r"])
            .enumerate()
        {
            let chunk = &buf[i * 12..i * 12 + 12];
            let desc = u64::from_le_bytes(chunk[..8].try_into().expect("8 bytes"));
            let kind = Kind::from_u32(u32::from_le_bytes(chunk[8..].try_into().expect("4")))?;
            c.insert(*fd, desc, kind, Some(name));
        }
        Ok(())
    })?;
    // The root keeps neither end.
    root.ctx.close(sa)?;
    root.ctx.close(sb)?;
    Ok(())
}

fn general(root: &mut Root, a: &Args) -> R<()> {
    if a.fds + 16 > MAX_RECS {
        return Err(format!("--fds at most {}", MAX_RECS - 16));
    }
    let pool = pool(root, a.fds)?;
    for i in 0..a.procs {
        let (pool, m) = (pool.clone(), a.fds);
        root.spawn(&format!("worker{i}"), move |c| worker(c, i, m, &pool))?;
    }
    specials(root)?;
    scm(root)
}

/// The man page's example: the parent opens a file and forks; the child
/// opens it again and dups the inherited fd. Plus a few fds of each kind.
fn basic(root: &mut Root) -> R<()> {
    let file = root.tmp.join("basic-file");
    let pf = root
        .ctx
        .open_path(&file, libc::O_RDWR | libc::O_CREAT, some("parent_file"))?;
    let child = root.spawn("child", move |c| {
        c.keep_only(&[2, pf].into())?;
        c.name(pf, "child_inherited")?;
        let reopen = c.open_path(&file, libc::O_RDWR, some("child_reopen"))?;
        c.dup(pf, some("child_dup"))?;
        let target = c.free_fd_above(20);
        c.dup2(reopen, target, some("child_reopen_dup2"))?;
        let (pr, _) = c.pipe((some("child_pipe_r"), some("child_pipe_w")))?;
        c.socketpair(
            libc::SOCK_STREAM,
            (some("child_sock_a"), some("child_sock_b")),
        )?;
        // Regular files cannot be registered in epoll (EPERM): the pipe can.
        let ep = c.epoll(some("child_epoll"))?;
        sys::epoll_add(ep, pr).map_err(e("epoll_ctl"))?;
        c.eventfd(some("child_eventfd"))?;
        c.open_path(&file, libc::O_PATH, some("child_opath"))?;
        Ok(())
    })?;
    root.ctx.number("parent", root.pids[0] as i64)?;
    let _ = child;
    Ok(())
}

/// One process with an epoll instance: a plain registration, a target
/// registered under an fd number that was closed since, and three targets
/// registered under one fd number.
fn epoll(root: &mut Root) -> R<()> {
    root.spawn("epoll_owner", |c| {
        stderr_only(c)?;
        // Targets are eventfds (regular files cannot be registered): all of
        // them share one anonymous inode, yet each is its own description.
        let target = c.eventfd(some("epoll_target"))?;
        c.eventfd(some("not_target"))?;
        c.open_data(libc::O_RDONLY, some("regular_file"))?;
        let ep = c.epoll(some("epfd"))?;
        sys::epoll_add(ep, target).map_err(e("epoll_ctl"))?;
        // Registered under 40, then 40 closed; the description lives on.
        let b = c.eventfd(some("closed_target_keep"))?;
        c.dup2(b, 40, None)?;
        sys::epoll_add(ep, 40).map_err(e("epoll_ctl"))?;
        c.close(40)?;
        c.number("closed_tfd", 40)?;
        // Three targets registered under 50.
        for name in ["multi_x", "multi_y", "multi_z"] {
            let f = c.eventfd(some(name))?;
            c.dup2(f, 50, None)?;
            sys::epoll_add(ep, 50).map_err(e("epoll_ctl"))?;
        }
        c.name(50, "multi_at_tfd")?;
        c.number("multi_tfd", 50)?;
        c.number("multi_count", 3)?;
        Ok(())
    })?;
    Ok(())
}

fn run(root: &mut Root, a: &Args) -> R<()> {
    match a.scenario.as_str() {
        "general" | "bench" => general(root, a),
        "prefork" => prefork(root, a),
        "basic" => basic(root),
        "clone" => specials(root),
        "epoll" => epoll(root),
        other => Err(format!("unknown scenario {other:?} (known: {SCENARIOS})")),
    }
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
