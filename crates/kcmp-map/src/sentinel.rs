//! Sentinel tasks: telling "none" from "shared".
//!
//! The kernel compares pointers even when a task has no object: two tasks
//! without an I/O context (`KCMP_IO`) or SysV undo list (`KCMP_SYSVSEM`)
//! compare equal, and so does every task without an mm, fd table or fs
//! struct (zombies) on `KCMP_VM`, `KCMP_FILES`, `KCMP_FS`.
//!
//! Sentinels make "none" observable: two freshly started children that were
//! given neither object compare equal *only* if both have none (two real
//! objects are two allocations), and then every task that compares equal to
//! them has none too. An exited, unreaped child (a zombie) has no mm, fd
//! table or fs struct, so whatever compares equal to it on those kinds has
//! none either.

use kcmp::Pid;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Two live sentinel tasks and one zombie, children of this process.
/// Dropping it ends and reaps them.
#[derive(Debug)]
pub struct Sentinels {
    live: Vec<Child>,
    zombie: Option<Child>,
}

impl Sentinels {
    /// Starts the sentinels and waits until they are ready: two `cat`
    /// processes waiting on an empty pipe, and one that exits at once and is
    /// left unreaped.
    ///
    /// ```
    /// let s = kcmp_map::sentinel::Sentinels::start().unwrap();
    /// assert_eq!(s.live_pids().len(), 2);
    /// assert!(s.zombie_pid().is_some());
    /// ```
    pub fn start() -> std::io::Result<Sentinels> {
        let mut s = Sentinels::spawn()?;
        s.wait_ready();
        Ok(s)
    }

    /// Starts the sentinels without waiting for them: their pids are known at
    /// once (to leave them out of a selection), and
    /// [`wait_ready`](Self::wait_ready) is needed only before comparing.
    pub fn spawn() -> std::io::Result<Sentinels> {
        let mut live = Vec::new();
        for _ in 0..2 {
            live.push(
                Command::new("cat")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()?,
            );
        }
        let zombie = Command::new("cat")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(Sentinels {
            live,
            zombie: Some(zombie),
        })
    }

    /// Waits (at most 5 s each) until the zombie has exited — it is not
    /// reaped — and the live ones have exec'd `cat`. A zombie that does not
    /// exit in time is dropped ([`zombie_pid`](Self::zombie_pid) is `None`).
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let zpid = self.zombie_pid();
        loop {
            let exited = zpid
                .and_then(|p| crate::procfs::read_stat(p).ok())
                .is_some_and(|st| st.is_zombie());
            if exited {
                break;
            }
            if Instant::now() > deadline {
                if let Some(mut z) = self.zombie.take() {
                    let _ = z.kill();
                    let _ = z.wait();
                }
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        for child in &self.live {
            let pid = Pid::new(child.id() as i32).expect("child pid");
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                match crate::procfs::read_stat(pid) {
                    Ok(st) if st.comm == "cat" => break,
                    _ => std::thread::sleep(Duration::from_micros(200)),
                }
            }
        }
    }

    /// The live sentinels (no I/O context, no undo list of their own).
    pub fn live_pids(&self) -> Vec<Pid> {
        self.live
            .iter()
            .filter_map(|c| Pid::new(c.id() as i32).ok())
            .collect()
    }

    /// The zombie sentinel (no mm, fd table or fs struct), if it exited in time.
    pub fn zombie_pid(&self) -> Option<Pid> {
        self.zombie
            .as_ref()
            .and_then(|c| Pid::new(c.id() as i32).ok())
    }

    /// All sentinel pids.
    pub fn pids(&self) -> Vec<Pid> {
        let mut v = self.live_pids();
        v.extend(self.zombie_pid());
        v
    }
}

impl Drop for Sentinels {
    fn drop(&mut self) {
        for child in &mut self.live {
            drop(child.stdin.take()); // cat sees EOF and exits
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(mut z) = self.zombie.take() {
            let _ = z.wait();
        }
    }
}
