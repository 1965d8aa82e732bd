//! `clean`: sharing by design, on which `kcmp audit` must find nothing
//! above info.
//!
//! - a prefork server: a listening socket and a log (no O_CLOEXEC) shared
//!   by the root (uid 0) and two forked workers running as uid 65534 — the
//!   same executable;
//! - stdio inherited by a child that exec's another program;
//! - a self-pipe (both ends in the root alone) watched by an epoll, a
//!   directory fd and an O_PATH fd in the root alone;
//! - a pipe and a socket shared with a child in new user and mount
//!   namespaces (its stdio too), the pipe's read end in a third child:
//!   `cross-namespace` at info only.

use super::sys::{self, R};
use super::{pipe_target, socket_target, Fx, Then};
use serde_json::{json, Value};

/// Builds the topology; returns extra truth keys.
pub fn build(fx: &mut Fx) -> R<Value> {
    std::fs::create_dir(&fx.dir).map_err(|e| format!("mkdir {}: {e}", fx.dir.display()))?;
    fx.install_helper()?;
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

    fx.child(
        "stdio_child",
        &[0, 1, 2],
        Then::Exec {
            clear: vec![],
            args: vec!["hold".into()],
        },
    )?;

    let (sr, _sw) = sys::pipe(libc::O_CLOEXEC | libc::O_NONBLOCK)?;
    let ep = sys::epoll_create()?;
    sys::epoll_add(ep, sr)?;
    let _dirfd = sys::open(
        &fx.dir,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
    )?;
    let _opath = sys::open(&fx.dir.join("app.log"), libc::O_PATH | libc::O_CLOEXEC)?;

    let (xr, xw) = sys::pipe(0)?;
    fx.child("collector", &[xr], Then::Pause(Box::new(|| Ok(()))))?;
    sys::close(xr)?;
    let (s0, _s1) = sys::socketpair()?;
    let x = fx.child(
        "ns_child",
        &[0, 1, 2, xw, s0],
        Then::Pause(Box::new(|| {
            sys::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS)
        })),
    )?;
    let (pt, st) = (pipe_target(xw)?, socket_target(s0)?);
    fx.expect(
        "cross-namespace",
        "info",
        &pt,
        "pipe",
        &[(root, xw), (x, xw)],
    );
    fx.expect(
        "cross-namespace",
        "info",
        &st,
        "socket",
        &[(root, s0), (x, s0)],
    );
    Ok(json!({ "listener": listener, "log": log }))
}

/// Removes the fixture's directory.
pub fn cleanup(fx: &Fx) {
    let _ = std::fs::remove_dir_all(&fx.dir);
}
