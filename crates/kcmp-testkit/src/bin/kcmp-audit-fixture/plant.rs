//! `plant`: one or more plants for every rule of `kcmp audit`.
//!
//! The root moves into a mount namespace of its own (mounts private, so
//! nothing reaches the host) and mounts a tmpfs on its directory; every
//! file below lives there.

use super::sys::{self, R};
use super::{path_target, pipe_target, Fx, Then};
use serde_json::{json, Value};

/// Bytes written to the deleted files.
const DELETED_A: usize = 12345;
const DELETED_B: usize = 1000;

/// A name with an escape sequence, a newline and invalid UTF-8.
const EVIL_NAME: &[u8] = b"deleted-\x1b[31mb\nname\xff";

/// The comm of the pipe writer: an escape and invalid UTF-8.
pub const EVIL_COMM: &[u8] = b"w\x1bq\xff";

fn mkdir(p: &std::path::Path) -> R<()> {
    std::fs::create_dir(p).map_err(|e| format!("mkdir {}: {e}", p.display()))
}

/// Builds the plants; returns extra truth keys.
pub fn build(fx: &mut Fx) -> R<Value> {
    let dir = fx.dir.clone();
    mkdir(&dir)?;
    sys::unshare(libc::CLONE_NEWNS)?;
    sys::make_mounts_private()?;
    sys::mount_tmpfs(&dir)?;
    fx.install_helper()?;
    cross_namespace(fx)?;
    foreign_mount(fx)?;
    exec_leak(fx)?;
    pipe_self_hold(fx)?;
    cross_uid_write(fx)?;
    epoll_stale(fx)?;
    let deleted = deleted_held(fx)?;
    Ok(json!({ "deleted_bytes": deleted, "evil_comm": String::from_utf8_lossy(EVIL_COMM) }))
}

/// An O_PATH directory fd shared with a child in new user and mount
/// namespaces: `cross-namespace` (critical) and, since the child's
/// namespace has copies of the mounts with other ids, `foreign-mount`.
fn cross_namespace(fx: &mut Fx) -> R<()> {
    let shared = fx.dir.join("shared-dir");
    mkdir(&shared)?;
    let d1 = sys::open(&shared, libc::O_PATH | libc::O_DIRECTORY)?;
    let ns = fx.child(
        "ns_child",
        &[d1],
        Then::Pause(Box::new(|| {
            sys::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS)
        })),
    )?;
    let t = path_target(&shared);
    fx.expect(
        "cross-namespace",
        "critical",
        &t,
        "dir",
        &[(fx.root, d1), (ns, d1)],
    );
    fx.expect("foreign-mount", "critical", &t, "dir", &[(ns, d1)]);
    Ok(())
}

/// A directory (opened without O_DIRECTORY or O_PATH: only a statx tells)
/// on a tmpfs of the root's namespace, held only by a child that moved to
/// a new mount namespace and unmounted its copy: `foreign-mount`.
fn foreign_mount(fx: &mut Fx) -> R<()> {
    let mnt = fx.dir.join("mnt");
    mkdir(&mnt)?;
    sys::mount_tmpfs(&mnt)?;
    let inner = mnt.join("inner");
    mkdir(&inner)?;
    let d2 = sys::open(&inner, libc::O_RDONLY)?;
    let umount_path = mnt.clone();
    let f = fx.child(
        "mount_child",
        &[d2],
        Then::Pause(Box::new(move || {
            sys::unshare(libc::CLONE_NEWNS)?;
            sys::umount(&umount_path)
        })),
    )?;
    sys::close(d2)?;
    fx.expect(
        "foreign-mount",
        "critical",
        &path_target(&inner),
        "dir",
        &[(f, d2)],
    );
    Ok(())
}

/// A file opened without O_CLOEXEC, inherited by a child that exec's
/// another program: `exec-leak`.
fn exec_leak(fx: &mut Fx) -> R<()> {
    let p = fx.dir.join("leaked.db");
    let f3 = sys::open(&p, libc::O_RDWR | libc::O_CREAT)?;
    let e = fx.child(
        "exec_child",
        &[f3],
        Then::Exec {
            clear: vec![],
            args: vec!["hold".into()],
        },
    )?;
    fx.expect(
        "exec-leak",
        "warning",
        &path_target(&p),
        "file",
        &[(fx.root, f3), (e, f3)],
    );

    // The opener lets go: two other programs still share the description.
    let p = fx.dir.join("orphan.db");
    let f4 = sys::open(&p, libc::O_RDWR | libc::O_CREAT)?;
    let hold = || Then::Exec {
        clear: vec![],
        args: vec!["hold".into()],
    };
    let e1 = fx.child("orphan_child1", &[f4], hold())?;
    let second = fx.dir.join("kcmp-audit-helper2");
    std::fs::copy(&fx.helper, &second).map_err(|e| format!("copy helper: {e}"))?;
    let first = std::mem::replace(&mut fx.helper, second);
    let e2 = fx.child("orphan_child2", &[f4], hold());
    fx.helper = first;
    let e2 = e2?;
    sys::close(f4)?;
    fx.expect(
        "exec-leak",
        "warning",
        &path_target(&p),
        "file",
        &[(e1, f4), (e2, f4)],
    );
    Ok(())
}

/// The root reads a pipe and keeps its write end, which a child also
/// holds: `pipe-self-hold`. The child's comm has an escape sequence.
fn pipe_self_hold(fx: &mut Fx) -> R<()> {
    let (r, w) = sys::pipe(0)?;
    let wp = fx.child(
        "pipe_writer",
        &[w],
        Then::Pause(Box::new(|| {
            sys::set_comm(EVIL_COMM);
            Ok(())
        })),
    )?;
    let t = pipe_target(r)?;
    fx.expect(
        "pipe-self-hold",
        "warning",
        &t,
        "pipe",
        &[(fx.root, r), (fx.root, w), (wp, w)],
    );
    // A pool: two workers read one job pipe and each keeps its write end
    // too. One finding for the pipe, both workers in it.
    let (jr, jw) = sys::pipe(0)?;
    let pause = || Then::Pause(Box::new(|| Ok(())));
    let a = fx.child("pool_worker1", &[jr, jw], pause())?;
    let b = fx.child("pool_worker2", &[jr, jw], pause())?;
    let t = pipe_target(jr)?;
    sys::close(jr)?;
    sys::close(jw)?;
    fx.expect(
        "pipe-self-hold",
        "warning",
        &t,
        "pipe",
        &[(a, jr), (a, jw), (b, jr), (b, jw)],
    );
    Ok(())
}

/// A log open for writing (O_CLOEXEC), held by the root (uid 0) and by a
/// helper program running as uid 65534 (its fd made O_CLOEXEC again after
/// the exec): `cross-uid-write`, and no `exec-leak`.
fn cross_uid_write(fx: &mut Fx) -> R<()> {
    let p = fx.dir.join("shared.log");
    let f5 = sys::open(&p, libc::O_WRONLY | libc::O_CREAT | libc::O_CLOEXEC)?;
    let args = ["hold", "--cloexec", &f5.to_string(), "--uid", "65534"];
    let args = args.iter().map(|a| a.to_string()).collect();
    let u = fx.child(
        "uid_child",
        &[f5],
        Then::Exec {
            clear: vec![f5],
            args,
        },
    )?;
    fx.expect(
        "cross-uid-write",
        "info",
        &path_target(&p),
        "file",
        &[(fx.root, f5), (u, f5)],
    );
    Ok(())
}

/// A pipe registered in an epoll under fd 40, then 40 closed: `epoll-stale`.
fn epoll_stale(fx: &mut Fx) -> R<()> {
    let ep = sys::epoll_create()?;
    let (pr, _pw) = sys::pipe(libc::O_CLOEXEC)?;
    sys::dup2(pr, 40)?;
    sys::epoll_add(ep, 40)?;
    sys::close(40)?;
    let t = pipe_target(pr)?;
    fx.expect("epoll-stale", "warning", &t, "pipe", &[(fx.root, ep)]);
    if let Some(last) = fx.expected.last_mut() {
        last["tfd"] = json!(40);
    }
    Ok(())
}

/// Two deleted files: one opened twice (two descriptions, one inode), one
/// with an unprintable name: `deleted-held` three times, total size once
/// per inode.
fn deleted_held(fx: &mut Fx) -> R<u64> {
    use std::os::unix::ffi::OsStrExt;
    let a = fx.dir.join("deleted-a");
    let b = fx.dir.join(std::ffi::OsStr::from_bytes(EVIL_NAME));
    let fa = sys::open(&a, libc::O_RDWR | libc::O_CREAT | libc::O_CLOEXEC)?;
    sys::write_all(fa, &vec![b'a'; DELETED_A])?;
    let fa2 = sys::open(&a, libc::O_RDONLY | libc::O_CLOEXEC)?;
    let fb = sys::open(&b, libc::O_RDWR | libc::O_CREAT | libc::O_CLOEXEC)?;
    sys::write_all(fb, &vec![b'b'; DELETED_B])?;
    std::fs::remove_file(&a).map_err(|e| format!("unlink: {e}"))?;
    std::fs::remove_file(&b).map_err(|e| format!("unlink: {e}"))?;
    let ta = format!("{} (deleted)", path_target(&a));
    let tb = format!("{} (deleted)", path_target(&b));
    fx.expect("deleted-held", "info", &ta, "file", &[(fx.root, fa)]);
    fx.expect("deleted-held", "info", &ta, "file", &[(fx.root, fa2)]);
    fx.expect("deleted-held", "info", &tb, "file", &[(fx.root, fb)]);
    Ok((DELETED_A + DELETED_B) as u64)
}

/// Unmounts the tmpfs (in the root's own namespace) and removes its mount
/// point from the host's /tmp.
pub fn cleanup(fx: &Fx) {
    let _ = sys::umount(&fx.dir);
    let _ = std::fs::remove_dir(&fx.dir);
}
