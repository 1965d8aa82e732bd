//! `kcmp-seccomp-run enosys|eperm|allow [--no-dupfd-query] [--no-pidfd-info] -- CMD ARGS...`
//!
//! Installs a seccomp BPF filter that makes kcmp(2) fail with `ENOSYS` or
//! `EPERM` (as a kernel without CONFIG_KCMP, or Docker's default profile
//! without CAP_SYS_PTRACE, would; `allow` leaves it alone), then execs CMD.
//! With `--no-dupfd-query`, `fcntl(fd, F_DUPFD_QUERY, …)` also fails with
//! `EINVAL`, as on a kernel before 6.10, so the epoll trick is what is
//! left. With `--no-pidfd-info`, `ioctl(pidfd, PIDFD_GET_INFO, …)` fails
//! with `ENOTTY`, as on a kernel before 6.13.
//!
//! The filter checks the audit architecture first (a syscall of another ABI
//! kills the process instead of slipping past the number check) and, on
//! x86_64, also catches the x32 numbering of kcmp. It sets no_new_privs, so
//! it works unprivileged; it is inherited by CMD and all its children.

use std::os::unix::process::CommandExt;
use std::process::Command;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E; // AUDIT_ARCH_X86_64
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7; // AUDIT_ARCH_AARCH64
#[cfg(target_arch = "riscv64")]
const AUDIT_ARCH: u32 = 0xC000_00F3; // AUDIT_ARCH_RISCV64

/// The x32 ABI's syscall-number bit (x86_64 only).
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
const F_DUPFD_QUERY: u32 = 1027;
/// `_IOWR(0xFF, 11, struct pidfd_info)`, the 64-byte first version.
const PIDFD_GET_INFO: u32 = (3 << 30) | (64 << 16) | (0xFF << 8) | 11;

// Classic BPF opcodes.
const BPF_LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const BPF_JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const BPF_RET_K: u16 = 0x06; // BPF_RET | BPF_K

// Offsets in struct seccomp_data.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
/// Low 32 bits of `args[1]` (little-endian targets only).
const OFF_ARG1_LO: u32 = 16 + 8;

fn ld(off: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: BPF_LD_W_ABS,
        jt: 0,
        jf: 0,
        k: off,
    }
}

fn jeq(k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: BPF_JEQ_K,
        jt,
        jf,
        k,
    }
}

fn ret(k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: BPF_RET_K,
        jt: 0,
        jf: 0,
        k,
    }
}

/// Makes `syscall(_, arg1, …)` fail with `errno` when the low 32 bits of
/// arg1 are `arg1` (the accumulator holds the syscall number).
fn block_arg1(p: &mut Vec<libc::sock_filter>, syscall: i64, arg1: u32, errno: i32) {
    p.push(jeq(syscall as u32, 0, 4));
    p.push(ld(OFF_ARG1_LO));
    p.push(jeq(arg1, 0, 1));
    p.push(ret(
        libc::SECCOMP_RET_ERRNO | (errno as u32 & libc::SECCOMP_RET_DATA)
    ));
    p.push(ld(OFF_NR));
}

fn program(
    kcmp_errno: Option<i32>,
    block_dupfd_query: bool,
    block_pidfd_info: bool,
) -> Vec<libc::sock_filter> {
    let mut p = vec![
        ld(OFF_ARCH),
        jeq(AUDIT_ARCH, 1, 0),
        ret(libc::SECCOMP_RET_KILL_PROCESS),
        ld(OFF_NR),
    ];
    let mut nrs = vec![libc::SYS_kcmp as u32];
    if cfg!(target_arch = "x86_64") {
        nrs.push(libc::SYS_kcmp as u32 | X32_SYSCALL_BIT);
    }
    for nr in nrs.into_iter().filter(|_| kcmp_errno.is_some()) {
        p.push(jeq(nr, 0, 1));
        p.push(ret(
            libc::SECCOMP_RET_ERRNO | (kcmp_errno.unwrap_or(0) as u32 & libc::SECCOMP_RET_DATA)
        ));
    }
    if block_dupfd_query {
        block_arg1(&mut p, libc::SYS_fcntl, F_DUPFD_QUERY, libc::EINVAL);
    }
    if block_pidfd_info {
        block_arg1(&mut p, libc::SYS_ioctl, PIDFD_GET_INFO, libc::ENOTTY);
    }
    p.push(ret(libc::SECCOMP_RET_ALLOW));
    p
}

fn die(msg: &str) -> ! {
    eprintln!("kcmp-seccomp-run: {msg}");
    std::process::exit(2);
}

fn usage() -> ! {
    die("usage: kcmp-seccomp-run enosys|eperm|allow [--no-dupfd-query] [--no-pidfd-info] -- CMD ARGS...")
}

fn install(filter: &mut [libc::sock_filter]) -> std::io::Result<()> {
    // SAFETY: PR_SET_NO_NEW_PRIVS takes integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_mut_ptr(),
    };
    // SAFETY: `prog` points to `filter`, a live slice of `len` BPF
    // instructions, for the duration of the call; the kernel copies the
    // program and keeps no pointer to it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER as libc::c_ulong,
            0 as libc::c_ulong,
            &prog as *const libc::sock_fprog,
        )
    };
    if ret != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(sep) = args.iter().position(|a| a == "--") else {
        usage()
    };
    let (opts, cmd) = (&args[..sep], &args[sep + 1..]);
    if cmd.is_empty() {
        usage();
    }
    let mut errno = None;
    let (mut block_dupfd_query, mut block_pidfd_info) = (false, false);
    for o in opts {
        match o.as_str() {
            "enosys" => errno = Some(Some(libc::ENOSYS)),
            "eperm" => errno = Some(Some(libc::EPERM)),
            "allow" => errno = Some(None),
            "--no-dupfd-query" => block_dupfd_query = true,
            "--no-pidfd-info" => block_pidfd_info = true,
            _ => usage(),
        }
    }
    let Some(errno) = errno else { usage() };
    let mut filter = program(errno, block_dupfd_query, block_pidfd_info);
    if let Err(e) = install(&mut filter) {
        die(&format!("installing the seccomp filter: {e}"));
    }
    let err = Command::new(&cmd[0]).args(&cmd[1..]).exec();
    die(&format!("exec {}: {err}", cmd[0]));
}
