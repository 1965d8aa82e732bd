//! `clean`: sharing by design, on which `kcmp audit` must find nothing
//! above info.
//!
//! - a prefork server: a listening socket and a log (no O_CLOEXEC) shared
//!   by the root (uid 0) and two forked workers running as uid 65534 — the
//!   same executable;
//! - stdio and the listening socket inherited (no O_CLOEXEC) by a child
//!   that exec's another program (as socket activation passes them);
//! - a self-pipe (both ends in the root alone) watched by an epoll, a
//!   directory fd and an O_PATH fd in the root alone;
//! - a pipe, a socket, a read-only file, a memfd and an eventfd shared with
//!   a child in new user and mount namespaces (its stdio too), the pipe's
//!   read end in a third child; the log shared as the stderr of another
//!   child in new namespaces: `cross-namespace` at info only.

use super::sys::{self, R};
use super::{path_target, pipe_target, socket_target, Fx, Then};
use serde_json::{json, Value};

/// Builds the topology; returns extra truth keys.
pub fn build(fx: &mut Fx) -> R<Value> {
    std::fs::create_dir(&fx.dir).map_err(|e| format!("mkdir {}: {e}", fx.dir.display()))?;
    fx.install_helper()?;
    let (listener, log) = prefork(fx)?;
    alone(fx)?;
    namespaces(fx, log)?;
    Ok(json!({ "listener": listener, "log": log }))
}

/// The prefork server, and stdio and the listener passed to another
/// program: (listener, log).
fn prefork(fx: &mut Fx) -> R<(i32, i32)> {
    let root = fx.root;
    let listener = sys::tcp_listener()?;
    let log = sys::open(
        &fx.dir.join("app.log"),
        libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT,
    )?;
    for name in ["worker1", "worker2"] {
        fx.child(
            name,
            &[listener, log],
            Then::Pause(Box::new(move || {
                sys::become_user(65534)?;
                sys::die_with_parent(root);
                Ok(())
            })),
        )?;
    }

    // Another program gets stdio and the listening socket (socket
    // activation passes one so), all without O_CLOEXEC.
    fx.child(
        "stdio_child",
        &[0, 1, 2, listener],
        Then::Exec {
            clear: vec![],
            args: vec!["hold".into()],
        },
    )?;

    Ok((listener, log))
}

/// A self-pipe watched by an epoll, a directory fd and an O_PATH fd, all
/// in the root alone.
fn alone(fx: &mut Fx) -> R<()> {
    let (sr, _sw) = sys::pipe(libc::O_CLOEXEC | libc::O_NONBLOCK)?;
    let ep = sys::epoll_create()?;
    sys::epoll_add(ep, sr)?;
    let _dirfd = sys::open(
        &fx.dir,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
    )?;
    let _opath = sys::open(&fx.dir.join("app.log"), libc::O_PATH | libc::O_CLOEXEC)?;
    Ok(())
}

/// Sharing with children in new user and mount namespaces, all info.
fn namespaces(fx: &mut Fx, log: i32) -> R<()> {
    let root = fx.root;

    let (xr, xw) = sys::pipe(0)?;
    fx.child("collector", &[xr], Then::Pause(Box::new(|| Ok(()))))?;
    sys::close(xr)?;
    let (s0, _s1) = sys::socketpair()?;
    let ro_path = fx.dir.join("readonly.conf");
    std::fs::write(&ro_path, b"x").map_err(|e| format!("write: {e}"))?;
    let ro = sys::open(&ro_path, libc::O_RDONLY)?;
    let mfd = sys::memfd("kcmp-audit")?;
    let efd = sys::eventfd()?;
    let shared = [xw, s0, ro, mfd, efd];
    let mut keep = vec![0, 1, 2];
    keep.extend(shared);
    let x = fx.child(
        "ns_child",
        &keep,
        Then::Pause(Box::new(|| {
            sys::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS)
        })),
    )?;
    let targets = [
        (pipe_target(xw)?, "pipe"),
        (socket_target(s0)?, "socket"),
        (path_target(&ro_path), "file"),
        ("/memfd:kcmp-audit (deleted)".to_string(), "memfd"),
        ("anon_inode:[eventfd]".to_string(), "anon_inode"),
    ];
    for (fd, (t, kind)) in shared.iter().zip(targets) {
        fx.expect(
            "cross-namespace",
            "info",
            &t,
            kind,
            &[(root, *fd), (x, *fd)],
        );
    }
    // The log, open for writing, shared as the stderr of a child in new
    // namespaces: fds 0-2 make it info.
    let log_child = fx.child(
        "ns_stderr_child",
        &[log],
        Then::Pause(Box::new(move || {
            sys::dup2(log, 2)?;
            sys::close(log)?;
            sys::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS)
        })),
    )?;
    let workers = [fx.child_pid("worker1"), fx.child_pid("worker2")];
    fx.expect(
        "cross-namespace",
        "info",
        &path_target(&fx.dir.join("app.log")),
        "file",
        &[
            (root, log),
            (workers[0], log),
            (workers[1], log),
            (log_child, 2),
        ],
    );
    Ok(())
}

/// Removes the fixture's directory.
pub fn cleanup(fx: &Fx) {
    let _ = std::fs::remove_dir_all(&fx.dir);
}
