//! `kcmp-mount-swap DIR`: a process in a mount namespace of its own whose
//! fds can be moved, on command, to a mount that took over the id of a
//! mount it unmounted (mount ids are reused: the kernel hands out the
//! lowest free one).
//!
//! It mounts tmpfs on DIR/m1 and DIR/m2 and opens DIR/m1/a three times,
//! DIR/m1/f000..f253 twice each (254 buckets of two descriptions) and
//! DIR/m2/zz twice (fds `fds`), then prints
//! `{"root":PID,"fds":[N1,N2],"mnt_id":ID}` (ID: DIR/m2's mount id).
//!
//! On a line `swap` on stdin it points `fds` at /dev/null, unmounts
//! DIR/m2, and mounts `fusectl` (a type the scan does not know as local)
//! on DIR/m2 until a mount gets ID back (stacked tries hold the lower free
//! ids), then opens DIR/m2 twice onto `fds` and answers `swapped ID` (or
//! `failed ID`, the id it got last). Exits on EOF; its mounts die with its
//! namespace.
//!
//! `kcmp-mount-swap DIR detach`: `fds` are two eventfds instead (one
//! `anon_inode:[eventfd]` bucket of two descriptions, the 256th bucket as
//! well); `swap` mounts fusectl on DIR/m2, opens its root twice, detaches
//! the mount (`umount -l`: the files stay open on a mount in no table) and
//! moves `fds` onto those files; it answers `detached ID`.

use std::ffi::CString;
use std::io::{BufRead, Write};

fn check(r: i32, what: &str) -> i32 {
    if r < 0 {
        eprintln!(
            "kcmp-mount-swap: {what}: {}",
            std::io::Error::last_os_error()
        );
        std::process::exit(1);
    }
    r
}

fn cstr(s: &str) -> CString {
    CString::new(s).expect("no NUL in paths")
}

fn mount(source: &str, target: &str, fstype: Option<&str>, flags: libc::c_ulong) -> i32 {
    let (s, t) = (cstr(source), cstr(target));
    let f = fstype.map(cstr);
    let fp = f.as_ref().map_or(std::ptr::null(), |f| f.as_ptr());
    // SAFETY: valid C strings (or null for the type), null data.
    unsafe { libc::mount(s.as_ptr(), t.as_ptr(), fp, flags, std::ptr::null()) }
}

fn open(path: &str, flags: i32) -> i32 {
    let p = cstr(path);
    // SAFETY: p is a valid C string.
    let fd = unsafe { libc::open(p.as_ptr(), flags | libc::O_CLOEXEC, 0o600) };
    check(fd, &format!("open {path}"))
}

fn dup2(from: i32, to: i32) {
    // SAFETY: dup2 takes integers; `to` is ours to replace.
    check(unsafe { libc::dup3(from, to, libc::O_CLOEXEC) }, "dup3");
}

fn mnt_id(fd: i32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("mnt_id:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn swap(dir: &str, fds: [i32; 2], want: u64) -> String {
    let null = open("/dev/null", libc::O_RDONLY);
    fds.iter().for_each(|&fd| dup2(null, fd));
    let m2 = format!("{dir}/m2");
    let t = cstr(&m2);
    // SAFETY: t is a valid C string.
    check(unsafe { libc::umount2(t.as_ptr(), 0) }, "umount m2");
    let mut got = 0;
    for _ in 0..2000 {
        check(mount("none", &m2, Some("fusectl"), 0), "mount fusectl");
        let fd = open(&m2, libc::O_RDONLY | libc::O_DIRECTORY);
        got = mnt_id(fd);
        // SAFETY: closes our own probe fd.
        unsafe { libc::close(fd) };
        if got >= want {
            break;
        }
    }
    // On fusectl either way (the id was taken by another mount if not ours).
    dup2(open(&m2, libc::O_RDONLY | libc::O_DIRECTORY), fds[0]);
    dup2(open(&m2, libc::O_RDONLY | libc::O_DIRECTORY), fds[1]);
    match got == want {
        true => format!("swapped {got}"),
        false => format!("failed {got}"),
    }
}

/// `detach`: opens fusectl's root twice on a mount it then detaches
/// (`MNT_DETACH`: in no mount table) and moves `fds` there.
fn detach(dir: &str, fds: [i32; 2]) -> String {
    let m2 = format!("{dir}/m2");
    check(mount("none", &m2, Some("fusectl"), 0), "mount fusectl");
    let held = [0, 1].map(|_| open(&m2, libc::O_RDONLY | libc::O_DIRECTORY));
    let id = mnt_id(held[0]);
    let t = cstr(&m2);
    // SAFETY: t is a valid C string.
    check(
        unsafe { libc::umount2(t.as_ptr(), libc::MNT_DETACH) },
        "umount -l",
    );
    dup2(held[0], fds[0]);
    dup2(held[1], fds[1]);
    format!("detached {id}")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.first().cloned() else {
        eprintln!("usage: kcmp-mount-swap DIR [detach]");
        std::process::exit(2);
    };
    let detaching = args.get(1).is_some_and(|a| a == "detach");
    // Fds inherited from the caller are on the caller's mounts: none here.
    // SAFETY: close_range takes integers; nothing else uses those fds.
    unsafe { libc::close_range(3, libc::c_uint::MAX, 0) };
    // SAFETY: unshare takes flags only; this process is single-threaded.
    check(unsafe { libc::unshare(libc::CLONE_NEWNS) }, "unshare");
    check(
        mount("none", "/", None, libc::MS_REC | libc::MS_PRIVATE),
        "make / private",
    );
    for m in ["m1", "m2"] {
        let path = format!("{dir}/{m}");
        std::fs::create_dir_all(&path).expect("mkdir");
        check(mount("tmpfs", &path, Some("tmpfs"), 0), "mount tmpfs");
    }
    let rw = libc::O_RDWR | libc::O_CREAT;
    for _ in 0..3 {
        open(&format!("{dir}/m1/a"), rw);
    }
    for i in 0..254 {
        for _ in 0..2 {
            open(&format!("{dir}/m1/f{i:03}"), rw);
        }
    }
    let fds = if detaching {
        // SAFETY: eventfd takes integers.
        [0, 1].map(|_| check(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) }, "eventfd"))
    } else {
        [0, 1].map(|_| open(&format!("{dir}/m2/zz"), rw))
    };
    let want = mnt_id(fds[0]);
    println!(
        "{{\"root\":{},\"fds\":[{},{}],\"mnt_id\":{want}}}",
        std::process::id(),
        fds[0],
        fds[1]
    );
    let _ = std::io::stdout().flush();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if line.trim() == "swap" {
            let answer = match detaching {
                true => detach(&dir, fds),
                false => swap(&dir, fds, want),
            };
            println!("{answer}");
            let _ = std::io::stdout().flush();
        }
    }
}
