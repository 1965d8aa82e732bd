//! `kcmp-hang-fixture fuse-swap`: fds switched onto a FUSE file under an
//! inspector's feet.
//!
//! The server (the `fuse` mode's) answers every request made by the holder
//! (this process, single-threaded: the pid in the `fuse_in_header` of each
//! request it causes) or by the kernel itself (pid 0: INIT, the background
//! RELEASE of a closed file), and never answers any other process: whoever
//! else asks (a `stat` of the file, the FLUSH sent by closing a copy of it)
//! waits until the connection is aborted when the fixture ends.
//!
//! The holder loops until stdin closes: fd [`SWAP_A`] switches (`dup2`)
//! between the read end of a pipe and the FUSE file, fd [`SWAP_B`] between a
//! regular file on /tmp and the FUSE file. Its own closes of the FUSE file
//! send FLUSH from its pid, which the server answers. An inspector that
//! classifies A as a pipe (or B as a file on a local filesystem) and then
//! copies it with `pidfd_getfd` may get the FUSE file: closing that copy
//! waits forever. Prints `{"server": S, "holder": H, "swap_fds": [A, B],
//! "fuse_fd": F, "pipe": [R, W], "file_fd": T, "mount": "…", "abort": bool}`
//! (`abort`: the connection can be aborted through fusectl at the end).

use super::{check, fork_with, fuse};

/// The fd switched between a pipe and the FUSE file.
const SWAP_A: i32 = 40;
/// The fd switched between a regular file on /tmp and the FUSE file.
const SWAP_B: i32 = 41;
/// Where the fusectl filesystem lists connections.
const FUSECTL: &str = "/sys/fs/fuse/connections";

/// Answers the holder's and the kernel's requests, drops the others'.
fn serve(dev: i32, holder: u32) {
    let mut buf = vec![0u8; 1 << 21];
    loop {
        // SAFETY: reading into a valid buffer.
        let n = unsafe { libc::read(dev, buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 40 {
            let req = &buf[..n as usize];
            let pid = u32::from_ne_bytes(req[32..36].try_into().unwrap());
            if pid == holder || pid == 0 {
                fuse::answer(dev, req);
            } else {
                let opcode = u32::from_ne_bytes(req[4..8].try_into().unwrap());
                eprintln!("kcmp-hang-fixture: FUSE opcode {opcode} from pid {pid} left unanswered");
            }
        } else if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENODEV) {
            return;
        }
    }
}

/// Whether stdin reached EOF (without waiting).
fn stdin_closed() -> bool {
    let mut p = libc::pollfd {
        fd: 0,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    if unsafe { libc::poll(&mut p, 1, 0) } <= 0 {
        return false;
    }
    let mut buf = [0u8; 64];
    // SAFETY: reading into a valid stack buffer.
    unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) <= 0 }
}

/// Mounts fusectl in this (private) mount namespace and returns the path of
/// the `abort` file of the connection serving `dir`, when that works.
fn abort_path(dir: &str) -> Option<String> {
    let (none, at) = (fuse::cstr("fusectl"), fuse::cstr(FUSECTL));
    // SAFETY: mount with valid C strings and no data.
    let r = unsafe {
        libc::mount(
            none.as_ptr(),
            at.as_ptr(),
            none.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EBUSY) {
        return None;
    }
    // The stat is the holder's: the server answers it.
    let dev = std::fs::metadata(dir).ok().map(|m| {
        use std::os::unix::fs::MetadataExt;
        m.dev()
    })?;
    // The kernel's dev_t, as fusectl names its directories.
    let id = (libc::major(dev) << 20) | libc::minor(dev);
    let path = format!("{FUSECTL}/{id}/abort");
    std::path::Path::new(&path).exists().then_some(path)
}

/// Switches A and B until stdin closes. Each switch away from the FUSE
/// file closes a dup of it: a FLUSH from this process, answered.
fn switch_until_eof(fuse_fd: i32, pipe_r: i32, file: i32) {
    let mut n = 0u64;
    loop {
        // SAFETY: dup2 of fds this process owns onto fds it owns.
        unsafe {
            check("dup2 fuse -> A", libc::dup2(fuse_fd, SWAP_A));
            check("dup2 file -> B", libc::dup2(file, SWAP_B));
            check("dup2 pipe -> A", libc::dup2(pipe_r, SWAP_A));
            check("dup2 fuse -> B", libc::dup2(fuse_fd, SWAP_B));
        }
        n += 1;
        if n % 64 == 0 && stdin_closed() {
            return;
        }
    }
}

pub fn run() {
    let plain = Plain::open();
    let fuse = Fuse::start();
    println!(
        "{{\"server\": {}, \"holder\": {}, \"swap_fds\": [{SWAP_A}, {SWAP_B}], \
         \"fuse_fd\": {}, \"pipe\": [{}, {}], \"file_fd\": {}, \"mount\": \"{}\", \
         \"abort\": {}}}",
        fuse.server,
        std::process::id(),
        fuse.fd,
        plain.pipe[0],
        plain.pipe[1],
        plain.file,
        fuse.dir,
        fuse.abort.is_some()
    );
    switch_until_eof(fuse.fd, plain.pipe[0], plain.file);
    fuse.end();
    plain.end();
}

/// `fuse-swap-late`: A holds the pipe's read end and B the file, and no
/// FUSE filesystem exists, until a line arrives on stdin; then the server
/// starts and the switching begins. Prints `{"holder": H, "swap_fds": [A,
/// B]}` at once.
pub fn run_late() {
    let plain = Plain::open();
    // SAFETY: dup2 of fds this process owns.
    unsafe {
        check("dup2 pipe -> A", libc::dup2(plain.pipe[0], SWAP_A));
        check("dup2 file -> B", libc::dup2(plain.file, SWAP_B));
    }
    println!(
        "{{\"holder\": {}, \"swap_fds\": [{SWAP_A}, {SWAP_B}]}}",
        std::process::id()
    );
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line).unwrap_or(0) == 0 {
        plain.end();
        return;
    }
    let fuse = Fuse::start();
    switch_until_eof(fuse.fd, plain.pipe[0], plain.file);
    fuse.end();
    plain.end();
}

/// The pipe and the regular file on /tmp.
struct Plain {
    pipe: [i32; 2],
    file: i32,
    path: String,
}

impl Plain {
    fn open() -> Plain {
        let path = format!("/tmp/kcmp-hang-fixture-{}.file", std::process::id());
        let mut pipe = [0i32; 2];
        // SAFETY: open/pipe with a valid C string and a valid array.
        let file = unsafe {
            check("pipe", libc::pipe(pipe.as_mut_ptr()));
            let flags = libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC;
            let file = libc::open(fuse::cstr(&path).as_ptr(), flags, 0o600);
            check("open the file on /tmp", file)
        };
        Plain { pipe, file, path }
    }

    fn end(self) {
        for fd in [SWAP_A, SWAP_B, self.file, self.pipe[0], self.pipe[1]] {
            // SAFETY: closing fds this process owns.
            unsafe { libc::close(fd) };
        }
        let _ = std::fs::remove_file(self.path);
    }
}

/// The FUSE filesystem, its server and an fd of its file.
struct Fuse {
    dir: String,
    server: i32,
    abort: Option<String>,
    fd: i32,
}

impl Fuse {
    fn start() -> Fuse {
        let (dir, dev) = fuse::mount();
        let holder = std::process::id();
        let server = fork_with(|| serve(dev, holder));
        // SAFETY: closing an fd this process owns: from now on the server
        // is the only holder of the device.
        unsafe { libc::close(dev) };
        let abort = abort_path(&dir);
        // SAFETY: open with a valid C string.
        let fd = check("open the FUSE file", unsafe {
            libc::open(fuse::cstr(&format!("{dir}/f")).as_ptr(), libc::O_RDONLY)
        });
        Fuse {
            dir,
            server,
            abort,
            fd,
        }
    }

    /// Aborts the connection, then kills the server (which aborts it too,
    /// unless someone else holds a copy of the device): every request still
    /// waiting ends, and the closes after it do not wait either.
    fn end(self) {
        if let Some(abort) = self.abort {
            let _ = std::fs::write(abort, "1");
        }
        // SAFETY: kill/waitpid/close/umount2 with integers and a valid C string.
        unsafe {
            libc::kill(self.server, libc::SIGKILL);
            libc::waitpid(self.server, std::ptr::null_mut(), 0);
            libc::close(self.fd); // A and B: closed by `Plain::end`
            libc::umount2(fuse::cstr(&self.dir).as_ptr(), libc::MNT_DETACH);
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}
