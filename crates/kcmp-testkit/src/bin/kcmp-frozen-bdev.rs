//! `kcmp-frozen-bdev [DUPS]`: holds a block device whose last close waits,
//! uninterruptibly, for as long as a filesystem stays frozen.
//!
//! In a mount namespace of its own it makes an ext4 image (with
//! `/usr/sbin/mkfs.ext4`, by absolute path), mounts it on a loop device,
//! puts a second loop device's backing file on it, opens that device
//! (fd H), freezes the ext4 (`FIFREEZE`), and writes 1 MiB to H: dirty
//! pages that cannot be written back while the freeze lasts. The last close
//! of H then waits in `sync_blockdev` (state D) until the thaw. H is dup'ed
//! DUPS times (default 8000): one description with many fds, so that a
//! scan holds its copy a while. Prints `{"pid": P, "fd": H, "dev": PATH}`
//! (or `{"skip": WHY}` when it cannot set this up: not root, no mkfs.ext4,
//! no loop device) and then:
//! - on a line `close` on stdin, closes H and its dups on a thread of its
//!   own (which waits there if this was the last reference);
//! - on EOF, thaws, detaches and unmounts everything, and exits 0.

use std::ffi::CString;
use std::io::BufRead;
use std::process::Command;

const FIFREEZE: libc::c_ulong = 0xC004_5877;
const FITHAW: libc::c_ulong = 0xC004_5878;

fn skip(why: &str) -> ! {
    println!("{}", serde_json::json!({ "skip": why }));
    std::process::exit(0);
}

fn cstr(s: &str) -> CString {
    CString::new(s).expect("no NUL")
}

fn losetup(args: &[&str]) -> Option<String> {
    let out = Command::new("/usr/sbin/losetup").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn mount(source: &str, target: &str, fstype: Option<&str>, flags: libc::c_ulong) -> bool {
    let (s, t) = (cstr(source), cstr(target));
    let ty = fstype.map(cstr);
    let ty_ptr = ty.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: valid C strings (or null type), null data.
    unsafe { libc::mount(s.as_ptr(), t.as_ptr(), ty_ptr, flags, std::ptr::null()) == 0 }
}

fn umount_lazy(target: &str) {
    let t = cstr(target);
    // SAFETY: a valid C string.
    unsafe { libc::umount2(t.as_ptr(), libc::MNT_DETACH) };
}

fn main() {
    let dups: i32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(8000);
    if rustix::process::geteuid().as_raw() != 0 {
        skip("not root");
    }
    if !std::path::Path::new("/usr/sbin/mkfs.ext4").exists() {
        skip("no /usr/sbin/mkfs.ext4");
    }
    // SAFETY: a plain syscall; this program has one thread here.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        skip("unshare(CLONE_NEWNS)");
    }
    if !mount("none", "/", None, libc::MS_REC | libc::MS_PRIVATE) {
        skip("make / private");
    }
    let dir = std::env::temp_dir().join(format!("kcmp-frozen-bdev.{}", std::process::id()));
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap_or_else(|_| skip("mkdir"));
    let img = dir.join("img");
    let file = std::fs::File::create(&img).unwrap_or_else(|_| skip("create image"));
    file.set_len(32 << 20)
        .unwrap_or_else(|_| skip("size image"));
    drop(file);
    let mkfs = Command::new("/usr/sbin/mkfs.ext4")
        .args(["-q", "-F"])
        .arg(&img)
        .status();
    if !mkfs.is_ok_and(|s| s.success()) {
        let _ = std::fs::remove_dir_all(&dir);
        skip("mkfs.ext4");
    }
    let img_s = img.to_string_lossy().into_owned();
    let mnt_s = mnt.to_string_lossy().into_owned();
    let Some(outer) = losetup(&["-f", "--show", &img_s]) else {
        let _ = std::fs::remove_dir_all(&dir);
        skip("losetup (image)");
    };
    let cleanup_outer = |outer: &str| {
        let _ = losetup(&["-d", outer]);
        let _ = std::fs::remove_dir_all(&dir);
    };
    if !mount(&outer, &mnt_s, Some("ext4"), 0) {
        cleanup_outer(&outer);
        skip("mount ext4");
    }
    let backing = mnt.join("backing");
    let f = std::fs::File::create(&backing).expect("backing file");
    f.set_len(8 << 20).expect("size backing file");
    drop(f);
    let Some(inner) = losetup(&["-f", "--show", &backing.to_string_lossy()]) else {
        umount_lazy(&mnt_s);
        cleanup_outer(&outer);
        skip("losetup (backing)");
    };
    let root = std::fs::File::open(&mnt).expect("open mount root");
    let dev = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&inner)
        .expect("open inner loop device");
    let h = std::os::fd::IntoRawFd::into_raw_fd(dev);
    // SAFETY: FIFREEZE on an open directory of the filesystem; no pointer.
    let frozen = unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&root), FIFREEZE, 0) } == 0;
    let buf = vec![0x5au8; 1 << 20];
    // SAFETY: writes from a buffer we own to fd h, which is open.
    let wrote = unsafe { libc::write(h, buf.as_ptr().cast(), buf.len()) };
    let mut top = h;
    for _ in 0..dups {
        // SAFETY: dup of an open fd.
        let d = unsafe { libc::fcntl(h, libc::F_DUPFD, 0) };
        if d < 0 {
            break;
        }
        top = top.max(d);
    }
    if !frozen || wrote != buf.len() as isize {
        println!(
            "{}",
            serde_json::json!({ "skip": "freeze or write failed" })
        );
    } else {
        println!(
            "{}",
            serde_json::json!({ "pid": std::process::id(), "fd": h, "dev": inner })
        );
    }
    let mut closer = None;
    for line in std::io::stdin().lock().lines() {
        match line.as_deref() {
            Ok("close") if closer.is_none() => {
                closer = Some(std::thread::spawn(move || {
                    // SAFETY: closes fds this program opened and no longer uses.
                    unsafe { libc::syscall(libc::SYS_close_range, h as u32, top as u32, 0) };
                }))
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    // SAFETY: FITHAW on the same directory.
    unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&root), FITHAW, 0) };
    if let Some(c) = closer {
        let _ = c.join();
    } else {
        // SAFETY: as above.
        unsafe { libc::syscall(libc::SYS_close_range, h as u32, top as u32, 0) };
    }
    drop(root);
    let _ = losetup(&["-d", &inner]);
    umount_lazy(&mnt_s);
    cleanup_outer(&outer);
}
