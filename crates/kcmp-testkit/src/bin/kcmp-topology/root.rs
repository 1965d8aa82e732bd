//! The root: spawns children, waits until they are ready, and kills and
//! reaps them all at the end.

use crate::ctx::Ctx;
use crate::rng::Rng;
use crate::slots::{FAILED, READY, READY_TIMEOUT};
use crate::{e, sys, R};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// A child that exited at once and is kept unreaped.
pub struct Zombie {
    pub label: String,
    pub pid: i32,
}

/// The root process: its own fd table, every child it spawned, and what it
/// removes at the end.
pub struct Root {
    pub ctx: Ctx,
    pub labels: Vec<String>,
    pub pids: Vec<i32>,
    pub zombies: Vec<Zombie>,
    pub tmp: PathBuf,
    pub sem: Option<i32>,
}

impl Root {
    /// Forks a child that runs `f` (with a copy of the root's table as
    /// inherited), checks its table, publishes it and blocks.
    pub fn spawn(&mut self, label: &str, f: impl FnOnce(&mut Ctx) -> R<()>) -> R<i32> {
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

    pub fn zombie(&mut self, label: &str) -> R<i32> {
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

    pub fn wait_all(&self) -> R<()> {
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

    pub fn all_pids(&self) -> Vec<i32> {
        let mut v: Vec<i32> = self.pids[1..].to_vec();
        for idx in 1..self.labels.len() {
            let s = &self.ctx.slots[idx];
            let n = s.nextra.load(Ordering::Acquire) as usize;
            v.extend(s.extras[..n].iter().map(|x| x.pid.load(Ordering::Relaxed)));
        }
        v
    }

    pub fn cleanup(&mut self) {
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
}

pub fn child_main(ctx: &mut Ctx, parent: i32, f: impl FnOnce(&mut Ctx) -> R<()>) -> ! {
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
