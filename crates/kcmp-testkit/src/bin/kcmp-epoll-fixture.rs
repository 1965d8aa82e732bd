//! `kcmp-epoll-fixture`: epoll instances whose registrations are known by
//! construction, for testing `kcmp epoll-targets` and the scan's epoll
//! section.
//!
//! The fixture builds, in itself (the root) and two children:
//! - `classic`: K pipes registered one after another under fd 900 (dup2 of
//!   each read end onto 900), then 900 closed: K stale registrations under
//!   one number, each held by its pipe's read end elsewhere.
//! - `reuse`: a pipe registered under 901, then 901 reused (dup2 of an
//!   eventfd) and registered again (two registrations under 901, one stale);
//!   a write end registered under 902, then 902 closed; an eventfd
//!   registered under its own number.
//! - `anon`: a dozen eventfds (one anonymous inode), half registered
//!   under 903, then closed.
//! - `other`: a pipe end and a socket registered, handed to child `c1` by
//!   fork, then closed in the root (held only by another process); a pipe
//!   end passed with `SCM_RIGHTS` into a socket nobody reads, then closed
//!   (held by no fd at all).
//! - `inherited`: an epoll inherited by child `c2`, which keeps one of the
//!   registered fds and not the other.
//! - `nested`: an epoll registered in another epoll.
//! - `path`: a FIFO opened twice (two descriptions with one path), one
//!   registered under its number, the other under 904 (then closed); the
//!   FIFO is unlinked at once (link texts end in ` (deleted)`).
//! - `empty`: an epoll with no registration.
//!
//! It keeps a model of every (pid, fd) -> description and prints one line
//! of JSON truth computed from the model:
//! `{"root": R, "children": {"c1": P, "c2": P}, "closed_fd": 900,
//!   "not_epoll_fd": F, "epolls": [{"name", "holders": [{"pid","fd"}],
//!   "registrations": [{"tfd", "data": "0x…", "events", "holders": […],
//!   "stale_in": {"PID": bool}}]}]}`
//! then waits for EOF on stdin, kills its children and exits. Children die
//! with it (PR_SET_PDEATHSIG).
//!
//! Usage: `kcmp-epoll-fixture [K]` (K pipes in `classic`, default 8).

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};

type R<T> = Result<T, String>;

fn check(what: &str, ret: libc::c_int) -> R<i32> {
    if ret < 0 {
        Err(format!("{what}: {}", io::Error::last_os_error()))
    } else {
        Ok(ret)
    }
}

mod sys {
    //! Raw calls. Fds are plain numbers: the fixture's purpose is to leave
    //! them open (or closed) in planned places.
    use super::{check, R};

    pub fn pipe() -> R<(i32, i32)> {
        let mut fds = [0i32; 2];
        // SAFETY: `fds` is a valid array of two ints for the kernel to fill.
        check("pipe", unsafe { libc::pipe(fds.as_mut_ptr()) })?;
        Ok((fds[0], fds[1]))
    }

    pub fn socketpair() -> R<(i32, i32)> {
        let mut fds = [0i32; 2];
        // SAFETY: `fds` is a valid array of two ints for the kernel to fill.
        check("socketpair", unsafe {
            libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr())
        })?;
        Ok((fds[0], fds[1]))
    }

    fn cpath(path: &std::path::Path) -> R<std::ffi::CString> {
        use std::os::unix::ffi::OsStrExt;
        std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|e| e.to_string())
    }

    pub fn mkfifo(path: &std::path::Path) -> R<()> {
        let c = cpath(path)?;
        // SAFETY: `c` is a NUL-terminated path that outlives the call.
        check("mkfifo", unsafe { libc::mkfifo(c.as_ptr(), 0o600) })?;
        Ok(())
    }

    /// Opens a FIFO read-write (does not block, unlike O_RDONLY).
    pub fn open_rdwr(path: &std::path::Path) -> R<i32> {
        let c = cpath(path)?;
        // SAFETY: `c` is a NUL-terminated path that outlives the call.
        check("open", unsafe { libc::open(c.as_ptr(), libc::O_RDWR) })
    }

    pub fn eventfd() -> R<i32> {
        // SAFETY: plain syscall with integer arguments.
        check("eventfd", unsafe { libc::eventfd(0, 0) })
    }

    pub fn epoll_create() -> R<i32> {
        // SAFETY: plain syscall with integer arguments.
        check("epoll_create1", unsafe { libc::epoll_create1(0) })
    }

    pub fn epoll_add(ep: i32, fd: i32, events: u32, data: u64) -> R<()> {
        let mut ev = libc::epoll_event { events, u64: data };
        // SAFETY: `ev` is a valid epoll_event that outlives the call.
        check("epoll_ctl", unsafe {
            libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev)
        })?;
        Ok(())
    }

    pub fn dup2(src: i32, dst: i32) -> R<()> {
        // SAFETY: plain syscall with integer arguments.
        check("dup2", unsafe { libc::dup2(src, dst) })?;
        Ok(())
    }

    pub fn close(fd: i32) -> R<()> {
        // SAFETY: closing an fd number the fixture owns (it tracks every fd
        // in its model); no Rust object owns it.
        check("close", unsafe { libc::close(fd) })?;
        Ok(())
    }

    pub fn getpid() -> i32 {
        // SAFETY: getpid cannot fail.
        unsafe { libc::getpid() }
    }

    /// `fork()`; the fixture is single-threaded when it forks.
    pub fn fork() -> R<i32> {
        // SAFETY: the fixture has no other threads, so the child inherits
        // no locks held by other threads and may run ordinary code.
        check("fork", unsafe { libc::fork() })
    }

    /// In a child: die with the parent; exit if it is already gone.
    pub fn die_with_parent(parent: i32) {
        // SAFETY: prctl with integer arguments; getppid cannot fail.
        unsafe {
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            );
            if libc::getppid() != parent {
                libc::_exit(1);
            }
        }
    }

    pub fn pause_forever() -> ! {
        loop {
            // SAFETY: pause() only blocks until a signal arrives.
            unsafe {
                libc::pause();
            }
        }
    }

    pub fn exit_now(code: i32) -> ! {
        // SAFETY: _exit ends the process without running atexit handlers,
        // which is what a forked child of a Rust program should do.
        unsafe { libc::_exit(code) }
    }

    pub fn write_byte(fd: i32) -> R<()> {
        let b = [1u8];
        // SAFETY: `b` is a valid one-byte buffer.
        let n = unsafe { libc::write(fd, b.as_ptr().cast(), 1) };
        if n == 1 {
            Ok(())
        } else {
            Err(format!("write: {}", std::io::Error::last_os_error()))
        }
    }

    pub fn read_byte(fd: i32) -> R<()> {
        let mut b = [0u8];
        // SAFETY: `b` is a valid one-byte buffer.
        let n = unsafe { libc::read(fd, b.as_mut_ptr().cast(), 1) };
        if n == 1 {
            Ok(())
        } else {
            Err("a child failed before it was ready".into())
        }
    }

    pub fn kill_and_reap(pid: i32) {
        // SAFETY: signalling and reaping our own child.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }

    /// Sends `fd` over the unix socket `sock` with SCM_RIGHTS.
    pub fn send_fd(sock: i32, fd: i32) -> R<()> {
        let mut byte = [0u8; 1];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        // SAFETY: CMSG_SPACE is a pure computation.
        let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<i32>() as u32) } as usize;
        let mut buf = vec![0u64; space.div_ceil(8)];
        // SAFETY: a zeroed msghdr is a valid empty header.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = buf.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        // SAFETY: msg_control points at `space` bytes (8-byte aligned) that
        // hold exactly one cmsghdr with one int, so CMSG_FIRSTHDR is non-null
        // and CMSG_DATA has room for the fd; every pointer outlives sendmsg.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<i32>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<i32>(), fd);
            if libc::sendmsg(sock, &msg, 0) != 1 {
                return Err(format!("sendmsg: {}", std::io::Error::last_os_error()));
            }
        }
        Ok(())
    }
}

/// One registration, by construction.
struct Reg {
    epoll: u32,
    tfd: i32,
    data: u64,
    events: u32,
    target: u32,
}

/// Every (pid, fd) -> description, as the fixture made it.
struct Model {
    root: i32,
    next: u32,
    fds: BTreeMap<(i32, i32), u32>,
    regs: Vec<Reg>,
    epolls: Vec<(String, u32)>,
    children: Vec<(String, i32)>,
}

impl Model {
    fn new_desc(&mut self, fd: i32) -> u32 {
        self.next += 1;
        self.fds.insert((self.root, fd), self.next);
        self.next
    }

    fn desc(&self, fd: i32) -> R<u32> {
        self.fds
            .get(&(self.root, fd))
            .copied()
            .ok_or_else(|| format!("model: fd {fd} is not open"))
    }

    fn pipe(&mut self) -> R<(i32, i32)> {
        let (r, w) = sys::pipe()?;
        self.new_desc(r);
        self.new_desc(w);
        Ok((r, w))
    }

    fn socketpair(&mut self) -> R<(i32, i32)> {
        let (a, b) = sys::socketpair()?;
        self.new_desc(a);
        self.new_desc(b);
        Ok((a, b))
    }

    fn open_rdwr(&mut self, path: &std::path::Path) -> R<i32> {
        let fd = sys::open_rdwr(path)?;
        self.new_desc(fd);
        Ok(fd)
    }

    fn eventfd(&mut self) -> R<i32> {
        let fd = sys::eventfd()?;
        self.new_desc(fd);
        Ok(fd)
    }

    fn epoll(&mut self, name: &str) -> R<i32> {
        let fd = sys::epoll_create()?;
        let d = self.new_desc(fd);
        self.epolls.push((name.to_string(), d));
        Ok(fd)
    }

    fn add(&mut self, ep: i32, fd: i32, events: u32, data: u64) -> R<()> {
        sys::epoll_add(ep, fd, events, data)?;
        self.regs.push(Reg {
            epoll: self.desc(ep)?,
            tfd: fd,
            data,
            events,
            target: self.desc(fd)?,
        });
        Ok(())
    }

    fn dup2(&mut self, src: i32, dst: i32) -> R<()> {
        sys::dup2(src, dst)?;
        let d = self.desc(src)?;
        self.fds.insert((self.root, dst), d);
        Ok(())
    }

    fn close(&mut self, fd: i32) -> R<()> {
        sys::close(fd)?;
        self.fds.remove(&(self.root, fd));
        Ok(())
    }

    /// Forks a child that keeps exactly `keep` (same numbers) and pauses.
    fn child(&mut self, name: &str, keep: &[i32]) -> R<i32> {
        let (sync_r, sync_w) = sys::pipe()?;
        let parent = self.root;
        let pid = sys::fork()?;
        if pid == 0 {
            sys::die_with_parent(parent);
            let keep: BTreeSet<i32> = keep.iter().copied().chain([sync_w]).collect();
            for fd in 0..4096 {
                if !keep.contains(&fd) {
                    // SAFETY: the child owns its copy of the fd table and no
                    // Rust object in it is used after this point.
                    unsafe {
                        libc::close(fd);
                    }
                }
            }
            if sys::write_byte(sync_w).is_err() {
                sys::exit_now(1);
            }
            let _ = sys::close(sync_w);
            sys::pause_forever();
        }
        sys::close(sync_w)?;
        let ready = sys::read_byte(sync_r);
        sys::close(sync_r)?;
        self.children.push((name.to_string(), pid));
        ready?;
        for &fd in keep {
            let d = self.desc(fd)?;
            self.fds.insert((pid, fd), d);
        }
        Ok(pid)
    }

    fn holders(&self, desc: u32) -> Vec<Value> {
        self.fds
            .iter()
            .filter(|(_, &d)| d == desc)
            .map(|(&(pid, fd), _)| json!({"pid": pid, "fd": fd}))
            .collect()
    }

    fn truth(&self, closed_fd: i32, not_epoll_fd: i32) -> Value {
        let epolls: Vec<Value> = self
            .epolls
            .iter()
            .map(|(name, ep)| {
                let holder_pids: BTreeSet<i32> = self
                    .fds
                    .iter()
                    .filter(|(_, &d)| d == *ep)
                    .map(|(&(p, _), _)| p)
                    .collect();
                let regs: Vec<Value> = self
                    .regs
                    .iter()
                    .filter(|r| r.epoll == *ep)
                    .map(|r| {
                        let stale_in: BTreeMap<String, bool> = holder_pids
                            .iter()
                            .map(|&p| (p.to_string(), self.fds.get(&(p, r.tfd)) != Some(&r.target)))
                            .collect();
                        json!({
                            "tfd": r.tfd,
                            "data": format!("{:#x}", r.data),
                            "events": r.events,
                            "holders": self.holders(r.target),
                            "stale_in": stale_in,
                        })
                    })
                    .collect();
                json!({"name": name, "holders": self.holders(*ep), "registrations": regs})
            })
            .collect();
        let children: BTreeMap<&str, i32> = self
            .children
            .iter()
            .map(|(n, p)| (n.as_str(), *p))
            .collect();
        json!({
            "root": self.root,
            "children": children,
            "closed_fd": closed_fd,
            "not_epoll_fd": not_epoll_fd,
            "epolls": epolls,
        })
    }
}

/// The number the `classic` pipes are registered under (and then closed):
/// above every number the fixture allocates.
const CLASSIC_TFD: i32 = 900;

const IN: u32 = libc::EPOLLIN as u32;
const OUT: u32 = libc::EPOLLOUT as u32;

fn build(m: &mut Model, k: usize) -> R<Value> {
    // classic: K pipes registered under 100, then 100 closed.
    let ep = m.epoll("classic")?;
    for i in 0..k {
        let (r, _w) = m.pipe()?;
        m.dup2(r, CLASSIC_TFD)?;
        m.add(ep, CLASSIC_TFD, IN, 0x100 + i as u64)?;
    }
    m.close(CLASSIC_TFD)?;

    // reuse: 901 registered, reused for an eventfd, registered again.
    let ep = m.epoll("reuse")?;
    let (a_r, _a_w) = m.pipe()?;
    m.dup2(a_r, 901)?;
    m.add(ep, 901, IN, 0x200)?;
    let e1 = m.eventfd()?;
    m.dup2(e1, 901)?;
    m.add(ep, 901, IN, 0x201)?;
    let (_b_r, b_w) = m.pipe()?;
    m.dup2(b_w, 902)?;
    m.add(ep, 902, OUT, 0x202)?;
    m.close(902)?;
    let e2 = m.eventfd()?;
    m.add(ep, e2, IN | OUT, 0xdead_beef_0000_0001)?;

    // anon: many eventfds, one anonymous inode and one link text, so each
    // registration is found by binary search among a dozen descriptions;
    // half registered under 903, then closed.
    let ep = m.epoll("anon")?;
    for i in 0..12u64 {
        let e = m.eventfd()?;
        if i % 2 == 0 {
            m.add(ep, e, IN, 0x600 + i)?;
        } else {
            m.dup2(e, 903)?;
            m.add(ep, 903, IN, 0x600 + i)?;
        }
    }
    m.close(903)?;

    // other: held only by a child; held by nobody (in flight).
    let ep = m.epoll("other")?;
    let (c_r, _c_w) = m.pipe()?;
    m.add(ep, c_r, IN, 0x300)?;
    let (s0, _s1) = m.socketpair()?;
    m.add(ep, s0, IN, 0x301)?;
    let (f_r, _f_w) = m.pipe()?;
    m.add(ep, f_r, IN, 0x302)?;
    let (u0, _u1) = m.socketpair()?;
    sys::send_fd(u0, f_r)?;
    m.close(f_r)?;

    // inherited: an epoll that child c2 inherits.
    let ep_inh = m.epoll("inherited")?;
    let (g_r, _g_w) = m.pipe()?;
    m.add(ep_inh, g_r, IN, 0x400)?;
    let (_h_r, h_w) = m.pipe()?;
    m.add(ep_inh, h_w, OUT, 0x401)?;

    // nested: an epoll watching an epoll.
    let inner = m.epoll("nested_inner")?;
    let (n_r, _n_w) = m.pipe()?;
    m.add(inner, n_r, IN, 0x500)?;
    let outer = m.epoll("nested_outer")?;
    m.add(outer, inner, IN, 0x501)?;

    // path: a FIFO opened twice (two descriptions, one path), then
    // unlinked: found by stat-ing `(deleted)` paths and binary search.
    let ep = m.epoll("path")?;
    let dir = std::env::temp_dir().join(format!("kcmp-epoll-fixture.{}", m.root));
    std::fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    let fifo = dir.join("fifo");
    let opened = sys::mkfifo(&fifo).and_then(|()| Ok((m.open_rdwr(&fifo)?, m.open_rdwr(&fifo)?)));
    let _ = std::fs::remove_file(&fifo);
    let _ = std::fs::remove_dir(&dir);
    let (p1, p2) = opened?;
    m.add(ep, p1, IN, 0x700)?;
    m.dup2(p2, 904)?;
    m.add(ep, 904, IN, 0x701)?;
    m.close(904)?;

    // empty: no registration at all.
    m.epoll("empty")?;

    m.child("c1", &[c_r, s0])?;
    m.close(c_r)?;
    m.close(s0)?;
    m.child("c2", &[ep_inh, g_r])?;

    Ok(m.truth(CLASSIC_TFD, e2))
}

fn main() {
    let k: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("K is a number"))
        .unwrap_or(8);
    if k > 400 {
        eprintln!("kcmp-epoll-fixture: K must be at most 400 (the fds stay below {CLASSIC_TFD})");
        std::process::exit(2);
    }
    let mut m = Model {
        root: sys::getpid(),
        next: 0,
        fds: BTreeMap::new(),
        regs: Vec::new(),
        epolls: Vec::new(),
        children: Vec::new(),
    };
    let code = match build(&mut m, k) {
        Ok(truth) => {
            let mut out = io::stdout().lock();
            let _ = writeln!(out, "{truth}");
            let _ = out.flush();
            drop(out);
            // Wait for EOF on stdin.
            let mut sink = [0u8; 64];
            let mut stdin = io::stdin().lock();
            while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
            0
        }
        Err(e) => {
            eprintln!("kcmp-epoll-fixture: {e}");
            1
        }
    };
    for (_, pid) in &m.children {
        sys::kill_and_reap(*pid);
    }
    std::process::exit(code);
}
