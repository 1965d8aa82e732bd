//! Whether closing a copy of a process's fd could wait on a server: the
//! fallbacks ([`crate::fallback`]) bring other processes' fds into this one
//! with `pidfd_getfd` and close the copies, and closing a copy of a FUSE
//! file sends `FLUSH` to its server and waits for the answer. Read from
//! /proc (the fd's link and fdinfo, its mount table), never from the file.
#![forbid(unsafe_code)]

use crate::fallback::LOCAL_FILESYSTEMS;
use crate::{Error, FdNum, Pid, Result};

/// Whether closing (a copy of) fd `fd` of `pid` never waits on a server: a
/// pipe, a socket or an anonymous inode (no `flush`), or a file whose mount
/// (fdinfo `mnt_id`) is in `table_pid`'s mount table with a type of
/// [`LOCAL_FILESYSTEMS`]. A mount in no table (detached, of another
/// namespace, the kernel's internal ones: memfds) counts as unsafe.
///
/// `Err` when the fd or the process is gone (its /proc entries vanished).
pub(crate) fn close_never_waits(pid: Pid, fd: FdNum, table_pid: Pid) -> Result<bool> {
    let link_path = format!("/proc/{pid}/fd/{fd}");
    let link = rustix::fs::readlink(link_path.as_str(), Vec::new())
        .map_err(|e| gone(pid, fd, &link_path, e))?;
    let link = link.as_bytes();
    if ["pipe:[", "socket:[", "anon_inode:"]
        .iter()
        .any(|p| link.starts_with(p.as_bytes()))
    {
        return Ok(true);
    }
    let info_path = format!("/proc/{pid}/fdinfo/{fd}");
    let info = std::fs::read_to_string(&info_path).map_err(|e| {
        let errno = rustix::io::Errno::from_io_error(&e).unwrap_or(rustix::io::Errno::IO);
        gone(pid, fd, &info_path, errno)
    })?;
    let Some(mnt_id) = info
        .lines()
        .find_map(|l| l.strip_prefix("mnt_id:"))
        .and_then(|v| v.trim().parse::<u64>().ok())
    else {
        return Ok(false);
    };
    let table_path = format!("/proc/{table_pid}/mountinfo");
    let table = std::fs::read_to_string(&table_path)
        .map_err(|e| Error::io(format!("read {table_path}"), &e))?;
    Ok(mount_type(&table, mnt_id).is_some_and(|t| LOCAL_FILESYSTEMS.contains(&t)))
}

/// The error of reading `path` (an entry of fd `fd` of `pid`): a missing
/// entry is the fd not open (`EBADF`, as `pidfd_getfd` says it) or the
/// process gone (`ESRCH`).
fn gone(pid: Pid, fd: FdNum, path: &str, errno: rustix::io::Errno) -> Error {
    use rustix::io::Errno;
    if errno != Errno::NOENT {
        return Error::os(format!("read {path}"), errno);
    }
    if std::path::Path::new(&format!("/proc/{pid}")).exists() {
        Error::os(format!("fd {fd} of process {pid} is not open"), Errno::BADF)
    } else {
        Error::os(format!("process {pid}"), Errno::SRCH)
    }
}

/// The filesystem type of mount `mnt_id` in a mountinfo text
/// (`ID PARENT MAJ:MIN ROOT POINT OPTS [OPTIONAL...] - TYPE SOURCE SUPER`).
fn mount_type(table: &str, mnt_id: u64) -> Option<&str> {
    table.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let id: u64 = left.split(' ').next()?.parse().ok()?;
        (id == mnt_id).then(|| right.split(' ').next())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_types_are_read_by_id() {
        let table = "21 1 0:20 / /proc rw - proc proc rw\n\
                     30 1 8:1 / / rw shared:1 - ext4 /dev/sda1 rw\n\
                     40 30 0:50 / /m\\040x rw - fuse.sshfs h:/ rw\n";
        assert_eq!(mount_type(table, 30), Some("ext4"));
        assert_eq!(mount_type(table, 40), Some("fuse.sshfs"));
        assert_eq!(mount_type(table, 4), None);
    }

    #[test]
    fn own_files_pipes_and_sockets_close_without_waiting() {
        let me = Pid::this();
        let (r, _w) = rustix::pipe::pipe().unwrap();
        let file = std::fs::File::open("/proc/self/status").unwrap();
        for fd in [FdNum::of(&r), FdNum::of(&file)] {
            assert!(close_never_waits(me, fd, me).unwrap(), "{fd}");
        }
        let gone = FdNum::new(1 << 20).unwrap();
        assert!(close_never_waits(me, gone, me).is_err());
    }
}
