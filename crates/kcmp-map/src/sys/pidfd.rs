//! `PIDFD_GET_INFO` (Linux 6.13): a process's parent through its pidfd,
//! without formatting /proc/PID/stat.

use rustix::fd::{AsRawFd, BorrowedFd};
use rustix::io::Errno;

/// `struct pidfd_info` as of Linux 6.13 (`PIDFD_INFO_SIZE_VER0`, 64 bytes).
/// The kernel copies out only as much as the size in the ioctl's number.
#[repr(C)]
#[derive(Default)]
struct PidfdInfo {
    mask: u64,
    cgroupid: u64,
    pid: u32,
    tgid: u32,
    ppid: u32,
    ids: [u32; 8],
    exit_code: i32,
}

const _: () = assert!(std::mem::size_of::<PidfdInfo>() == 64);

/// `PIDFD_INFO_PID`: pid, tgid and ppid are filled in (always, when the
/// task has not been reaped).
const PIDFD_INFO_PID: u64 = 1;

/// `_IOWR(PIDFS_IOCTL_MAGIC = 0xFF, 11, struct pidfd_info)`.
const PIDFD_GET_INFO: libc::c_ulong =
    (3 << 30) | ((std::mem::size_of::<PidfdInfo>() as libc::c_ulong) << 16) | (0xFF << 8) | 11;

/// The task's thread-group id and its parent's, in the caller's pid
/// namespace. `ENOTTY` (or `EINVAL`) before Linux 6.13; `ESRCH` when the
/// task was reaped, or its parent is not in the caller's pid namespace.
pub(crate) fn tgid_and_ppid(pidfd: BorrowedFd<'_>) -> Result<(i32, i32), Errno> {
    let mut info = PidfdInfo {
        mask: PIDFD_INFO_PID,
        ..PidfdInfo::default()
    };
    // SAFETY: `info` is a live, writable 64-byte struct laid out as the
    // kernel's `struct pidfd_info` (VER0); the ioctl's number encodes that
    // size, so the kernel reads and writes at most those 64 bytes. A fd that
    // is not a pidfd makes the ioctl fail (ENOTTY), touching nothing.
    let ret = unsafe {
        libc::ioctl(
            pidfd.as_raw_fd(),
            PIDFD_GET_INFO,
            &mut info as *mut PidfdInfo,
        )
    };
    if ret < 0 {
        let errno = std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO);
        return Err(Errno::from_raw_os_error(errno));
    }
    if info.mask & PIDFD_INFO_PID == 0 || info.tgid == 0 {
        return Err(Errno::SRCH);
    }
    Ok((info.tgid as i32, info.ppid as i32))
}

#[cfg(test)]
mod tests {
    use super::tgid_and_ppid;
    use rustix::fd::AsFd;
    use rustix::io::Errno;

    #[test]
    fn names_this_process_and_its_parent_or_says_the_kernel_is_older() {
        let me = rustix::process::getpid();
        let fd = rustix::process::pidfd_open(me, rustix::process::PidfdFlags::empty()).unwrap();
        match tgid_and_ppid(fd.as_fd()) {
            Ok((tgid, ppid)) => {
                assert_eq!(tgid, me.as_raw_nonzero().get());
                let parent = rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get());
                assert_eq!(ppid, parent);
            }
            Err(e) => assert!(e == Errno::NOTTY || e == Errno::INVAL, "{e}"),
        }
    }

    #[test]
    fn a_file_that_is_not_a_pidfd_is_refused() {
        let f = std::fs::File::open("/proc/self/stat").unwrap();
        assert!(tgid_and_ppid(f.as_fd()).is_err());
    }
}
