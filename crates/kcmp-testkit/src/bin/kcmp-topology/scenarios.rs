//! The scenarios: what each topology's processes open, copy, inherit and
//! share.

use crate::args::{Args, SCENARIOS};
use crate::ctx::{Ctx, Kind};
use crate::root::Root;
use crate::slots::MAX_RECS;
use crate::{e, sys, R};
use std::collections::BTreeSet;

fn some(s: &str) -> Option<&str> {
    Some(s)
}

/// The root's pool of descriptions that workers inherit. Returns the fds.
fn pool(root: &mut Root, m: usize) -> R<Vec<i32>> {
    let c = &mut root.ctx;
    let mut pool = Vec::new();
    let nfiles = (m / 10).max(3);
    for j in 0..nfiles {
        let name = match j {
            0 => some("root_data_a"),
            1 => some("root_data_b"),
            _ => None,
        };
        // Same file, same flags (O_RDONLY), same offset (0): yet separate
        // descriptions.
        pool.push(c.open_data(libc::O_RDONLY, name)?);
    }
    for j in 0..(m / 20).max(1) {
        let names = if j == 0 {
            (some("pool_pipe_r"), some("pool_pipe_w"))
        } else {
            (None, None)
        };
        let (r, w) = c.pipe(names)?;
        pool.extend([r, w]);
    }
    for j in 0..(m / 20).max(1) {
        let names = if j == 0 {
            (some("pool_sock_a"), some("pool_sock_b"))
        } else {
            (None, None)
        };
        let (a, b) = c.socketpair(libc::SOCK_STREAM, names)?;
        pool.extend([a, b]);
    }
    let ev = c.eventfd(some("root_eventfd"))?;
    let ep = c.epoll(some("root_epoll"))?;
    sys::epoll_add(ep, ev).map_err(e("epoll_ctl"))?;
    sys::epoll_add(ep, pool[nfiles]).map_err(e("epoll_ctl"))?;
    let opath = c.open_data(libc::O_PATH, some("root_opath"))?;
    let dup = c.dup(pool[0], some("root_data_a_dup"))?;
    let target = c.free_fd_above(c.table.keys().max().copied().unwrap_or(0) + 5);
    let dup2 = c.dup2(pool[nfiles + 1], target, some("root_pipe_w_dup2"))?;
    pool.extend([ev, ep, opath, dup, dup2]);
    Ok(pool)
}

fn worker(c: &mut Ctx, i: usize, m: usize, pool: &[i32]) -> R<()> {
    let (pipe_r, pipe_w) = (pool[(m / 10).max(3)], pool[(m / 10).max(3) + 1]);
    let mut keep: BTreeSet<i32> = [2].into();
    let want = (m / 2).max(1);
    for &fd in pool {
        if c.rng.chance(want, pool.len().max(want)) {
            keep.insert(fd);
        }
    }
    // Both ends of the first pipe are inherited by several processes.
    if i < 3 {
        keep.insert(pipe_r);
    }
    if i < 2 || i == 3 {
        keep.insert(pipe_w);
    }
    c.keep_only(&keep)?;
    for _ in 0..(m / 10).max(1) {
        c.open_data(libc::O_RDONLY, None)?;
    }
    let (r, _) = c.pipe((None, None))?;
    c.socketpair(libc::SOCK_STREAM, (None, None))?;
    if i & 3 == 0 {
        let ev = c.eventfd(None)?;
        let ep = c.epoll(None)?;
        sys::epoll_add(ep, ev).map_err(e("epoll_ctl"))?;
        sys::epoll_add(ep, r).map_err(e("epoll_ctl"))?;
    }
    let mut k = 0;
    while c.table.len() < m || k < 2 {
        let fds: Vec<i32> = c.table.keys().copied().filter(|&f| f != 2).collect();
        let src = fds[c.rng.below(fds.len())];
        match k % 3 {
            0 => c.dup(src, None)?,
            1 => {
                let hi = c.table.keys().max().copied().unwrap_or(0);
                let gap = c.rng.below(4) as i32;
                let t = c.free_fd_above(hi + 1 + gap);
                c.dup2(src, t, None)?
            }
            _ => c.dupfd_cloexec(src, 10, None)?,
        };
        k += 1;
    }
    Ok(())
}

fn stderr_only(c: &mut Ctx) -> R<()> {
    c.keep_only(&[2].into())
}

/// A pre-forking server, as a host runs them (nginx, apache2, postgres):
/// the root opens a few listening sockets (socketpair ends), a log file, a
/// pipe and an eventfd; `--procs` workers inherit all of them and each
/// opens a data file, a pipe and a socket pair of its own. Few shared
/// descriptions, many holders.
fn prefork(root: &mut Root, a: &Args) -> R<()> {
    let c = &mut root.ctx;
    let mut shared: BTreeSet<i32> = [2].into();
    for _ in 0..4 {
        let (s, _) = c.socketpair(libc::SOCK_STREAM, (None, None))?;
        shared.insert(s);
    }
    shared.insert(c.open_data(libc::O_RDONLY, some("log"))?);
    let (r, w) = c.pipe((some("signal_pipe_r"), some("signal_pipe_w")))?;
    shared.extend([r, w, c.eventfd(None)?]);
    for i in 0..a.procs {
        let keep = shared.clone();
        root.spawn(&format!("worker{i}"), move |c| {
            c.keep_only(&keep)?;
            c.open_data(libc::O_RDONLY, None)?;
            c.pipe((None, None))?;
            c.socketpair(libc::SOCK_STREAM, (None, None))?;
            Ok(())
        })?;
    }
    Ok(())
}

/// One twin pair per clone flag, a plain fork, a process that used SEM_UNDO
/// alone, a process with two threads, and two zombies.
fn specials(root: &mut Root) -> R<()> {
    let vm_sighand = (libc::CLONE_VM | libc::CLONE_SIGHAND) as u64;
    root.spawn("vm_parent", |c| {
        stderr_only(c)?;
        c.twin(vm_sighand, "vm_child").map(drop)
    })?;
    root.spawn("files_parent", |c| {
        stderr_only(c)?;
        c.twin(libc::CLONE_FILES as u64, "files_child").map(drop)
    })?;
    root.spawn("fs_parent", |c| {
        stderr_only(c)?;
        c.twin(libc::CLONE_FS as u64, "fs_child").map(drop)
    })?;
    root.spawn("io_parent", |c| {
        stderr_only(c)?;
        c.ioprio()?;
        c.twin(libc::CLONE_IO as u64, "io_child")?;
        // A plain fork of a process with a valid I/O priority: its own context.
        c.twin(0, "io_other").map(drop)
    })?;
    root.spawn("sysvsem_parent", |c| {
        stderr_only(c)?;
        c.twin(libc::CLONE_SYSVSEM as u64, "sysvsem_child")
            .map(drop)
    })?;
    root.spawn("undo_alone", |c| {
        stderr_only(c)?;
        c.sem_undo()
    })?;
    root.spawn("fork_parent", |c| {
        stderr_only(c)?;
        c.twin(0, "fork_child").map(drop)
    })?;
    root.spawn("threaded", |c| {
        stderr_only(c)?;
        c.threads(2)
    })?;
    root.zombie("zombie_1")?;
    root.zombie("zombie_2")?;
    Ok(())
}

/// Two unrelated processes; one opens a file and creates a pipe after the
/// fork and passes both to the other with SCM_RIGHTS.
fn scm(root: &mut Root) -> R<()> {
    let (sa, sb) = root
        .ctx
        .socketpair(libc::SOCK_DGRAM, (some("scm_sock_a"), some("scm_sock_b")))?;
    root.spawn("scm_sender", move |c| {
        c.keep_only(&[2, sa].into())?;
        c.name(sa, "scm_sender_sock")?;
        let f = c.open_data(libc::O_RDONLY, some("scm_sent_file"))?;
        let (r, _) = c.pipe((some("scm_sent_pipe_r"), some("scm_sender_pipe_w")))?;
        let mut payload = Vec::new();
        for fd in [f, r] {
            let en = c.entry(fd)?;
            payload.extend(en.desc.to_le_bytes());
            payload.extend((en.kind as u32).to_le_bytes());
        }
        sys::send_fds(sa, &[f, r], &payload).map_err(e("sendmsg SCM_RIGHTS"))
    })?;
    root.spawn("scm_receiver", move |c| {
        c.keep_only(&[2, sb].into())?;
        c.name(sb, "scm_receiver_sock")?;
        let mut buf = [0u8; 24];
        let fds = sys::recv_fds(sb, 2, &mut buf).map_err(e("recvmsg SCM_RIGHTS"))?;
        if fds.len() != 2 {
            return Err(format!("received {} fds, expected 2", fds.len()));
        }
        for (i, (fd, name)) in fds
            .iter()
            .zip(["scm_recv_file", "scm_recv_pipe_r"])
            .enumerate()
        {
            let chunk = &buf[i * 12..i * 12 + 12];
            let desc = u64::from_le_bytes(chunk[..8].try_into().expect("8 bytes"));
            let kind = Kind::from_u32(u32::from_le_bytes(chunk[8..].try_into().expect("4")))?;
            c.insert(*fd, desc, kind, Some(name));
        }
        Ok(())
    })?;
    // The root keeps neither end.
    root.ctx.close(sa)?;
    root.ctx.close(sb)?;
    Ok(())
}

fn general(root: &mut Root, a: &Args) -> R<()> {
    if a.fds + 16 > MAX_RECS {
        return Err(format!("--fds at most {}", MAX_RECS - 16));
    }
    let pool = pool(root, a.fds)?;
    for i in 0..a.procs {
        let (pool, m) = (pool.clone(), a.fds);
        root.spawn(&format!("worker{i}"), move |c| worker(c, i, m, &pool))?;
    }
    specials(root)?;
    scm(root)
}

/// The man page's example: the parent opens a file and forks; the child
/// opens it again and dups the inherited fd. Plus a few fds of each kind.
fn basic(root: &mut Root) -> R<()> {
    let file = root.tmp.join("basic-file");
    let pf = root
        .ctx
        .open_path(&file, libc::O_RDWR | libc::O_CREAT, some("parent_file"))?;
    let child = root.spawn("child", move |c| {
        c.keep_only(&[2, pf].into())?;
        c.name(pf, "child_inherited")?;
        let reopen = c.open_path(&file, libc::O_RDWR, some("child_reopen"))?;
        c.dup(pf, some("child_dup"))?;
        let target = c.free_fd_above(20);
        c.dup2(reopen, target, some("child_reopen_dup2"))?;
        let (pr, _) = c.pipe((some("child_pipe_r"), some("child_pipe_w")))?;
        c.socketpair(
            libc::SOCK_STREAM,
            (some("child_sock_a"), some("child_sock_b")),
        )?;
        // Regular files cannot be registered in epoll (EPERM): the pipe can.
        let ep = c.epoll(some("child_epoll"))?;
        sys::epoll_add(ep, pr).map_err(e("epoll_ctl"))?;
        c.eventfd(some("child_eventfd"))?;
        c.open_path(&file, libc::O_PATH, some("child_opath"))?;
        Ok(())
    })?;
    root.ctx.number("parent", root.pids[0] as i64)?;
    let _ = child;
    Ok(())
}

/// One process with an epoll instance: a plain registration, a target
/// registered under an fd number that was closed since, and three targets
/// registered under one fd number.
fn epoll(root: &mut Root) -> R<()> {
    root.spawn("epoll_owner", |c| {
        stderr_only(c)?;
        // Targets are eventfds (regular files cannot be registered): all of
        // them share one anonymous inode, yet each is its own description.
        let target = c.eventfd(some("epoll_target"))?;
        c.eventfd(some("not_target"))?;
        c.open_data(libc::O_RDONLY, some("regular_file"))?;
        let ep = c.epoll(some("epfd"))?;
        sys::epoll_add(ep, target).map_err(e("epoll_ctl"))?;
        // Registered under 40, then 40 closed; the description lives on.
        let b = c.eventfd(some("closed_target_keep"))?;
        c.dup2(b, 40, None)?;
        sys::epoll_add(ep, 40).map_err(e("epoll_ctl"))?;
        c.close(40)?;
        c.number("closed_tfd", 40)?;
        // Three targets registered under 50.
        for name in ["multi_x", "multi_y", "multi_z"] {
            let f = c.eventfd(some(name))?;
            c.dup2(f, 50, None)?;
            sys::epoll_add(ep, 50).map_err(e("epoll_ctl"))?;
        }
        c.name(50, "multi_at_tfd")?;
        c.number("multi_tfd", 50)?;
        c.number("multi_count", 3)?;
        Ok(())
    })?;
    Ok(())
}

/// Builds the topology of `a.scenario` under `root`.
pub fn run(root: &mut Root, a: &Args) -> R<()> {
    match a.scenario.as_str() {
        "general" | "bench" => general(root, a),
        "prefork" => prefork(root, a),
        "basic" => basic(root),
        "clone" => specials(root),
        "epoll" => epoll(root),
        other => Err(format!("unknown scenario {other:?} (known: {SCENARIOS})")),
    }
}
