//! A process's view of its own fd table, as built: the kinds of open files,
//! the description each fd refers to, and the calls that create, copy,
//! close and publish them (plus twins and threads).

use crate::rng::Rng;
use crate::slots::{Slot, MAX_EXTRA, MAX_NUMS, MAX_RECS, MAX_TIDS, READY_TIMEOUT};
use crate::{e, sys, R};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Kind {
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
    pub fn name(self) -> &'static str {
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
    pub fn from_u32(v: u32) -> R<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| *k as u32 == v)
            .ok_or_else(|| format!("bad kind {v}"))
    }
}

// A process's view of its own fd table, as built.

#[derive(Debug, Clone)]
pub struct Entry {
    pub desc: u64,
    pub kind: Kind,
    pub name: Option<String>,
}

pub struct Ctx {
    pub idx: usize,
    pub slots: &'static [Slot],
    pub table: BTreeMap<i32, Entry>,
    pub next: u32,
    pub data: PathBuf,
    pub sem: i32,
    pub rng: Rng,
}

impl Ctx {
    pub fn slot(&self) -> &'static Slot {
        &self.slots[self.idx]
    }

    /// A new description id: creator slot in the high half, a counter below.
    fn new_desc(&mut self) -> u64 {
        self.next += 1;
        ((self.idx as u64 + 1) << 32) | self.next as u64
    }

    pub fn add_new(&mut self, fd: i32, kind: Kind, name: Option<&str>) -> i32 {
        let desc = self.new_desc();
        self.insert(fd, desc, kind, name);
        fd
    }

    pub fn insert(&mut self, fd: i32, desc: u64, kind: Kind, name: Option<&str>) {
        self.table.insert(
            fd,
            Entry {
                desc,
                kind,
                name: name.map(str::to_string),
            },
        );
    }

    pub fn entry(&self, fd: i32) -> R<Entry> {
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

    pub fn name(&mut self, fd: i32, name: &str) -> R<()> {
        let en = self
            .table
            .get_mut(&fd)
            .ok_or_else(|| format!("naming fd {fd}: not open"))?;
        en.name = Some(name.to_string());
        Ok(())
    }

    pub fn number(&self, name: &str, value: i64) -> R<()> {
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

    pub fn open_path(&mut self, path: &Path, flags: i32, name: Option<&str>) -> R<i32> {
        let fd = sys::open(path, flags).map_err(e(format!("open {}", path.display())))?;
        let kind = if flags & libc::O_PATH != 0 {
            Kind::OPath
        } else {
            Kind::File
        };
        Ok(self.add_new(fd, kind, name))
    }

    /// A separate `open()` of the data file: always a new description.
    pub fn open_data(&mut self, flags: i32, name: Option<&str>) -> R<i32> {
        let path = self.data.clone();
        self.open_path(&path, flags, name)
    }

    pub fn pipe(&mut self, names: (Option<&str>, Option<&str>)) -> R<(i32, i32)> {
        let (r, w) = sys::pipe().map_err(e("pipe"))?;
        self.add_new(r, Kind::PipeR, names.0);
        self.add_new(w, Kind::PipeW, names.1);
        Ok((r, w))
    }

    pub fn socketpair(&mut self, ty: i32, names: (Option<&str>, Option<&str>)) -> R<(i32, i32)> {
        let (a, b) = sys::socketpair(ty).map_err(e("socketpair"))?;
        self.add_new(a, Kind::Socket, names.0);
        self.add_new(b, Kind::Socket, names.1);
        Ok((a, b))
    }

    pub fn eventfd(&mut self, name: Option<&str>) -> R<i32> {
        let fd = sys::eventfd().map_err(e("eventfd"))?;
        Ok(self.add_new(fd, Kind::Eventfd, name))
    }

    pub fn epoll(&mut self, name: Option<&str>) -> R<i32> {
        let fd = sys::epoll_create().map_err(e("epoll_create1"))?;
        Ok(self.add_new(fd, Kind::Epoll, name))
    }

    pub fn dup(&mut self, src: i32, name: Option<&str>) -> R<i32> {
        let fd = sys::dup(src).map_err(e(format!("dup({src})")))?;
        self.add_copy(fd, src, name)
    }

    pub fn dup2(&mut self, src: i32, new: i32, name: Option<&str>) -> R<i32> {
        let fd = sys::dup2(src, new).map_err(e(format!("dup2({src}, {new})")))?;
        self.add_copy(fd, src, name)
    }

    pub fn dupfd_cloexec(&mut self, src: i32, min: i32, name: Option<&str>) -> R<i32> {
        let fd = sys::dupfd_cloexec(src, min).map_err(e(format!("F_DUPFD_CLOEXEC {src}")))?;
        self.add_copy(fd, src, name)
    }

    pub fn close(&mut self, fd: i32) -> R<()> {
        sys::close(fd).map_err(e(format!("close({fd})")))?;
        self.table.remove(&fd);
        Ok(())
    }

    /// Keeps only `keep` of the inherited fds: closes every other fd number.
    pub fn keep_only(&mut self, keep: &BTreeSet<i32>) -> R<()> {
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

    pub fn free_fd_above(&self, min: i32) -> i32 {
        let mut n = min;
        while self.table.contains_key(&n) {
            n += 1;
        }
        n
    }

    /// Checks that /proc/self/fd lists exactly the planned fds.
    pub fn verify(&self) -> R<()> {
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

    pub fn publish(&self) -> R<()> {
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

    pub fn ioprio(&mut self) -> R<()> {
        sys::ioprio_set_be4().map_err(e("ioprio_set"))?;
        self.slot().has_io.store(1, Ordering::Release);
        Ok(())
    }

    pub fn sem_undo(&mut self) -> R<()> {
        sys::sem_up_undo(self.sem).map_err(e("semop SEM_UNDO"))?;
        self.slot().has_undo.store(1, Ordering::Release);
        Ok(())
    }

    /// Creates a process sharing what `flags` says (0: a plain fork). It
    /// copies (or, with CLONE_FILES, shares) this process's fd table as it is
    /// now, so call this after the table is final.
    pub fn twin(&mut self, flags: u64, name: &str) -> R<i32> {
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
    pub fn threads(&mut self, n: usize) -> R<()> {
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

    pub fn wait_extras(&self) -> R<()> {
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
