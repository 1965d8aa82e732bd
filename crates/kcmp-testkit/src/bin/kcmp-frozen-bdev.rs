//! `kcmp-frozen-bdev [DUPS] [file]`: holds a block device (or with `file`, a
//! regular file) whose last close waits, uninterruptibly, for as long as a
//! filesystem stays frozen.
//!
//! In a mount namespace of its own it makes an ext4 image (with
//! `/usr/sbin/mkfs.ext4`, by absolute path), mounts it on a loop device,
//! puts a second loop device's backing file on it, opens that device
//! (fd H), freezes the ext4 (`FIFREEZE`), and writes 1 MiB to H: dirty
//! pages that cannot be written back while the freeze lasts. The last close
//! of H then waits in `sync_blockdev` (state D) until the thaw. H is dup'ed
//! DUPS times (default 8000): one description with many fds, so that a
//! scan holds its copy a while. With `file`, the second loop device carries
//! an ext4 of its own and H is a file there, truncated and rewritten (48 MiB)
//! after the freeze: its last close starts the delayed allocation, which
//! waits for a journal handle (see `truncate_and_rewrite`). Prints `{"pid": P, "fd": H, "dev": PATH}`
//! (or `{"skip": WHY}` when it cannot set this up: not root, no mkfs.ext4,
//! no loop device) and then:
//! - on a line `close` on stdin, closes H and its dups on a thread of its
//!   own (which waits there if this was the last reference);
//! - on EOF, thaws, detaches and unmounts everything, and exits 0.
//!
//! The freeze never outlasts [`THAW_AFTER`]: a thread thaws it then
//! whatever happens (a test that died), so the host is never left with a
//! frozen filesystem. The writes after the freeze may themselves wait on it
//! (ext4 pushes delayed allocation out when free space runs low, and that
//! writeback waits for the thaw): after [`SETUP_LIMIT`] the thread thaws,
//! and the fixture says `{"skip": ...}`.

use std::ffi::CString;
use std::io::BufRead;
use std::process::Command;

const FIFREEZE: libc::c_ulong = 0xC004_5877;

/// The longest the outer filesystem stays frozen.
const THAW_AFTER: std::time::Duration = std::time::Duration::from_secs(50);

/// The longest the writes after the freeze may take.
const SETUP_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);
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

/// `FIFREEZE` or `FITHAW` on the filesystem of `dir`.
fn freeze(dir: &std::fs::File, request: libc::c_ulong) -> bool {
    // SAFETY: the ioctl takes an open fd of the filesystem and no pointer.
    unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(dir), request, 0) == 0 }
}

/// The `file` mode: 1 MiB written to fd `h` (on the inner ext4) and synced,
/// the outer filesystem frozen (`outer_root`), then `h` truncated and 48 MiB
/// written again: delayed allocation that its last close starts (ext4's
/// replace-by-truncate heuristic) and that waits for a journal handle the
/// stuck device cannot give. (frozen, written).
fn truncate_and_rewrite(h: i32, outer_root: &std::fs::File) -> (bool, bool) {
    let buf = vec![0x5au8; 1 << 20];
    // SAFETY: writes from a buffer we own to fd h, which is open; fsync of it.
    let first = unsafe {
        libc::write(h, buf.as_ptr().cast(), buf.len()) == buf.len() as isize && libc::fsync(h) == 0
    };
    let frozen = first && freeze(outer_root, FIFREEZE);
    // SAFETY: ftruncate and lseek of fd h.
    let cut =
        frozen && unsafe { libc::ftruncate(h, 0) == 0 && libc::lseek(h, 0, libc::SEEK_SET) == 0 };
    // SAFETY: writes from a buffer we own to fd h.
    let wrote = cut
        && (0..48).all(
            |_| unsafe { libc::write(h, buf.as_ptr().cast(), buf.len()) } == buf.len() as isize,
        );
    (frozen, wrote)
}

fn main() {
    let dups: i32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(8000);
    let file_mode = std::env::args().nth(2).as_deref() == Some("file");
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
    file.set_len(160 << 20)
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
    f.set_len(if file_mode { 100 << 20 } else { 8 << 20 })
        .expect("size backing file");
    drop(f);
    let Some(inner) = losetup(&["-f", "--show", &backing.to_string_lossy()]) else {
        umount_lazy(&mnt_s);
        cleanup_outer(&outer);
        skip("losetup (backing)");
    };
    let root = std::fs::File::open(&mnt).expect("open mount root");
    // The watchdog: whatever happens from here, the freeze ends in time.
    let watched = root.try_clone().expect("dup the mount root");
    let (set_up, setup_done) = std::sync::mpsc::channel::<()>();
    let thawed_early = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let early = thawed_early.clone();
    std::thread::spawn(move || {
        let limit = std::time::Instant::now() + THAW_AFTER;
        if setup_done.recv_timeout(SETUP_LIMIT).is_err() {
            early.store(true, std::sync::atomic::Ordering::SeqCst);
        } else {
            std::thread::sleep(limit.saturating_duration_since(std::time::Instant::now()));
        }
        freeze(&watched, FITHAW);
    });
    let inner_mnt = dir.join("in");
    let inner_mnt_s = inner_mnt.to_string_lossy().into_owned();
    let (h, target, frozen, wrote) = if file_mode {
        let made = std::fs::create_dir_all(&inner_mnt).is_ok()
            && Command::new("/usr/sbin/mkfs.ext4")
                .args(["-q", "-F", &inner])
                .status()
                .is_ok_and(|s| s.success())
            && mount(&inner, &inner_mnt_s, Some("ext4"), 0);
        let path = inner_mnt.join("x");
        let opened = made
            .then(|| {
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&path)
                    .ok()
            })
            .flatten();
        match opened {
            Some(f) => {
                let h = std::os::fd::IntoRawFd::into_raw_fd(f);
                let (frozen, wrote) = truncate_and_rewrite(h, &root);
                (h, path.to_string_lossy().into_owned(), frozen, wrote)
            }
            None => (-1, String::new(), false, false),
        }
    } else {
        let dev = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&inner)
            .expect("open inner loop device");
        let h = std::os::fd::IntoRawFd::into_raw_fd(dev);
        let frozen = freeze(&root, FIFREEZE);
        let buf = vec![0x5au8; 1 << 20];
        // SAFETY: writes from a buffer we own to fd h, which is open.
        let wrote = unsafe { libc::write(h, buf.as_ptr().cast(), buf.len()) } == buf.len() as isize;
        (h, inner.clone(), frozen, wrote)
    };
    let mut top = h;
    for _ in 0..dups {
        // SAFETY: dup of an open fd.
        let d = unsafe { libc::fcntl(h, libc::F_DUPFD, 0) };
        if d < 0 {
            break;
        }
        top = top.max(d);
    }
    let _ = set_up.send(());
    if thawed_early.load(std::sync::atomic::Ordering::SeqCst) {
        println!(
            "{}",
            serde_json::json!({ "skip": "the writes after the freeze waited on it (thawed)" })
        );
    } else if !frozen || !wrote {
        println!(
            "{}",
            serde_json::json!({ "skip": "freeze or write failed" })
        );
    } else {
        println!(
            "{}",
            serde_json::json!({ "pid": std::process::id(), "fd": h, "dev": target })
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
    freeze(&root, FITHAW);
    if let Some(c) = closer {
        let _ = c.join();
    } else {
        // SAFETY: as above.
        unsafe { libc::syscall(libc::SYS_close_range, h as u32, top as u32, 0) };
    }
    drop(root);
    if file_mode {
        umount_lazy(&inner_mnt_s);
    }
    let _ = losetup(&["-d", &inner]);
    umount_lazy(&mnt_s);
    cleanup_outer(&outer);
}
