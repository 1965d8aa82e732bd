//! libkcmp's exported functions called from Rust through the rlib, against
//! the real kernel and a real second process (a spawned `sleep`).

use kcmp_ffi::{kcmp_holders, kcmp_holders_free, kcmp_same_file, kcmp_syscall, KcmpHolder};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};

/// Tests that spawn children hold this: while one spawns, its child briefly
/// holds copies of all our fds (until exec closes them), which another
/// test's holder search would see.
static SPAWN_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn spawn_lock() -> std::sync::MutexGuard<'static, ()> {
    SPAWN_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn set_errno(e: i32) {
    // SAFETY: __errno_location points to this thread's errno.
    unsafe { *libc::__errno_location() = e };
}

/// (return value, errno when -1) of the exported kcmp() and of the raw
/// syscall with the same arguments.
fn both(p1: i32, p2: i32, ty: i32, i1: u64, i2: u64) -> ((i32, i32), (i64, i32)) {
    set_errno(0);
    let r = kcmp_syscall(p1, p2, ty, i1 as libc::c_ulong, i2 as libc::c_ulong);
    let e = if r == -1 { errno() } else { 0 };
    set_errno(0);
    // SAFETY: kcmp reads no caller memory for these types (no KCMP_EPOLL_TFD).
    let s = unsafe { libc::syscall(libc::SYS_kcmp, p1 as i64, p2 as i64, ty as i64, i1, i2) };
    let se = if s == -1 { errno() } else { 0 };
    ((r, e), (s, se))
}

#[test]
fn kcmp_matches_the_raw_syscall() {
    let me = std::process::id() as i32;
    let a = std::fs::File::open("/dev/null").unwrap();
    let b = std::fs::File::open("/dev/null").unwrap();
    let (fa, fb) = (a.as_raw_fd() as u64, b.as_raw_fd() as u64);
    let file = kcmp::KcmpType::File as i32;
    let cases: [(i32, i32, i32, u64, u64, i32, i32); 8] = [
        (me, me, kcmp::KcmpType::Vm as i32, 0, 0, 0, 0),
        (me, me, file, fa, fa, 0, 0),
        (me, me, file, (1 << 32) + fa, fa, 0, 0),
        (me, -1, file, fa, fa, -1, libc::ESRCH),
        (0, me, file, fa, fa, -1, libc::ESRCH),
        (me, me, 8, 0, 0, -1, libc::EINVAL),
        (me, me, file, 1_000_000, fa, -1, libc::EBADF),
        (me, me, file, fa, 1_000_000, -1, libc::EBADF),
    ];
    for (p1, p2, ty, i1, i2, want, want_errno) in cases {
        let ((r, e), (s, se)) = both(p1, p2, ty, i1, i2);
        assert_eq!((r as i64, e), (s, se), "kcmp({p1}, {p2}, {ty}, {i1}, {i2})");
        assert_eq!(
            (r, e),
            (want, want_errno),
            "kcmp({p1}, {p2}, {ty}, {i1}, {i2})"
        );
    }
    let ((ab, _), _) = both(me, me, file, fa, fb);
    let ((ba, _), _) = both(me, me, file, fb, fa);
    assert_eq!([ab.min(ba), ab.max(ba)], [1, 2], "an order, antisymmetric");
}

/// A `sleep` whose stdin is a dup of our file; killed and reaped on drop.
struct Holder(Child);

impl Holder {
    fn spawn(file: &std::fs::File) -> Holder {
        let child = Command::new("sleep")
            .arg("60")
            .stdin(Stdio::from(file.try_clone().unwrap()))
            .stdout(Stdio::null())
            .spawn()
            .expect("spawning sleep");
        Holder(child)
    }

    fn pid(&self) -> i32 {
        self.0.id() as i32
    }

    /// Waits (bounded) until the child has exec'd sleep, so that its fd
    /// table is final.
    fn wait_exec(&self) {
        let exe = format!("/proc/{}/exe", self.pid());
        for _ in 0..500 {
            if std::fs::read_link(&exe).is_ok_and(|p| p.ends_with("sleep")) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("child {} did not exec sleep within 5 s", self.pid());
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn same_file_across_processes() {
    let _serial = spawn_lock();
    let me = std::process::id() as i32;
    let f = std::fs::File::open("/dev/null").unwrap();
    let other = std::fs::File::open("/dev/null").unwrap();
    let child = Holder::spawn(&f);
    child.wait_exec();
    assert_eq!(kcmp_same_file(me, f.as_raw_fd(), child.pid(), 0), 1);
    assert_eq!(kcmp_same_file(child.pid(), 0, me, other.as_raw_fd()), 0);
    set_errno(0);
    assert_eq!(kcmp_same_file(child.pid(), 999_999, me, f.as_raw_fd()), -1);
    assert_eq!(errno(), libc::EBADF);
    set_errno(0);
    // A negative fd is EBADF, as kcmp(2) itself answers for fd -1.
    assert_eq!(kcmp_same_file(me, i32::MIN, me, 0), -1);
    assert_eq!(errno(), libc::EBADF);
}

/// Calls kcmp_holders and copies the answer out, freeing the C array.
fn holders(pid: i32, fd: i32) -> Result<Vec<KcmpHolder>, i32> {
    let mut out: *mut KcmpHolder = 8 as *mut KcmpHolder; // must be overwritten
                                                         // SAFETY: `out` is a valid place for one pointer.
    let n = unsafe { kcmp_holders(pid, fd, &mut out) };
    if n < 0 {
        let e = errno();
        assert!(out.is_null(), "*out is NULL on error");
        return Err(e);
    }
    let v = if n == 0 {
        assert!(out.is_null(), "*out is NULL for no holders");
        Vec::new()
    } else {
        // SAFETY: on success `out` points to `n` initialised holders.
        unsafe { std::slice::from_raw_parts(out, n as usize) }.to_vec()
    };
    // SAFETY: `out` came from kcmp_holders and is freed once.
    unsafe { kcmp_holders_free(out) };
    Ok(v)
}

#[test]
fn holders_across_processes() {
    let _serial = spawn_lock();
    let me = std::process::id() as i32;
    let f = std::fs::File::open("/dev/null").unwrap();
    let g = f.try_clone().unwrap();
    let child = Holder::spawn(&f);
    child.wait_exec();
    let got = holders(me, f.as_raw_fd()).expect("kcmp_holders");
    let mut want = vec![
        KcmpHolder {
            pid: me,
            fd: f.as_raw_fd(),
        },
        KcmpHolder {
            pid: me,
            fd: g.as_raw_fd(),
        },
        KcmpHolder {
            pid: child.pid(),
            fd: 0,
        },
    ];
    want.sort();
    assert_eq!(got, want);
    assert_eq!(
        holders(child.pid(), 0).expect("from the child's side"),
        want
    );

    assert_eq!(holders(me, 1_000_000), Err(libc::EBADF));
    assert_eq!(holders(me, -3), Err(libc::EBADF));
    assert_eq!(holders(-3, 0), Err(libc::EINVAL));
    set_errno(0);
    // SAFETY: a NULL `out` is allowed and reported as EINVAL.
    assert_eq!(unsafe { kcmp_holders(me, 0, std::ptr::null_mut()) }, -1);
    assert_eq!(errno(), libc::EINVAL);
    // SAFETY: NULL is accepted.
    unsafe { kcmp_holders_free(std::ptr::null_mut()) };
}

/// From a thread with an fd table of its own (`unshare(CLONE_FILES)`),
/// kcmp_holders fails with EINVAL: the engine would take its copies into
/// that table while it reads and closes them in the process's other one.
#[test]
fn holders_from_a_thread_with_its_own_fd_table_is_einval() {
    // The unshared thread refuses every search of this process while it lives.
    let _serial = spawn_lock();
    let f = std::fs::File::open("/dev/null").unwrap();
    let fd = f.as_raw_fd();
    let me = std::process::id() as i32;
    assert!(holders(me, fd).is_ok(), "from a thread sharing the table");
    let got = std::thread::spawn(move || {
        // SAFETY: after the unshare this thread uses only `fd` (by number,
        // in its copy of the table) and what kcmp_holders opens itself.
        let r = unsafe { libc::unshare(libc::CLONE_FILES) };
        assert_eq!(r, 0, "unshare(CLONE_FILES)");
        holders(me, fd)
    })
    .join()
    .unwrap();
    assert_eq!(got, Err(libc::EINVAL));
    drop(f);
}
