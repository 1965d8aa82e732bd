//! The raw syscall layer: the only `unsafe` code of the library.
//!
//! Everything here is a thin, typed shim over one system call. Validation of
//! arguments (pid and fd ranges) happens in the safe layer above; this module
//! only guarantees memory safety.

use rustix::io::Errno;

pub mod fcntl;

/// The kernel ABI's `struct kcmp_epoll_slot` (include/uapi/linux/kcmp.h).
///
/// The man page shows `__u64 toff`; the kernel has three `__u32`, 12 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct KcmpEpollSlot {
    /// The epoll fd, looked up in pid2.
    pub efd: u32,
    /// The fd number the target was registered under.
    pub tfd: u32,
    /// Index among registrations under the same `tfd`, in the kernel's order.
    pub toff: u32,
}

const _: () = assert!(std::mem::size_of::<KcmpEpollSlot>() == 12);
const _: () = assert!(std::mem::align_of::<KcmpEpollSlot>() == 4);

/// `kcmp(pid1, pid2, type, idx1, idx2)` as the kernel defines it.
///
/// Returns the kernel's non-negative result or the errno.
#[inline]
pub fn kcmp(pid1: i32, pid2: i32, ty: i32, idx1: u64, idx2: u64) -> Result<i32, Errno> {
    // SAFETY: kcmp only reads its five integer arguments; for every type but
    // KCMP_EPOLL_TFD the idx values are plain integers. For KCMP_EPOLL_TFD the
    // kernel treats idx2 as a user pointer and copies from it with
    // copy_from_user, which fails with EFAULT on a bad address instead of
    // touching memory unsafely, so no argument value can violate memory safety.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_kcmp,
            pid1 as libc::c_long,
            pid2 as libc::c_long,
            ty as libc::c_long,
            idx1 as libc::c_ulong,
            idx2 as libc::c_ulong,
        )
    };
    if ret < 0 {
        Err(Errno::from_raw_os_error(
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        ))
    } else {
        Ok(ret as i32)
    }
}

/// `kcmp(pid1, pid2, KCMP_EPOLL_TFD, fd1, &slot)`.
#[inline]
pub fn kcmp_epoll_tfd(pid1: i32, pid2: i32, fd1: u64, slot: &KcmpEpollSlot) -> Result<i32, Errno> {
    kcmp(
        pid1,
        pid2,
        7,
        fd1,
        slot as *const KcmpEpollSlot as usize as u64,
    )
}

/// `pidfd_send_signal(pidfd, 0, NULL, 0)` (Linux 5.1): sends nothing; says
/// whether the pidfd's task still exists (a zombie does; `ESRCH` once it
/// was reaped).
pub fn pidfd_signal_zero(pidfd: std::os::fd::BorrowedFd<'_>) -> Result<(), Errno> {
    use std::os::fd::AsRawFd;
    // SAFETY: pidfd_send_signal reads its integer arguments; the siginfo
    // pointer is null, which the kernel accepts (no siginfo to copy).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd() as libc::c_long,
            0 as libc::c_long,
            std::ptr::null::<libc::siginfo_t>(),
            0 as libc::c_ulong,
        )
    };
    if ret < 0 {
        Err(Errno::from_raw_os_error(
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{kcmp, Errno};
    use std::os::fd::AsRawFd;

    #[test]
    fn the_kernel_says_einval_for_an_unknown_type() {
        let me = std::process::id() as i32;
        assert_eq!(kcmp(me, me, 8, 0, 0).unwrap_err(), Errno::INVAL);
    }

    #[test]
    fn the_kernel_truncates_fds_to_32_bits() {
        let me = std::process::id() as i32;
        let f = std::fs::File::open("/proc/self/status").unwrap();
        let raw = f.as_raw_fd() as u64;
        assert_eq!(kcmp(me, me, 0, (1u64 << 32) + raw, raw), Ok(0));
    }
}
