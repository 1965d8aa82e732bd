//! `kcmp-with-fusectl PROGRAM [ARGS...]`: runs PROGRAM (an absolute path,
//! never looked up in PATH) in a mount namespace of its own in which
//! fusectl is mounted on `/sys/fs/fuse/connections`, as systemd mounts it
//! at boot: the view of a host whose FUSE connections can be counted. The
//! host's mounts are untouched (the namespace's mounts are private and die
//! with it). Needs root; exits 77 when it cannot set that up.

use std::ffi::CString;
use std::os::unix::process::CommandExt;

const FUSECTL_MAGIC: u64 = 0x6573_5543;
const CONNECTIONS: &str = "/sys/fs/fuse/connections";

fn give_up(what: &str) -> ! {
    eprintln!(
        "kcmp-with-fusectl: {what}: {}",
        std::io::Error::last_os_error()
    );
    std::process::exit(77);
}

fn cstr(s: &str) -> CString {
    CString::new(s).expect("no NUL in paths")
}

/// Whether fusectl is already mounted on its place here.
fn fusectl_mounted() -> bool {
    rustix::fs::statfs(CONNECTIONS).is_ok_and(|fs| fs.f_type as u64 == FUSECTL_MAGIC)
}

fn main() {
    let mut args = std::env::args_os().skip(1);
    let Some(program) = args.next() else {
        eprintln!("usage: kcmp-with-fusectl PROGRAM [ARGS...]");
        std::process::exit(2);
    };
    if !std::path::Path::new(&program).is_absolute() {
        eprintln!("kcmp-with-fusectl: {program:?}: not an absolute path");
        std::process::exit(2);
    }
    // SAFETY: a plain syscall; this program has one thread.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        give_up("unshare(CLONE_NEWNS)");
    }
    let (none, root) = (cstr("none"), cstr("/"));
    let private = libc::MS_REC | libc::MS_PRIVATE;
    // SAFETY: valid C strings, null type and data.
    let r = unsafe {
        libc::mount(
            none.as_ptr(),
            root.as_ptr(),
            std::ptr::null(),
            private,
            std::ptr::null(),
        )
    };
    if r != 0 {
        give_up("make / private");
    }
    if !fusectl_mounted() {
        let (source, target) = (cstr("fusectl"), cstr(CONNECTIONS));
        // SAFETY: valid C strings, null data.
        let r = unsafe {
            libc::mount(
                source.as_ptr(),
                target.as_ptr(),
                source.as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if r != 0 {
            give_up("mount fusectl");
        }
    }
    let err = std::process::Command::new(&program).args(args).exec();
    eprintln!("kcmp-with-fusectl: exec {program:?}: {err}");
    std::process::exit(127);
}
