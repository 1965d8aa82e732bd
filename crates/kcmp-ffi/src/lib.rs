//! # libkcmp — the C wrapper glibc lacks for kcmp(2)
//!
//! glibc has no `kcmp()` wrapper, so every C program pastes its own
//! `syscall(SYS_kcmp, ...)` shim. This crate builds `libkcmp.so`
//! (soname `libkcmp.so.0`) and `libkcmp.a`, declared by `kcmp.h`:
//!
//! ```c
//! #include <kcmp.h>   /* includes <linux/kcmp.h> for KCMP_FILE, ... */
//!
//! int     kcmp(pid_t pid1, pid_t pid2, int type, unsigned long idx1, unsigned long idx2);
//! int     kcmp_same_file(pid_t pid1, int fd1, pid_t pid2, int fd2);
//! ssize_t kcmp_holders(pid_t pid, int fd, struct kcmp_holder **out);
//! void    kcmp_holders_free(struct kcmp_holder *holders);
//! ```
//!
//! Build a C program with `cc prog.c $(pkg-config --cflags --libs kcmp)`.
//!
//! * [`kcmp_syscall`] (the C symbol `kcmp`) is the system call and nothing
//!   else: it returns exactly what `syscall(SYS_kcmp, ...)` returns — 0, 1
//!   or 2, or -1 with `errno` set — with no validation of its own.
//! * [`kcmp_same_file`] and [`kcmp_holders`] are built on the Rust library
//!   [`kcmp`]: they validate their arguments (a pid must be > 0: `EINVAL`
//!   otherwise; an fd >= 0: `EBADF` otherwise, as kcmp(2) itself answers for
//!   fd -1) and map library errors to `errno`
//!   ([`kcmp::Error::errno`]).
//!
//! No Rust panic crosses the C boundary: the higher-level calls run inside
//! [`std::panic::catch_unwind`] and report a panic as `-1` with `errno`
//! `EIO`.
//!
//! Everything is also callable from Rust through this crate's rlib:
//!
//! ```
//! use std::os::fd::AsRawFd;
//! let f = std::fs::File::open("/dev/null").unwrap();
//! let g = f.try_clone().unwrap(); // dup(): one open file description
//! let me = std::process::id() as libc::pid_t;
//! assert_eq!(kcmp_ffi::kcmp_same_file(me, f.as_raw_fd(), me, g.as_raw_fd()), 1);
//! ```
#![warn(missing_docs)]

use kcmp::{FdNum, Pid};
use kcmp_map::holders::HoldersOptions;
use libc::{c_int, c_ulong, pid_t, ssize_t};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// One holder of an open file description: a process and the fd number
/// under which it holds the description. C: `struct kcmp_holder`.
///
/// ```
/// assert_eq!(std::mem::size_of::<kcmp_ffi::KcmpHolder>(), 8);
/// ```
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KcmpHolder {
    /// The process id.
    pub pid: pid_t,
    /// The fd number in that process.
    pub fd: c_int,
}

/// The C function `kcmp()`: the kcmp(2) system call, unchanged.
///
/// Returns 0 (same object), 1 or 2 (an order: less, greater), or -1 with
/// `errno` set by the kernel (`ESRCH`, `EPERM`, `EBADF`, `EINVAL`,
/// `ENOENT`, `EFAULT`, `EOPNOTSUPP`, `ENOSYS`, …). Arguments are passed
/// through as they are: an fd idx is truncated to 32 bits by the kernel,
/// and for `KCMP_EPOLL_TFD` idx2 is the address of a `struct
/// kcmp_epoll_slot` that the kernel reads (a bad address gives `EFAULT`).
///
/// Exported under the C name `kcmp` (the Rust name avoids clashing with
/// the `kcmp` crate).
///
/// ```
/// let me = std::process::id() as libc::pid_t;
/// assert_eq!(kcmp_ffi::kcmp_syscall(me, me, kcmp::KcmpType::Vm as i32, 0, 0), 0);
/// assert_eq!(kcmp_ffi::kcmp_syscall(me, -1, kcmp::KcmpType::Vm as i32, 0, 0), -1);
/// assert_eq!(std::io::Error::last_os_error().raw_os_error(), Some(libc::ESRCH));
/// ```
#[export_name = "kcmp"]
pub extern "C" fn kcmp_syscall(
    pid1: pid_t,
    pid2: pid_t,
    type_: c_int,
    idx1: c_ulong,
    idx2: c_ulong,
) -> c_int {
    // SAFETY: kcmp(2) takes five integer arguments and reads no memory of
    // ours except, for KCMP_EPOLL_TFD, 12 bytes at address idx2 via
    // copy_from_user, which fails with EFAULT on a bad address instead of
    // faulting. The kernel never writes to our memory, so no argument value
    // can break memory safety. The arguments are widened exactly as the
    // syscall ABI expects (pids and type sign-extended to long).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_kcmp,
            pid1 as libc::c_long,
            pid2 as libc::c_long,
            type_ as libc::c_long,
            idx1,
            idx2,
        )
    };
    // The kernel returns -1..=3 here; syscall() has already set errno.
    ret as c_int
}

/// The C function `kcmp_same_file()`: do fd1 of pid1 and fd2 of pid2 refer
/// to one open file description?
///
/// Returns 1 (same description), 0 (different), or -1 with `errno` set:
/// `EINVAL` (pid <= 0), `ESRCH` (no such process), `EBADF` (fd < 0 or
/// not open), `EPERM` (no ptrace read access), … When kcmp(2) itself is
/// unavailable (`ENOSYS`, or `EPERM` even for the caller against itself: a
/// seccomp filter or sandbox), the library's fallbacks answer
/// ([`kcmp::fallback::same_description`]): `F_DUPFD_QUERY` or the epoll
/// trick within the caller, `pidfd_getfd` (which needs ptrace *attach*
/// rights) for other processes. Whether kcmp works is probed once per
/// process, at the first call.
///
/// ```
/// use std::os::fd::AsRawFd;
/// let me = std::process::id() as libc::pid_t;
/// let f = std::fs::File::open("/dev/null").unwrap();
/// let g = std::fs::File::open("/dev/null").unwrap(); // a second open()
/// assert_eq!(kcmp_ffi::kcmp_same_file(me, f.as_raw_fd(), me, f.as_raw_fd()), 1);
/// assert_eq!(kcmp_ffi::kcmp_same_file(me, f.as_raw_fd(), me, g.as_raw_fd()), 0);
/// assert_eq!(kcmp_ffi::kcmp_same_file(me, f.as_raw_fd(), me, -1), -1);
/// assert_eq!(std::io::Error::last_os_error().raw_os_error(), Some(libc::EBADF));
/// ```
#[no_mangle]
pub extern "C" fn kcmp_same_file(pid1: pid_t, fd1: c_int, pid2: pid_t, fd2: c_int) -> c_int {
    guarded(-1, || match same_file(pid1, fd1, pid2, fd2) {
        Ok(same) => c_int::from(same),
        Err(e) => fail(&e, -1),
    })
}

fn same_file(pid1: pid_t, fd1: c_int, pid2: pid_t, fd2: c_int) -> kcmp::Result<bool> {
    let (pid1, fd1, pid2, fd2) = (
        Pid::new(pid1)?,
        FdNum::new(fd1)?,
        Pid::new(pid2)?,
        FdNum::new(fd2)?,
    );
    Ok(kcmp::fallback::same_description(pid1, fd1, pid2, fd2)?.same)
}

/// The C function `kcmp_holders()`: every (pid, fd) of the host that refers
/// to the same open file description as `fd` of `pid` (the caller's own
/// fds included), sorted by pid, then fd.
///
/// On success returns the number of holders `n` and stores in `*out` an
/// array of `n` [`KcmpHolder`]s (NULL when `n` is 0) that the caller owns
/// and must release with [`kcmp_holders_free`]. On error returns -1, sets
/// `errno` (`EINVAL` for a NULL `out`, a pid <= 0, or a thread of the
/// caller's process with another fd table than the calling thread, from
/// `unshare(CLONE_FILES)`; `EBADF` for an fd < 0 or not open; `ESRCH`, `EPERM`, `ENOMEM`, …) and stores NULL in `*out` (when
/// `out` is not NULL).
///
/// Processes the caller may not inspect are skipped, as are processes that
/// exit during the search. Without kcmp(2) the search uses the same
/// fallbacks as [`kcmp_same_file`] (exact, but equality without order).
/// The search runs on helper threads (one per CPU), joined before return.
///
/// # Safety
/// `out` must be NULL or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn kcmp_holders(pid: pid_t, fd: c_int, out: *mut *mut KcmpHolder) -> ssize_t {
    guarded(-1, || {
        if out.is_null() {
            set_errno(libc::EINVAL);
            return -1;
        }
        // SAFETY: `out` is non-null and, by this function's contract, valid
        // for writing one pointer.
        unsafe { out.write(std::ptr::null_mut()) };
        let holders = match holders(pid, fd) {
            Ok(h) => h,
            Err(e) => return fail(&e, -1),
        };
        match to_c_array(&holders) {
            Some(array) => {
                // SAFETY: as above.
                unsafe { out.write(array) };
                holders.len() as ssize_t
            }
            None => {
                set_errno(libc::ENOMEM);
                -1
            }
        }
    })
}

fn holders(pid: pid_t, fd: c_int) -> kcmp::Result<Vec<KcmpHolder>> {
    let (pid, fd) = (Pid::new(pid)?, FdNum::new(fd)?);
    // A C caller's own fds are real holders.
    let options = HoldersOptions {
        include_self: true,
        ..HoldersOptions::default()
    };
    let report = kcmp_map::holders::find_holders(pid, fd, &options)?;
    let mut holders: Vec<KcmpHolder> = report
        .holders
        .iter()
        .map(|h| KcmpHolder {
            pid: h.pid.get(),
            fd: h.fd.get(),
        })
        .collect();
    holders.sort_unstable();
    Ok(holders)
}

/// Copies `items` into a `malloc`ed array (NULL for an empty slice).
/// Returns `None` when the allocation fails.
fn to_c_array(items: &[KcmpHolder]) -> Option<*mut KcmpHolder> {
    if items.is_empty() {
        return Some(std::ptr::null_mut());
    }
    let bytes = items.len().checked_mul(std::mem::size_of::<KcmpHolder>())?;
    // SAFETY: malloc has no preconditions; a non-zero size is requested.
    let array = unsafe { libc::malloc(bytes) }.cast::<KcmpHolder>();
    if array.is_null() {
        return None;
    }
    // SAFETY: `array` was just allocated with room for `items.len()`
    // elements, is suitably aligned (malloc aligns for any fundamental type)
    // and cannot overlap `items`.
    unsafe { std::ptr::copy_nonoverlapping(items.as_ptr(), array, items.len()) };
    Some(array)
}

/// The C function `kcmp_holders_free()`: releases an array returned by
/// [`kcmp_holders`]. NULL is accepted and ignored.
///
/// # Safety
/// `holders` must be NULL or a pointer stored by [`kcmp_holders`] that has
/// not been freed yet.
#[no_mangle]
pub unsafe extern "C" fn kcmp_holders_free(holders: *mut KcmpHolder) {
    // SAFETY: by this function's contract the pointer is NULL (a no-op for
    // free) or came from the malloc in `to_c_array` and is freed only once.
    unsafe { libc::free(holders.cast()) }
}

/// Runs `f`, turning a panic into `errno = EIO` and the value `failed`.
fn guarded<T>(failed: T, f: impl FnOnce() -> T) -> T {
    // AssertUnwindSafe: on a panic the closure's state is discarded, and only
    // `failed` is returned; nothing half-updated is observed afterwards.
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        set_errno(libc::EIO);
        failed
    })
}

/// Sets errno from a library error and returns `value`.
fn fail<T>(e: &kcmp::Error, value: T) -> T {
    set_errno(e.errno().map_or(libc::EIO, |e| e.raw_os_error()));
    value
}

fn set_errno(e: c_int) {
    // SAFETY: __errno_location returns a pointer to the calling thread's
    // errno, valid for the thread's lifetime.
    unsafe { *libc::__errno_location() = e };
}
