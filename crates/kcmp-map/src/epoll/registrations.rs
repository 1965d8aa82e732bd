//! fdinfo's `tfd:` lines: reading them and numbering each with its `toff`.

use super::{Registration, EPOLL_LINK};
use crate::procfs::{self, EpollRegistration};
use kcmp::{Error, FdNum, Pid, Result};
use rustix::io::Errno;
use std::collections::HashMap;

impl Registration {
    /// The same registration, ignoring the position (which moves by itself).
    fn same_as(&self, other: &Registration) -> bool {
        (
            self.tfd,
            self.toff,
            self.events,
            self.data,
            self.ino,
            self.sdev,
        ) == (
            other.tfd,
            other.toff,
            other.events,
            other.data,
            other.ino,
            other.sdev,
        )
    }
}

/// Whether the registrations read `after` an inspection are those read
/// `before` it (positions aside).
pub(super) fn unchanged(before: &[Registration], after: &[Registration]) -> bool {
    after.len() == before.len() && after.iter().zip(before).all(|(a, b)| a.same_as(b))
}

/// See [`super::number_registrations`].
pub(super) fn number(lines: &[EpollRegistration]) -> Vec<Registration> {
    let mut seen: HashMap<i32, u32> = HashMap::new();
    lines
        .iter()
        .filter_map(|l| {
            let tfd = FdNum::new(l.tfd).ok()?;
            let n = seen.entry(l.tfd).or_insert(0);
            let toff = *n;
            *n += 1;
            Some(Registration {
                tfd,
                toff,
                events: l.events,
                data: l.data,
                pos: l.pos,
                ino: l.ino,
                sdev: l.sdev,
            })
        })
        .collect()
}

fn not_open(pid: Pid, fd: FdNum) -> Error {
    Error::os(format!("fd {fd} of process {pid} is not open"), Errno::BADF)
}

/// See [`super::check_epoll_fd`].
pub(super) fn check(pid: Pid, epfd: FdNum) -> Result<()> {
    let link = procfs::fd_target(pid, epfd)?;
    if link == EPOLL_LINK {
        Ok(())
    } else {
        Err(Error::os(
            format!("fd {epfd} of process {pid} is not an epoll instance (it is {link})"),
            Errno::INVAL,
        ))
    }
}

/// See [`super::registrations`]. Only an epoll instance's fdinfo shows
/// `tfd:` lines: the link is read (is `epfd` one?) only when it shows none
/// or cannot be read.
pub(super) fn read(pid: Pid, epfd: FdNum) -> Result<Vec<Registration>> {
    match read_again(pid, epfd) {
        Ok(regs) if !regs.is_empty() => Ok(regs),
        first => {
            check(pid, epfd)?;
            first
        }
    }
}

/// The registrations of `epfd`, read again after [`read`] checked that it
/// is an epoll instance: no new check (were `epfd` replaced by another
/// file since, its registrations would differ, and [`unchanged`] says so;
/// the next attempt's [`read`] then finds what it is).
pub(super) fn read_again(pid: Pid, epfd: FdNum) -> Result<Vec<Registration>> {
    let info = procfs::read_fdinfo(pid, epfd).map_err(|e| {
        if e.errno() == Some(Errno::NOENT) {
            not_open(pid, epfd)
        } else {
            e
        }
    })?;
    Ok(number(&info.epoll_registrations))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toffs_count_per_tfd_in_line_order() {
        let line = |tfd, data| EpollRegistration {
            tfd,
            events: 0x19,
            data,
            pos: 0,
            ino: 1,
            sdev: 0xd,
        };
        let regs = number(&[line(5, 1), line(5, 2), line(6, 3), line(5, 4)]);
        let got: Vec<(i32, u32, u64)> =
            regs.iter().map(|r| (r.tfd.get(), r.toff, r.data)).collect();
        assert_eq!(got, [(5, 0, 1), (5, 1, 2), (6, 0, 3), (5, 2, 4)]);
    }

    #[test]
    fn a_moved_position_is_no_change() {
        let line = |tfd, pos| EpollRegistration {
            tfd,
            events: 0x19,
            data: 1,
            pos,
            ino: 1,
            sdev: 0xd,
        };
        let before = number(&[line(5, 0), line(6, 0)]);
        assert!(unchanged(&before, &number(&[line(5, 10), line(6, 20)])));
        assert!(!unchanged(&before, &number(&[line(5, 0)])));
        assert!(!unchanged(&before, &number(&[line(5, 0), line(7, 0)])));
    }
}
