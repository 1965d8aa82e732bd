//! The `shape` scenario: a topology built from parameters rather than a
//! fixed plan, for the benchmark suite (`bench/run-suite.sh`).
//!
//! ```text
//! kcmp-topology shape [--procs P] [--fds M] [--inherit PCT] [--reuse PCT]
//!                     [--opens K] [--depth D] [--paths N] [--seed S]
//! ```
//!
//! The root and P processes below it, in a tree of D levels (level 1: the
//! root's children; each process of level l+1 is forked by one of level l,
//! round robin). Every process holds about M fds:
//! * PCT (`--inherit`, default 50) % of M inherited from its parent at the
//!   same fd numbers (the rest of the parent's fds closed; fd 2 is always
//!   kept, 0 and 1 never);
//! * of those, `--reuse` % (default 0) replaced by an UNRELATED object at the
//!   same fd number (another file of the pool, a new pipe or socket): the
//!   child reuses its parent's fd numbers, so inheritance hints fail;
//! * K (`--opens`, default M/10) separate `open()`s of one data file: one
//!   bucket of many distinct descriptions;
//! * the rest: opens of N (`--paths`, default 8) pool files, pipes,
//!   socketpairs and dups of its own fds.
//!
//! The truth, known by construction (every fd is recorded with the id of
//! the description it was created with or copied from), is one JSON line:
//! `{"scenario":"shape","root":PID,"pids":[…],"tasks":N,"fds":N,
//! "descriptions":N,"shape":{…}}`. Then, as for every scenario, the
//! fixture waits for EOF on stdin, kills and reaps all its processes and
//! removes its temporary directory. Raise RLIMIT_NOFILE (the hard limit)
//! before asking for more fds per process than it allows.

use crate::{sys, Rng, R};
use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The parameters of a shape.
#[derive(Debug, Clone)]
pub struct Shape {
    /// Processes below the root (`--procs`).
    pub procs: usize,
    /// Fds per process, at least (`--fds`).
    pub fds: usize,
    /// Percent of `fds` inherited from the parent at the same numbers (`--inherit`).
    pub inherit: usize,
    /// Percent of the inherited numbers reused for unrelated objects (`--reuse`).
    pub reuse: usize,
    /// Separate `open()`s of the one data file per process (`--opens`).
    pub opens: usize,
    /// Levels of the process tree below the root (`--depth`).
    pub depth: usize,
    /// Files of the pool (`--paths`).
    pub paths: usize,
    /// Seed of every process's RNG (`--seed`).
    pub seed: u64,
}

impl Shape {
    /// Checks the parameters' ranges.
    pub fn validate(&self) -> R<()> {
        let bad = |what: &str, v: usize, lim: &str| Err(format!("{what} {v}: must be {lim}"));
        match () {
            _ if self.procs > 60_000 => bad("--procs", self.procs, "at most 60000"),
            _ if self.fds == 0 || self.fds > 1 << 20 => bad("--fds", self.fds, "1 to 1048576"),
            _ if self.inherit > 100 => bad("--inherit", self.inherit, "a percentage"),
            _ if self.reuse > 100 => bad("--reuse", self.reuse, "a percentage"),
            _ if self.opens > 1 << 20 => bad("--opens", self.opens, "at most 1048576"),
            _ if self.depth == 0 || self.depth > self.procs.max(1) => {
                bad("--depth", self.depth, "1 to --procs")
            }
            _ if self.paths == 0 || self.paths > 4096 => bad("--paths", self.paths, "1 to 4096"),
            _ => Ok(()),
        }
    }

    /// Index range of tree level `l` (0: the root's children).
    fn level(&self, l: usize) -> (usize, usize) {
        let (base, extra) = (self.procs / self.depth, self.procs % self.depth);
        let start = 1 + l * base + l.min(extra);
        (start, start + base + usize::from(l < extra))
    }

    /// The indices of the processes that process `idx` forks.
    fn children(&self, idx: usize) -> Vec<usize> {
        let l = if idx == 0 {
            0
        } else {
            match (0..self.depth).find(|&l| idx < self.level(l).1) {
                Some(l) => l + 1,
                None => return Vec::new(),
            }
        };
        if l >= self.depth {
            return Vec::new();
        }
        let (start, end) = self.level(l);
        if l == 0 {
            return (start..end).collect();
        }
        let (ps, pe) = self.level(l - 1);
        (start..end)
            .filter(|i| ps + (i - start) % (pe - ps) == idx)
            .collect()
    }

    /// Capacity of one process's table in the shared memory.
    fn cap(&self) -> usize {
        self.fds + self.opens + 8
    }
}

#[derive(Clone, Copy, Debug)]
enum Obj {
    Stdio,
    Path(usize),
    Data,
    PipeR,
    PipeW,
    Sock,
}

#[derive(Clone, Copy)]
struct Ent {
    desc: u64,
    obj: Obj,
}

/// Shared memory: `[0]` processes ready, `[1]` index+1 of a failed process,
/// then P+1 pids, then per process a count and its (fd << 40 | desc) entries.
struct Board {
    words: &'static [AtomicU64],
    procs: usize,
    cap: usize,
}

impl Board {
    fn pid(&self, idx: usize) -> &AtomicU64 {
        &self.words[2 + idx]
    }
    fn region(&self, idx: usize) -> &[AtomicU64] {
        let base = 3 + self.procs + idx * (self.cap + 1);
        &self.words[base..base + self.cap + 1]
    }
}

struct Proc<'a> {
    idx: usize,
    shape: &'a Shape,
    table: BTreeMap<i32, Ent>,
    next: u64,
    rng: Rng,
    paths: &'a [PathBuf],
    data: &'a PathBuf,
}

impl Proc<'_> {
    fn new_desc(&mut self) -> u64 {
        self.next += 1;
        ((self.idx as u64 + 1) << 24) | self.next
    }

    fn add(&mut self, fd: i32, obj: Obj) {
        let desc = self.new_desc();
        self.table.insert(fd, Ent { desc, obj });
    }

    /// Creates `obj` anew; returns the fd to keep and the fds to close.
    fn create(&mut self, obj: Obj) -> R<(i32, Vec<i32>)> {
        let path = match obj {
            Obj::Path(p) => &self.paths[p],
            Obj::Data => self.data,
            Obj::PipeR | Obj::PipeW => {
                let (r, w) = sys::pipe().map_err(|e| format!("pipe: {e}"))?;
                return Ok(if matches!(obj, Obj::PipeR) {
                    (r, vec![w])
                } else {
                    (w, vec![r])
                });
            }
            Obj::Sock => {
                let (a, b) =
                    sys::socketpair(libc::SOCK_STREAM).map_err(|e| format!("socketpair: {e}"))?;
                return Ok((a, vec![b]));
            }
            Obj::Stdio => return Err("stdio cannot be created".into()),
        };
        let fd =
            sys::open(path, libc::O_RDONLY).map_err(|e| format!("open {}: {e}", path.display()))?;
        Ok((fd, Vec::new()))
    }

    /// Keeps `want` random inherited fds (and fd 2), closes all others.
    fn keep_inherited(&mut self, want: usize) -> R<()> {
        let mut cands: Vec<i32> = self.table.keys().copied().filter(|&f| f > 2).collect();
        let want = want.min(cands.len());
        for i in 0..want {
            let j = i + self.rng.below(cands.len() - i);
            cands.swap(i, j);
        }
        cands.truncate(want);
        cands.push(2);
        cands.sort_unstable();
        let mut lo = 0u32;
        for &fd in &cands {
            if fd as u32 > lo {
                sys::close_range(lo, fd as u32 - 1).map_err(|e| format!("close_range: {e}"))?;
            }
            lo = fd as u32 + 1;
        }
        sys::close_range(lo, u32::MAX).map_err(|e| format!("close_range: {e}"))?;
        let keep: HashSet<i32> = cands.into_iter().collect();
        self.table.retain(|fd, _| keep.contains(fd));
        Ok(())
    }

    /// Puts an unrelated object at fd number `fd` (dup2 onto it).
    fn reuse(&mut self, fd: i32) -> R<()> {
        let n = self.paths.len();
        let obj = match self.table[&fd].obj {
            Obj::Path(p) if n > 1 => Obj::Path((p + 1 + self.rng.below(n - 1)) % n),
            Obj::Path(_) => Obj::Data,
            // A dup of stdin, stdout or stderr: a pool file instead.
            Obj::Data | Obj::Stdio => Obj::Path(self.rng.below(n)),
            other => other,
        };
        let (tmp, extra) = self.create(obj)?;
        sys::dup2(tmp, fd).map_err(|e| format!("dup2({tmp}, {fd}): {e}"))?;
        for c in extra.into_iter().chain([tmp]) {
            sys::close(c).map_err(|e| format!("close({c}): {e}"))?;
        }
        self.add(fd, obj);
        Ok(())
    }

    fn fresh(&mut self, obj: Obj) -> R<()> {
        let (fd, extra) = self.create(obj)?;
        self.add(fd, obj);
        if let (Obj::PipeR, [w]) = (obj, extra.as_slice()) {
            self.add(*w, Obj::PipeW);
        } else if let (Obj::Sock, [b]) = (obj, extra.as_slice()) {
            self.add(*b, Obj::Sock);
        }
        Ok(())
    }

    /// Builds this process's fd table (the inherited one is in `table`).
    fn build(&mut self) -> R<()> {
        let s = self.shape;
        if self.idx != 0 {
            self.keep_inherited(s.fds * s.inherit / 100)?;
            let kept: Vec<i32> = self.table.keys().copied().filter(|&f| f > 2).collect();
            for fd in kept {
                if self.rng.below(100) < s.reuse {
                    self.reuse(fd)?;
                }
            }
        }
        for _ in 0..s.opens {
            self.fresh(Obj::Data)?;
        }
        while self.table.len() < s.fds {
            match self.rng.below(10) {
                0..=3 => {
                    let p = self.rng.below(self.paths.len());
                    self.fresh(Obj::Path(p))?
                }
                4 | 5 => self.fresh(Obj::PipeR)?,
                6 | 7 => self.fresh(Obj::Sock)?,
                _ => {
                    let fds: Vec<i32> = self.table.keys().copied().collect();
                    let src = fds[self.rng.below(fds.len())];
                    let fd = sys::dup(src).map_err(|e| format!("dup({src}): {e}"))?;
                    let en = self.table[&src];
                    self.table.insert(fd, en);
                }
            }
        }
        Ok(())
    }

    fn publish(&self, board: &Board) -> R<()> {
        let region = board.region(self.idx);
        if self.table.len() > board.cap {
            return Err(format!("{} fds, room for {}", self.table.len(), board.cap));
        }
        for (i, (fd, en)) in self.table.iter().enumerate() {
            region[1 + i].store(((*fd as u64) << 40) | en.desc, Ordering::Relaxed);
        }
        region[0].store(self.table.len() as u64, Ordering::Release);
        Ok(())
    }

    /// Builds, publishes, forks the children, reports ready; a child never
    /// returns from here.
    fn run(&mut self, board: &Board) -> R<()> {
        self.build()?;
        self.publish(board)?;
        let me = std::process::id() as i32;
        for c in self.shape.children(self.idx) {
            let pid = sys::fork().map_err(|e| format!("fork: {e}"))?;
            if pid == 0 {
                sys::die_with_parent(me);
                board
                    .pid(c)
                    .store(std::process::id() as u64, Ordering::Release);
                self.idx = c;
                self.next = 0;
                self.rng = Rng::new(self.shape.seed, c as u64);
                if let Err(msg) = self.run(board) {
                    eprintln!("kcmp-topology shape: process {c}: {msg}");
                    board.words[1].store(c as u64 + 1, Ordering::Release);
                    sys::exit_now(1);
                }
                board.words[0].fetch_add(1, Ordering::AcqRel);
                sys::block_forever();
            }
            board.pid(c).store(pid as u64, Ordering::Release);
        }
        Ok(())
    }
}

fn wait_ready(board: &Board, timeout: Duration) -> R<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if let f @ 1.. = board.words[1].load(Ordering::Acquire) {
            return Err(format!("process {} failed (see above)", f - 1));
        }
        if board.words[0].load(Ordering::Acquire) as usize >= board.procs {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("not ready within {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn truth(board: &Board, s: &Shape) -> serde_json::Value {
    let (mut fds, mut descs) = (0usize, HashSet::new());
    let mut pids = Vec::with_capacity(s.procs + 1);
    for idx in 0..=s.procs {
        pids.push(board.pid(idx).load(Ordering::Acquire));
        let region = board.region(idx);
        let n = region[0].load(Ordering::Acquire) as usize;
        fds += n;
        descs.extend(
            region[1..=n]
                .iter()
                .map(|w| w.load(Ordering::Relaxed) & ((1 << 40) - 1)),
        );
    }
    serde_json::json!({
        "scenario": "shape", "root": pids[0], "pids": pids, "tasks": s.procs + 1,
        "fds": fds, "descriptions": descs.len(),
        "shape": {"procs": s.procs, "fds": s.fds, "inherit": s.inherit, "reuse": s.reuse,
                  "opens": s.opens, "depth": s.depth, "paths": s.paths, "seed": s.seed},
    })
}

fn cleanup(board: &Board, tmp: &PathBuf) {
    for idx in (1..=board.procs).rev() {
        sys::kill9(board.pid(idx).load(Ordering::Acquire) as i32);
    }
    while sys::reap_any().is_some() {}
    let _ = std::fs::remove_dir_all(tmp);
}

/// Runs the `shape` scenario (the root's fds 0, 1, 2 are open; 3+ closed).
pub fn main(s: &Shape) -> R<()> {
    s.validate()?;
    let me = std::process::id() as i32;
    let tmp = std::env::temp_dir().join(format!("kcmp-topology.{me}"));
    std::fs::create_dir(&tmp).map_err(|e| format!("mkdir {}: {e}", tmp.display()))?;
    let cap = s.cap();
    let words = sys::shared_u64s(3 + s.procs + (s.procs + 1) * (cap + 1))
        .map_err(|e| format!("mmap shared: {e}"))?;
    let board = Board {
        words,
        procs: s.procs,
        cap,
    };
    board.pid(0).store(me as u64, Ordering::Release);
    let result = (|| -> R<serde_json::Value> {
        let paths: Vec<PathBuf> = (0..s.paths).map(|i| tmp.join(format!("f{i}"))).collect();
        let data = tmp.join("data");
        for p in paths.iter().chain([&data]) {
            std::fs::write(p, b"kcmp shape\n")
                .map_err(|e| format!("write {}: {e}", p.display()))?;
        }
        let mut root = Proc {
            idx: 0,
            shape: s,
            table: BTreeMap::new(),
            next: 0,
            rng: Rng::new(s.seed, 0),
            paths: &paths,
            data: &data,
        };
        for fd in 0..3 {
            root.add(fd, Obj::Stdio);
        }
        root.run(&board)?;
        wait_ready(
            &board,
            Duration::from_secs(60) + Duration::from_millis(20) * s.procs as u32,
        )?;
        Ok(truth(&board, s))
    })();
    let truth = match result {
        Ok(t) => t,
        Err(msg) => {
            cleanup(&board, &tmp);
            return Err(msg);
        }
    };
    let mut out = std::io::stdout().lock();
    let printed = writeln!(out, "{truth}").and_then(|_| out.flush());
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
    cleanup(&board, &tmp);
    printed.map_err(|e| format!("writing the truth: {e}"))
}
