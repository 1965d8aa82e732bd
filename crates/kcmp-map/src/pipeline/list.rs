//! Step 3, list fds: every task's fds and their link texts, and the tasks'
//! family (parents before children) for the inheritance hints of grouping.

use super::pin::SelectedTask;
use crate::model::ScanProgress;
use crate::parallel::{parallel_map, parallel_map_lazy};
use crate::procfs;
use kcmp::{Error, FdNum, Pid, Result};
use std::collections::HashMap;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Condvar, Mutex, OnceLock};

/// The tasks' family: each task's parent among the selected tasks (the
/// thread-group leader for a thread when threads are tasks, the parent
/// process otherwise), and the tasks by depth, parents before children.
pub(crate) struct Family {
    pub parent: Vec<Option<u32>>,
    pub levels: Vec<Vec<u32>>,
}

impl Family {
    pub(crate) fn new(tasks: &[SelectedTask], threads: bool) -> Family {
        let mut task_of_pid: HashMap<Pid, u32> = HashMap::with_capacity(tasks.len());
        for (i, t) in tasks.iter().enumerate() {
            task_of_pid.insert(t.record.pid, i as u32);
        }
        let parent: Vec<Option<u32>> = tasks
            .iter()
            .map(|t| {
                let rec = &t.record;
                let p = if threads && rec.pid != rec.tgid {
                    rec.tgid
                } else {
                    Pid::new(rec.ppid).ok()?
                };
                task_of_pid.get(&p).copied()
            })
            .collect();
        let mut depth: Vec<Option<u32>> = vec![None; tasks.len()];
        let mut levels: Vec<Vec<u32>> = Vec::new();
        for t in 0..tasks.len() as u32 {
            // Walk up to a task of known depth (or a root), then assign.
            let mut chain = vec![t];
            let mut d = loop {
                let top = *chain.last().expect("non-empty");
                if let Some(d) = depth[top as usize] {
                    chain.pop(); // known already: only the ones below it get a depth
                    break d;
                }
                match parent[top as usize] {
                    Some(p) if !chain.contains(&p) => chain.push(p),
                    _ => {
                        depth[top as usize] = Some(0);
                        chain.pop();
                        if levels.is_empty() {
                            levels.push(Vec::new());
                        }
                        levels[0].push(top);
                        break 0;
                    }
                }
            };
            while let Some(x) = chain.pop() {
                d += 1;
                depth[x as usize] = Some(d);
                if levels.len() <= d as usize {
                    levels.resize(d as usize + 1, Vec::new());
                }
                levels[d as usize].push(x);
            }
        }
        Family { parent, levels }
    }
}

/// One task's listing.
pub(crate) struct Listing {
    /// Its fds and link texts, or why its fd directory could not be read.
    pub fds: Result<Vec<procfs::FdEntry>>,
    /// Fds whose link could not be read (ENAMETOOLONG, EACCES, ...).
    pub bad: Vec<(FdNum, Error)>,
}

/// Lists every task's fds (through `task.via`) on all workers. A link that
/// cannot be read is one bad fd, never the whole task.
pub(crate) fn list_fds(
    tasks: &[SelectedTask],
    workers: usize,
    progress: &(dyn Fn(ScanProgress) + Sync),
) -> Vec<Listing> {
    let done = AtomicU64::new(0);
    let total = tasks.len() as u64;
    // Few tasks may each hold very many fds: start every worker at once.
    let eager = tasks.len() < LAZY_TASKS;
    let one = |t: usize| {
        let listing = list_task(&tasks[t]);
        let d = done.fetch_add(1, AtomicOrdering::Relaxed) + 1;
        if d % 64 == 0 || d == total {
            progress(ScanProgress {
                phase: 0,
                done: d,
                total,
            });
        }
        listing
    };
    match eager {
        true if workers > 1 => {
            let listed = list_in_chunks(tasks, workers, &one);
            progress(ScanProgress {
                phase: 0,
                done: total,
                total,
            });
            listed
        }
        true => parallel_map(tasks.len(), workers, one),
        false => parallel_map_lazy(tasks.len(), workers, one),
    }
}

/// Fds whose links one worker reads at a time, of a task with more.
const CHUNK: usize = 2048;

/// [`list_fds`] for few tasks, which may each hold very many fds (4 tasks
/// of 15,000 on 2 cores left one core idle for a third of the phase): each
/// task's fd directory is read, then its links in chunks of [`CHUNK`], all
/// from one queue on all workers: directories first (a worker done with
/// one reads another's links while the rest are read), then the chunks
/// round robin by task (two readers of one directory share its dentry's
/// reference count and the task's lock). `one` lists a task whose
/// directory could not be read (again, for its error) or is empty.
fn list_in_chunks(
    tasks: &[SelectedTask],
    workers: usize,
    one: &(dyn Fn(usize) -> Listing + Sync),
) -> Vec<Listing> {
    let queue = ChunkQueue::new(tasks.len());
    let parts: Vec<Mutex<Vec<(usize, Listing)>>> =
        (0..tasks.len()).map(|_| Mutex::new(Vec::new())).collect();
    let dirs: Vec<OnceLock<Option<Directory>>> =
        (0..tasks.len()).map(|_| OnceLock::new()).collect();
    let handle = |item: Item| {
        let (t, at, listing) = match item {
            Item::Directory(t) => {
                // Told read even when this worker panics: the others end.
                let mut done = DirectoryRead(&queue, t, 0);
                let read = read_directory(&tasks[t]);
                let chunks = read
                    .as_ref()
                    .map_or(0, |(_, fds)| fds.len().div_ceil(CHUNK));
                let _ = dirs[t].set(read);
                done.2 = chunks;
                drop(done); // its chunks join the queue
                if chunks > 0 {
                    return;
                }
                (t, 0, one(t))
            }
            Item::Chunk(t, c) => {
                let (dir, fds) = dirs[t].get().and_then(Option::as_ref).expect("read first");
                let range = c * CHUNK..((c + 1) * CHUNK).min(fds.len());
                (t, c, links(dir, &fds[range]))
            }
        };
        lock(&parts[t]).push((at, listing));
    };
    let work = || {
        while let Some(item) = queue.next() {
            handle(item);
        }
    };
    // This thread starts helpers as items wait, `workers` threads in all:
    // one small task starts none, one big task's chunks get them all.
    std::thread::scope(|s| {
        let mut running = 1;
        // Threads wanted: this one, with `holding` an item or not, and one
        // per other item waiting.
        let mut grow = |holding: usize| {
            while running < workers.min(queue.waiting() + holding) {
                s.spawn(work);
                running += 1;
            }
        };
        while let Some(item) = queue.next() {
            grow(1);
            handle(item);
            grow(0); // the chunks it queued: this thread takes one
        }
    });
    parts.into_iter().map(joined).collect()
}

/// A task's listing from its parts (by chunk index).
fn joined(parts: Mutex<Vec<(usize, Listing)>>) -> Listing {
    let mut parts = parts.into_inner().unwrap_or_else(|e| e.into_inner());
    parts.sort_unstable_by_key(|(at, _)| *at);
    let mut parts = parts.into_iter().map(|(_, l)| l);
    let mut whole = parts.next().expect("every task was listed");
    for part in parts {
        whole.bad.extend(part.bad);
        match (&mut whole.fds, part.fds) {
            (Ok(entries), Ok(more)) => entries.extend(more),
            (Ok(_), Err(e)) => whole.fds = Err(e),
            (Err(_), _) => {}
        }
    }
    whole
}

/// A task's fd directory, open, and its fds.
type Directory = (procfs::FdDir, Vec<FdNum>);

/// A task's fd directory and its fds (without the directory's own fd when
/// the task is this process); `None` when it cannot be read.
fn read_directory(task: &SelectedTask) -> Option<Directory> {
    let r = &task.record;
    if r.kernel_thread || r.is_zombie() {
        return None;
    }
    let dir = procfs::FdDir::open(task.via).ok()?;
    let fds = dir.fds().ok()?;
    let skip = (r.tgid == Pid::this()).then(|| dir.own_number());
    let fds = fds.into_iter().filter(|&fd| Some(fd) != skip).collect();
    Some((dir, fds))
}

/// Work for [`list_in_chunks`]: a task's directory, or a chunk (by index)
/// of a task's fds.
enum Item {
    Directory(usize),
    Chunk(usize, usize),
}

/// The queue of [`list_in_chunks`]: directories not taken yet, then each
/// read task's chunks, taken round robin by task.
struct ChunkQueue {
    state: Mutex<QueueState>,
    ready: Condvar,
}

struct QueueState {
    directories: std::ops::Range<usize>,
    /// Directories taken and not read yet: their chunks may still come.
    reading: usize,
    /// (task, next chunk, chunks) of each read task with chunks left.
    chunks: VecDeque<(usize, usize, usize)>,
}

impl ChunkQueue {
    fn new(tasks: usize) -> ChunkQueue {
        ChunkQueue {
            state: Mutex::new(QueueState {
                directories: 0..tasks,
                reading: 0,
                chunks: VecDeque::new(),
            }),
            ready: Condvar::new(),
        }
    }

    /// The next item; `None` once everything is taken.
    fn next(&self) -> Option<Item> {
        let mut q = lock(&self.state);
        loop {
            if let Some(t) = q.directories.next() {
                q.reading += 1;
                return Some(Item::Directory(t));
            }
            if let Some((t, c, n)) = q.chunks.pop_front() {
                if c + 1 < n {
                    q.chunks.push_back((t, c + 1, n));
                }
                return Some(Item::Chunk(t, c));
            }
            if q.reading == 0 {
                return None;
            }
            q = self.ready.wait(q).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Items not taken yet: directories and chunks.
    fn waiting(&self) -> usize {
        let q = lock(&self.state);
        q.directories.len() + q.chunks.iter().map(|&(_, c, n)| n - c).sum::<usize>()
    }

    /// Task `t`'s directory was read: its `chunks` join the queue.
    fn read(&self, t: usize, chunks: usize) {
        let mut q = lock(&self.state);
        q.reading -= 1;
        if chunks > 0 {
            q.chunks.push_back((t, 0, chunks));
        }
        self.ready.notify_all();
    }
}

/// Tells the queue that task `.1`'s directory was read, with `.2` chunks,
/// when dropped.
struct DirectoryRead<'q>(&'q ChunkQueue, usize, usize);

impl Drop for DirectoryRead<'_> {
    fn drop(&mut self) {
        self.0.read(self.1, self.2);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The entries of `fds` in `dir`: closed ones left out, unreadable links
/// as bad fds, an error when the task is gone.
fn links(dir: &procfs::FdDir, fds: &[FdNum]) -> Listing {
    let mut out = Listing {
        fds: Ok(Vec::new()),
        bad: Vec::new(),
    };
    let mut entries = Vec::with_capacity(fds.len());
    for &fd in fds {
        match dir.entry(fd) {
            Ok(Some(entry)) => entries.push(entry),
            Ok(None) => {} // closed meanwhile
            Err(e) if e.is_gone() => {
                out.fds = Err(e);
                return out;
            }
            Err(e) => out.bad.push((fd, e)),
        }
    }
    out.fds = Ok(entries);
    out
}

/// From this many tasks on, listing starts alone and adds workers once it
/// turns out to need them (see [`parallel_map_lazy`]).
const LAZY_TASKS: usize = 64;

/// Lists one task's fds.
pub(crate) fn list_task(task: &SelectedTask) -> Listing {
    let mut out = Listing {
        fds: Ok(Vec::new()),
        bad: Vec::new(),
    };
    let r = &task.record;
    if r.kernel_thread || r.is_zombie() {
        return out;
    }
    let dir = match procfs::FdDir::open(task.via) {
        Ok(dir) => dir,
        Err(e) => {
            out.fds = Err(e);
            return out;
        }
    };
    let this = task.record.tgid == Pid::this();
    match dir.fds() {
        // Without the directory being read, in a listing of this process.
        Ok(fds) => links(
            &dir,
            &fds.into_iter()
                .filter(|&fd| !(this && fd == dir.own_number()))
                .collect::<Vec<_>>(),
        ),
        Err(e) => {
            out.fds = Err(e);
            out
        }
    }
}

/// When another engine operation of this process overlapped `operation`,
/// this process's listing is replaced by that error (the other's copies
/// and pidfds cannot be told from its fds). True when it was.
pub(crate) fn leave_out_own_unless_alone(
    tasks: &[SelectedTask],
    listed: &mut [Listing],
    operation: &super::own_table::Operation,
) -> bool {
    let Err(e) = operation.alone() else {
        return false;
    };
    let me = Pid::this();
    for (t, l) in tasks.iter().zip(listed.iter_mut()) {
        if t.record.tgid == me {
            l.bad.clear();
            l.fds = Err(e.clone());
        }
    }
    true
}

/// This process's own fds and their links, read before the engine opens
/// anything: the caller's fds. See [`drop_engine_fds`].
pub(crate) fn own_fds() -> HashMap<FdNum, procfs::FdEntry> {
    let Ok(dir) = procfs::FdDir::open(super::own_table::own_fds_task()) else {
        return HashMap::new();
    };
    let mut out = HashMap::new();
    for fd in dir.fds().unwrap_or_default() {
        if fd != dir.own_number() {
            if let Ok(Some(entry)) = dir.entry(fd) {
                out.insert(fd, entry);
            }
        }
    }
    out
}

/// In a scan of this very process, keeps only the caller's fds: those open
/// with the same link (exact bytes) before the scan began (`own`), and not one of
/// the engine's pidfds. The engine's pidfds, pipes, /proc directories and
/// copies all come later, so they never appear; a caller's fd closed and
/// reused during the scan is left out too (it changed).
///
/// When another engine operation of this process overlapped this one
/// (`operation`), this process's fds are not reported: the other's copies
/// and pidfds cannot be told from them (its sentinels are left out of the
/// selection by [`crate::sentinel::all_pids`]).
pub(crate) fn drop_engine_fds(
    tasks: &[SelectedTask],
    listed: &mut [Listing],
    own: &HashMap<FdNum, procfs::FdEntry>,
    operation: &super::own_table::Operation,
) {
    if leave_out_own_unless_alone(tasks, listed, operation) {
        return;
    }
    let me = Pid::this();
    let pidfds: std::collections::HashSet<i32> = tasks
        .iter()
        .filter_map(|t| t.pidfd())
        .map(|fd| rustix::fd::AsRawFd::as_raw_fd(&fd))
        .collect();
    for (t, l) in tasks.iter().zip(listed.iter_mut()) {
        if t.record.tgid != me {
            continue;
        }
        if let Ok(entries) = &mut l.fds {
            entries.retain(|e| own.get(&e.fd) == Some(e) && !pidfds.contains(&e.fd.get()));
        }
        l.bad.retain(|(fd, _)| own.contains_key(fd));
    }
}
