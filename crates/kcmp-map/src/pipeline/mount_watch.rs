//! Mount tables by mount namespace, each kept current by a watch on its
//! `/proc/PID/mountinfo`: which mount a copy's mount id names.

use crate::mounts::MountTable;
use kcmp::Pid;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::io::Errno;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The mount tables of the namespaces of the tasks whose fds are copied.
#[derive(Debug, Default)]
pub(crate) struct MountTables {
    /// Mount tables by mount namespace (the `/proc/PID/ns/mnt` link).
    by_ns: Mutex<HashMap<String, WatchedTable>>,
    /// Each task's mount namespace link, read once.
    ns_of: Mutex<HashMap<Pid, String>>,
}

impl MountTables {
    /// The mount table of `pid`'s mount namespace, read once per namespace
    /// and, when `current` is asked, again whenever the namespace's mounts
    /// changed ([`WatchedTable`]); which namespace a task is in is read
    /// once per task (a mount id names one live mount on the whole host, so
    /// a task that changed namespace since finds its mounts, or none:
    /// unsafe).
    pub(crate) fn table(&self, pid: Pid, current: bool) -> Option<Arc<MountTable>> {
        let cached = self
            .ns_of
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&pid)
            .cloned();
        let ns = match cached {
            Some(ns) => ns,
            None => {
                let link = rustix::fs::readlink(format!("/proc/{pid}/ns/mnt"), Vec::new()).ok()?;
                let ns = link.to_string_lossy().into_owned();
                let mut of = self.ns_of.lock().unwrap_or_else(|e| e.into_inner());
                of.insert(pid, ns.clone());
                ns
            }
        };
        let mut cache = self.by_ns.lock().unwrap_or_else(|e| e.into_inner());
        let watched = cache.entry(ns).or_insert_with(|| WatchedTable::open(pid));
        if current {
            watched.refresh_if_changed();
        }
        watched.table.clone()
    }
}

/// A mount namespace's table and a watch on it: a mount id names one live
/// mount, but an id freed by an unmount is given to the next mount, so a
/// table read earlier can name the wrong mount. Every mount or unmount in
/// the namespace makes `poll` on an open `/proc/PID/mountinfo` report
/// `POLLPRI`, and the table is read again then: a mount id looked up just
/// after a copy was taken (the copy keeps its mount, and so its id) is
/// judged by a table that is current.
struct WatchedTable {
    table: Option<Arc<MountTable>>,
    watch: Option<OwnedFd>,
}

impl WatchedTable {
    /// Opens the watch, then reads the table (a change in between is seen
    /// as a change by the first poll).
    fn open(pid: Pid) -> WatchedTable {
        use rustix::fs::{open, Mode, OFlags};
        let path = format!("/proc/{pid}/mountinfo");
        let watch = open(
            path.as_str(),
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok();
        let table = watch.as_ref().and_then(|fd| read_table(fd.as_fd()));
        WatchedTable { table, watch }
    }

    /// Reads the table again when the namespace's mounts changed since.
    fn refresh_if_changed(&mut self) {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let Some(watch) = &self.watch else { return };
        let mut fds = [PollFd::new(watch, PollFlags::PRI)];
        let now = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let changed = match poll(&mut fds, Some(&now)) {
            Ok(_) => !fds[0].revents().is_empty(),
            Err(_) => true,
        };
        if changed {
            self.table = read_table(watch.as_fd());
        }
    }
}

impl std::fmt::Debug for WatchedTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mounts = self.table.as_ref().map(|t| t.len());
        f.debug_struct("WatchedTable")
            .field("mounts", &mounts)
            .finish()
    }
}

/// The mount table from an open `/proc/PID/mountinfo`, from its start.
fn read_table(fd: BorrowedFd<'_>) -> Option<Arc<MountTable>> {
    rustix::fs::seek(fd, rustix::fs::SeekFrom::Start(0)).ok()?;
    let mut text = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match rustix::io::read(fd, &mut buf) {
            Ok(0) => break,
            Ok(n) => text.extend_from_slice(&buf[..n]),
            Err(Errno::INTR) => continue,
            Err(_) => return None,
        }
    }
    Some(Arc::new(MountTable::parse(&String::from_utf8_lossy(&text))))
}
