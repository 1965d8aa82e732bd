//! `kcmp-anchor-zoo DIR KIND...` (or `DIR all`): a process holding fds of
//! every kind it can create, for attacking the scan's anchors. For each
//! kind it builds two descriptions (where one link text can name two) of
//! two fds each (an fd and its dup), prints one line of JSON and waits for
//! EOF on stdin:
//!
//! `{"root":PID,"kinds":[{"kind":K,"descriptions":[[[pid,fd],...],...]}],
//! "skipped":[{"kind":K,"error":"..."}]}`
//!
//! Kinds that need another process (`private-ns-file`: a child in its own
//! mount namespace with a tmpfs mounted under DIR; `memfd-scm`: a memfd
//! sent to a child over `SCM_RIGHTS`; `memfd-same-name`: three children
//! with memfds of one name) fork children that die with the fixture
//! (`PR_SET_PDEATHSIG`). Files are made under DIR (which must exist).
//!
//! Kinds on a given file: `open:PATH` and `opath:PATH` (`O_RDWR`,
//! `O_PATH`), and `posix:PATH`, `ofd:PATH`, `flock:PATH` (opened `O_RDWR`,
//! each description read-locked with `F_SETLK`, `F_OFD_SETLK`, `flock`).

use std::ffi::CString;
use std::io::{Read, Write};

type Fd = (i32, i32);

/// Every kind, in the order `all` builds them.
const KINDS: &[&str] = &[
    "eventfd",
    "timerfd",
    "signalfd",
    "inotify",
    "fanotify",
    "epoll",
    "io_uring",
    "pidfd",
    "userfaultfd",
    "memfd",
    "memfd-hugetlb",
    "memfd-sealed",
    "memfd-secret",
    "perf-event",
    "bpf-map",
    "nsfs",
    "opath-file",
    "opath-dir",
    "opath-socket",
    "opath-fifo",
    "fifo",
    "unix-stream",
    "unix-dgram",
    "socketpair",
    "tcp",
    "udp",
    "netlink",
    "packet",
    "pipe",
    "devnull",
    "ptmx",
    "pts",
    "proc-file",
    "sys-file",
    "dir-file",
    "shm-file",
    "deleted-file",
    "private-ns-file",
    "memfd-scm",
    "memfd-same-name",
];

fn errno() -> String {
    std::io::Error::last_os_error().to_string()
}

fn ok(r: i64, what: &str) -> Result<i32, String> {
    if r < 0 {
        Err(format!("{what}: {}", errno()))
    } else {
        Ok(r as i32)
    }
}

fn me() -> i32 {
    std::process::id() as i32
}

fn dup(fd: i32) -> Result<i32, String> {
    // SAFETY: dup takes an integer.
    ok(i64::from(unsafe { libc::dup(fd) }), "dup")
}

fn cstr(s: &str) -> CString {
    CString::new(s).expect("no NUL in paths")
}

fn open(path: &str, flags: i32) -> Result<i32, String> {
    let p = cstr(path);
    // SAFETY: p is a valid C string.
    ok(
        i64::from(unsafe { libc::open(p.as_ptr(), flags | libc::O_CLOEXEC, 0o600) }),
        &format!("open {path}"),
    )
}

/// Two descriptions from `make`, each held twice (the fd and a dup).
fn twice(mut make: impl FnMut() -> Result<i32, String>) -> Result<Vec<Vec<Fd>>, String> {
    let mut out = Vec::new();
    for _ in 0..2 {
        let fd = make()?;
        out.push(vec![(me(), fd), (me(), dup(fd)?)]);
    }
    Ok(out)
}

fn socket(domain: i32, ty: i32, proto: i32) -> Result<i32, String> {
    // SAFETY: socket takes integers.
    ok(
        i64::from(unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) }),
        "socket",
    )
}

fn bind_unix(fd: i32, path: &str) -> Result<(), String> {
    let _ = std::fs::remove_file(path);
    // SAFETY: all-zero is a valid sockaddr_un.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in addr.sun_path.iter_mut().zip(path.bytes()) {
        *d = s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    // SAFETY: addr is a live sockaddr_un of `len` bytes.
    let r = unsafe { libc::bind(fd, (&raw const addr).cast(), len) };
    ok(i64::from(r), "bind").map(|_| ())
}

fn memfd(name: &str, flags: u32) -> Result<i32, String> {
    let n = cstr(name);
    // SAFETY: n is a valid C string.
    let r = unsafe { libc::memfd_create(n.as_ptr(), flags | libc::MFD_CLOEXEC) };
    ok(i64::from(r), "memfd_create")
}

fn raw(nr: libc::c_long, a: [usize; 5], what: &str) -> Result<i32, String> {
    // SAFETY: callers pass integers or pointers to live buffers for `nr`.
    let r = unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], a[4]) };
    ok(r, what)
}

fn signalfd() -> Result<i32, String> {
    // SAFETY: all-zero is a valid (empty) sigset_t, filled by sigaddset.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: set is a live sigset_t.
    unsafe { libc::sigaddset(&mut set, libc::SIGUSR1) };
    // SAFETY: set is a live sigset_t.
    ok(
        i64::from(unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC) }),
        "signalfd",
    )
}

fn perf_event() -> Result<i32, String> {
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&1u32.to_ne_bytes()); // PERF_TYPE_SOFTWARE
    attr[4..8].copy_from_slice(&128u32.to_ne_bytes()); // size
    attr[8..16].copy_from_slice(&0u64.to_ne_bytes()); // PERF_COUNT_SW_CPU_CLOCK
    attr[40..48].copy_from_slice(&1u64.to_ne_bytes()); // disabled
    let a = [attr.as_ptr() as usize, 0, usize::MAX, usize::MAX, 8]; // pid 0, cpu -1, group -1, CLOEXEC
    raw(libc::SYS_perf_event_open, a, "perf_event_open")
}

fn bpf_map() -> Result<i32, String> {
    let mut attr = [0u32; 32];
    attr[0] = 2; // BPF_MAP_TYPE_ARRAY
    attr[1] = 4; // key size
    attr[2] = 4; // value size
    attr[3] = 1; // max entries
    let a = [0, attr.as_ptr() as usize, 128, 0, 0]; // BPF_MAP_CREATE
    raw(libc::SYS_bpf, a, "bpf(BPF_MAP_CREATE)")
}

fn tcp_or_udp(ty: i32) -> Result<i32, String> {
    let fd = socket(libc::AF_INET, ty, 0)?;
    // SAFETY: all-zero is a valid sockaddr_in.
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    addr.sin_family = libc::AF_INET as libc::sa_family_t;
    addr.sin_addr.s_addr = u32::from_be_bytes([127, 0, 0, 1]).to_be();
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: addr is a live sockaddr_in of `len` bytes.
    ok(
        i64::from(unsafe { libc::bind(fd, (&raw const addr).cast(), len) }),
        "bind",
    )?;
    if ty == libc::SOCK_STREAM {
        // SAFETY: listen takes integers.
        ok(i64::from(unsafe { libc::listen(fd, 1) }), "listen")?;
    }
    Ok(fd)
}

/// Forks a child that runs `build`, reports its descriptions over a pipe
/// and waits to die with this process.
fn child(build: impl FnOnce() -> Result<Vec<Vec<Fd>>, String>) -> Result<Vec<Vec<Fd>>, String> {
    let mut p = [0i32; 2];
    // SAFETY: pipe writes two ints into a live array.
    ok(i64::from(unsafe { libc::pipe(p.as_mut_ptr()) }), "pipe")?;
    // SAFETY: this fixture is single-threaded.
    let pid = ok(i64::from(unsafe { libc::fork() }), "fork")?;
    if pid == 0 {
        // SAFETY: prctl takes integers.
        unsafe {
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            )
        };
        let text = match build() {
            Ok(d) => serde_json::to_string(&d).unwrap(),
            Err(e) => serde_json::to_string(&e).unwrap(),
        };
        // SAFETY: writes a live buffer to our pipe end, then closes both ends.
        unsafe {
            libc::write(p[1], text.as_ptr().cast(), text.len());
            libc::close(p[1]);
            libc::close(p[0]);
        }
        loop {
            // SAFETY: pause takes no arguments.
            unsafe { libc::pause() };
        }
    }
    // SAFETY: closes our copy of the write end.
    unsafe { libc::close(p[1]) };
    let mut text = String::new();
    // SAFETY: p[0] is our read end; File takes ownership and closes it.
    let mut f = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(p[0]) };
    f.read_to_string(&mut text).map_err(|e| e.to_string())?;
    match serde_json::from_str::<Vec<Vec<Fd>>>(&text) {
        Ok(d) => Ok(d),
        Err(_) => Err(serde_json::from_str::<String>(&text).unwrap_or(text)),
    }
}

fn private_ns_file(dir: &str) -> Result<Vec<Vec<Fd>>, String> {
    let mnt = format!("{dir}/ns-mnt");
    std::fs::create_dir_all(&mnt).map_err(|e| e.to_string())?;
    child(move || {
        // SAFETY: unshare takes flags only.
        ok(
            i64::from(unsafe { libc::unshare(libc::CLONE_NEWNS) }),
            "unshare",
        )?;
        let (root, none, m, tmpfs) = (cstr("/"), cstr("none"), cstr(&mnt), cstr("tmpfs"));
        // SAFETY: valid C strings, null data.
        let r = unsafe {
            libc::mount(
                none.as_ptr(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            )
        };
        ok(i64::from(r), "make / private")?;
        // SAFETY: valid C strings, null data.
        let r = unsafe {
            libc::mount(
                tmpfs.as_ptr(),
                m.as_ptr(),
                tmpfs.as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        ok(i64::from(r), "mount tmpfs")?;
        let file = format!("{mnt}/f");
        twice(|| open(&file, libc::O_RDWR | libc::O_CREAT))
    })
}

fn send_fd(sock: i32, fd: i32) -> Result<(), String> {
    use rustix::net::{sendmsg, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    // SAFETY: both fds are open for this call.
    let (s, f) = unsafe {
        (
            rustix::fd::BorrowedFd::borrow_raw(sock),
            rustix::fd::BorrowedFd::borrow_raw(fd),
        )
    };
    let fds = [f];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut buf = SendAncillaryBuffer::new(&mut space);
    buf.push(SendAncillaryMessage::ScmRights(&fds));
    sendmsg(
        s,
        &[std::io::IoSlice::new(b"x")],
        &mut buf,
        SendFlags::empty(),
    )
    .map(|_| ())
    .map_err(|e| format!("sendmsg: {e}"))
}

fn recv_fd(sock: i32) -> Result<i32, String> {
    use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    // SAFETY: sock is open for this call.
    let s = unsafe { rustix::fd::BorrowedFd::borrow_raw(sock) };
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut buf = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut byte)];
    recvmsg(s, &mut iov, &mut buf, RecvFlags::CMSG_CLOEXEC).map_err(|e| format!("recvmsg: {e}"))?;
    for msg in buf.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = msg {
            if let Some(fd) = fds.next() {
                return Ok(std::os::fd::IntoRawFd::into_raw_fd(fd));
            }
        }
    }
    Err("no fd received".into())
}

/// A memfd sent to a child over SCM_RIGHTS: one description in two
/// processes, next to a second memfd of the same name held by the parent.
fn memfd_scm() -> Result<Vec<Vec<Fd>>, String> {
    let mut sv = [0i32; 2];
    // SAFETY: socketpair writes two ints into a live array.
    let r = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_DGRAM, 0, sv.as_mut_ptr()) };
    ok(i64::from(r), "socketpair")?;
    let m = memfd("kcmp-zoo-scm", 0)?;
    // Queued before the child exists (which closes its inherited copy).
    send_fd(sv[0], m)?;
    let mut got = child(move || {
        let got = recv_fd(sv[1])?;
        // SAFETY: closes the inherited copy: the child holds only what it received.
        unsafe { libc::close(m) };
        Ok(vec![vec![(me(), got), (me(), dup(got)?)]])
    })?;
    // SAFETY: closes our socketpair ends.
    unsafe {
        libc::close(sv[0]);
        libc::close(sv[1]);
    }
    got[0].extend([(me(), m), (me(), dup(m)?)]);
    let other = memfd("kcmp-zoo-scm", 0)?;
    got.push(vec![(me(), other), (me(), dup(other)?)]);
    Ok(got)
}

fn memfd_same_name() -> Result<Vec<Vec<Fd>>, String> {
    let mut all = Vec::new();
    for _ in 0..3 {
        all.extend(child(|| twice(|| memfd("kcmp-zoo-same", 0)))?);
    }
    all.extend(twice(|| memfd("kcmp-zoo-same", 0))?);
    Ok(all)
}

/// `open:PATH`, `opath:PATH`, and `posix:PATH`, `ofd:PATH`, `flock:PATH`:
/// two descriptions of PATH, each read-locked that way.
fn on_path(kind: &str) -> Result<Vec<Vec<Fd>>, String> {
    let Some((how, path)) = kind.split_once(':') else {
        return Err(format!("unknown kind {kind}"));
    };
    let flags = if how == "opath" {
        libc::O_PATH
    } else {
        libc::O_RDWR
    };
    let lock = |fd: i32| -> Result<(), String> {
        // SAFETY: all-zero is a valid flock (l_pid 0, as OFD locks need).
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = libc::F_RDLCK as libc::c_short;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        // SAFETY: fl is a live flock; flock takes integers.
        let r = unsafe {
            match how {
                "posix" => libc::fcntl(fd, libc::F_SETLK, &fl),
                "ofd" => libc::fcntl(fd, libc::F_OFD_SETLK, &fl),
                "flock" => libc::flock(fd, libc::LOCK_SH | libc::LOCK_NB),
                _ => 0,
            }
        };
        ok(i64::from(r), how).map(|_| ())
    };
    twice(|| {
        let fd = open(path, flags)?;
        lock(fd)?;
        Ok(fd)
    })
}

fn build(kind: &str, dir: &str) -> Result<Vec<Vec<Fd>>, String> {
    match kind {
        // SAFETY (each libc call below): integer or C-string arguments.
        "eventfd" => twice(|| {
            ok(
                i64::from(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) }),
                "eventfd",
            )
        }),
        "timerfd" => twice(|| {
            let r = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_CLOEXEC) };
            ok(i64::from(r), "timerfd_create")
        }),
        "signalfd" => twice(signalfd),
        "inotify" => twice(|| {
            ok(
                i64::from(unsafe { libc::inotify_init1(libc::IN_CLOEXEC) }),
                "inotify_init1",
            )
        }),
        "fanotify" => twice(|| {
            let r = unsafe { libc::fanotify_init(libc::FAN_CLASS_NOTIF | libc::FAN_CLOEXEC, 0) };
            ok(i64::from(r), "fanotify_init")
        }),
        "epoll" => twice(|| {
            ok(
                i64::from(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) }),
                "epoll_create1",
            )
        }),
        "io_uring" => twice(|| {
            let params = [0u8; 120];
            raw(
                libc::SYS_io_uring_setup,
                [4, params.as_ptr() as usize, 0, 0, 0],
                "io_uring_setup",
            )
        }),
        "pidfd" => twice(|| {
            raw(
                libc::SYS_pidfd_open,
                [me() as usize, 0, 0, 0, 0],
                "pidfd_open",
            )
        }),
        "userfaultfd" => twice(|| {
            raw(
                libc::SYS_userfaultfd,
                [libc::O_CLOEXEC as usize, 0, 0, 0, 0],
                "userfaultfd",
            )
        }),
        "memfd" => twice(|| memfd("kcmp-zoo", 0)),
        "memfd-hugetlb" => twice(|| memfd("kcmp-zoo-huge", libc::MFD_HUGETLB)),
        "memfd-sealed" => twice(|| {
            let fd = memfd("kcmp-zoo-sealed", libc::MFD_ALLOW_SEALING)?;
            let seals = libc::F_SEAL_SEAL | libc::F_SEAL_GROW | libc::F_SEAL_SHRINK;
            ok(
                i64::from(unsafe { libc::fcntl(fd, libc::F_ADD_SEALS, seals) }),
                "F_ADD_SEALS",
            )?;
            Ok(fd)
        }),
        "memfd-secret" => twice(|| {
            raw(
                libc::SYS_memfd_secret,
                [libc::O_CLOEXEC as usize, 0, 0, 0, 0],
                "memfd_secret",
            )
        }),
        "perf-event" => twice(perf_event),
        "bpf-map" => twice(bpf_map),
        _ => build_file(kind, dir),
    }
}

/// [`build`] for kinds with a path, sockets and pipes.
fn build_file(kind: &str, dir: &str) -> Result<Vec<Vec<Fd>>, String> {
    match kind {
        "nsfs" => twice(|| open("/proc/self/ns/net", libc::O_RDONLY)),
        "opath-file" => {
            std::fs::write(format!("{dir}/plain"), b"x").map_err(|e| e.to_string())?;
            twice(|| open(&format!("{dir}/plain"), libc::O_PATH))
        }
        "opath-dir" => twice(|| open(dir, libc::O_PATH | libc::O_DIRECTORY)),
        "opath-socket" => {
            let path = format!("{dir}/sock");
            bind_unix(socket(libc::AF_UNIX, libc::SOCK_STREAM, 0)?, &path)?;
            twice(|| open(&path, libc::O_PATH))
        }
        "opath-fifo" | "fifo" => {
            let path = format!("{dir}/fifo");
            let p = cstr(&path);
            if !std::path::Path::new(&path).exists() {
                ok(
                    i64::from(unsafe { libc::mkfifo(p.as_ptr(), 0o600) }),
                    "mkfifo",
                )?;
            }
            let flags = if kind == "fifo" {
                libc::O_RDWR
            } else {
                libc::O_PATH
            };
            twice(|| open(&path, flags))
        }
        "unix-stream" => twice(|| socket(libc::AF_UNIX, libc::SOCK_STREAM, 0)),
        "unix-dgram" => twice(|| socket(libc::AF_UNIX, libc::SOCK_DGRAM, 0)),
        "socketpair" => {
            let mut sv = [0i32; 2];
            let r =
                unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, sv.as_mut_ptr()) };
            ok(i64::from(r), "socketpair")?;
            Ok(vec![
                vec![(me(), sv[0]), (me(), dup(sv[0])?)],
                vec![(me(), sv[1]), (me(), dup(sv[1])?)],
            ])
        }
        "tcp" => twice(|| tcp_or_udp(libc::SOCK_STREAM)),
        "udp" => twice(|| tcp_or_udp(libc::SOCK_DGRAM)),
        "netlink" => twice(|| socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE)),
        "packet" => twice(|| socket(libc::AF_PACKET, libc::SOCK_RAW, 0)),
        "pipe" => {
            let mut p = [0i32; 2];
            ok(
                i64::from(unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) }),
                "pipe2",
            )?;
            Ok(vec![
                vec![(me(), p[0]), (me(), dup(p[0])?)],
                vec![(me(), p[1]), (me(), dup(p[1])?)],
            ])
        }
        _ => build_device(kind, dir),
    }
}

/// [`build_file`] for devices, /proc, /sys, plain files and the kinds that
/// need children.
fn build_device(kind: &str, dir: &str) -> Result<Vec<Vec<Fd>>, String> {
    match kind {
        "devnull" => twice(|| open("/dev/null", libc::O_RDWR)),
        "ptmx" => twice(|| open("/dev/ptmx", libc::O_RDWR | libc::O_NOCTTY)),
        "pts" => {
            let master = open("/dev/ptmx", libc::O_RDWR | libc::O_NOCTTY)?;
            let mut n: libc::c_int = 0;
            ok(
                i64::from(unsafe { libc::ioctl(master, libc::TIOCGPTN, &mut n) }),
                "TIOCGPTN",
            )?;
            let unlock: libc::c_int = 0;
            ok(
                i64::from(unsafe { libc::ioctl(master, libc::TIOCSPTLCK, &unlock) }),
                "TIOCSPTLCK",
            )?;
            twice(|| open(&format!("/dev/pts/{n}"), libc::O_RDWR | libc::O_NOCTTY))
        }
        "proc-file" => twice(|| open("/proc/self/status", libc::O_RDONLY)),
        "sys-file" => twice(|| open("/sys/kernel/uevent_seqnum", libc::O_RDONLY)),
        "dir-file" => {
            let path = format!("{dir}/dir-file");
            twice(|| open(&path, libc::O_RDWR | libc::O_CREAT))
        }
        "shm-file" => {
            let path = format!("/dev/shm/kcmp-zoo-{}", me());
            let d = twice(|| open(&path, libc::O_RDWR | libc::O_CREAT));
            let _ = std::fs::remove_file(&path);
            d
        }
        "deleted-file" => {
            let path = format!("{dir}/deleted");
            let d = twice(|| open(&path, libc::O_RDWR | libc::O_CREAT));
            std::fs::remove_file(&path).map_err(|e| e.to_string())?;
            d
        }
        "private-ns-file" => private_ns_file(dir),
        "memfd-scm" => memfd_scm(),
        "memfd-same-name" => memfd_same_name(),
        _ => on_path(kind),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((dir, kinds)) = args.split_first() else {
        eprintln!("usage: kcmp-anchor-zoo DIR KIND... | DIR all");
        std::process::exit(2);
    };
    let kinds: Vec<&str> = match kinds.first().map(String::as_str) {
        Some("all") => KINDS.to_vec(),
        _ => kinds.iter().map(String::as_str).collect(),
    };
    let (mut built, mut skipped) = (Vec::new(), Vec::new());
    for kind in kinds {
        match build(kind, dir) {
            Ok(d) => built.push(serde_json::json!({"kind": kind, "descriptions": d})),
            Err(e) => skipped.push(serde_json::json!({"kind": kind, "error": e})),
        }
    }
    let truth = serde_json::json!({"root": me(), "kinds": built, "skipped": skipped});
    println!("{truth}");
    let _ = std::io::stdout().flush();
    let mut buf = [0u8; 64];
    while matches!(std::io::stdin().read(&mut buf), Ok(n) if n > 0) {}
}
