//! The library call against a raw `libc::syscall(SYS_kcmp, ...)` making the
//! same comparison: fds 0 and 1 of this process (KCMP_FILE) and this process
//! against itself (KCMP_VM). Budget: the wrapper costs at most 5 %.
//!
//! Run: `cargo bench -p kcmp --bench kcmp_call`
//!
//! The pid is computed once, outside the measured loop, for both sides:
//! `Pid::this()` is a `getpid` system call (glibc no longer caches it), which
//! would otherwise be measured on the library side only.

use divan::black_box;
use kcmp::{compare_files, compare_process, FdNum, Pid, ProcessResource};

fn main() {
    // Both sides must measure a successful call, not an error path.
    let me = std::process::id() as libc::c_long;
    for ty in [0, 1] {
        // SAFETY: kcmp with integer arguments reads no memory of ours.
        let r = unsafe { libc::syscall(libc::SYS_kcmp, me, me, ty, 0, 1) };
        assert!(
            r >= 0,
            "kcmp type {ty} on fds 0/1 failed: are stdin and stdout open?"
        );
    }
    divan::main();
}

fn me() -> i32 {
    std::process::id() as i32
}

/// `kcmp(me, me, KCMP_FILE, 0, 1)` through `libc::syscall`.
#[divan::bench(sample_count = 2000, sample_size = 200)]
fn file_raw_syscall(b: divan::Bencher) {
    let pid = me() as libc::c_long;
    b.bench_local(|| {
        // SAFETY: KCMP_FILE with integer arguments reads no memory of ours.
        unsafe {
            libc::syscall(
                libc::SYS_kcmp,
                black_box(pid),
                black_box(pid),
                black_box(0 as libc::c_long),
                black_box(0 as libc::c_ulong),
                black_box(1 as libc::c_ulong),
            )
        }
    });
}

/// `compare_files(me, 0, me, 1)`, with `Pid`/`FdNum` validated outside the loop.
#[divan::bench(sample_count = 2000, sample_size = 200)]
fn file_library(b: divan::Bencher) {
    let pid = Pid::new(me()).unwrap();
    let (f0, f1) = (FdNum::new(0).unwrap(), FdNum::new(1).unwrap());
    b.bench_local(|| compare_files(black_box(pid), black_box(f0), black_box(pid), black_box(f1)));
}

/// The library call including validation of raw integers (`Pid::new`,
/// `FdNum::new`) in the loop: what a CLI pays per comparison.
#[divan::bench(sample_count = 2000, sample_size = 200)]
fn file_library_with_validation(b: divan::Bencher) {
    let raw = me();
    b.bench_local(|| {
        let pid = Pid::new(black_box(raw))?;
        compare_files(
            pid,
            FdNum::new(black_box(0))?,
            pid,
            FdNum::new(black_box(1))?,
        )
    });
}

/// `kcmp(me, me, KCMP_VM, 0, 0)` through `libc::syscall`.
#[divan::bench(sample_count = 2000, sample_size = 200)]
fn vm_raw_syscall(b: divan::Bencher) {
    let pid = me() as libc::c_long;
    b.bench_local(|| {
        // SAFETY: KCMP_VM takes no pointers.
        unsafe {
            libc::syscall(
                libc::SYS_kcmp,
                black_box(pid),
                black_box(pid),
                black_box(1 as libc::c_long),
                black_box(0 as libc::c_ulong),
                black_box(0 as libc::c_ulong),
            )
        }
    });
}

/// `compare_process(Vm, me, me)`.
#[divan::bench(sample_count = 2000, sample_size = 200)]
fn vm_library(b: divan::Bencher) {
    let pid = Pid::new(me()).unwrap();
    b.bench_local(|| {
        compare_process(
            black_box(ProcessResource::Vm),
            black_box(pid),
            black_box(pid),
        )
    });
}
