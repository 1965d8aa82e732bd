//! `kcmp-leader-exit`: a process whose main thread has exited while another
//! thread lives on — `/proc/PID/stat` says `Z`, but the process still has
//! its address space, fd table and fs struct through the live thread.
//!
//! Prints one JSON line, `{"pid": P, "thread": T}`, once the main thread is
//! about to exit (check `/proc/P/stat` for `Z` before relying on it), then
//! keeps the thread alive until stdin reaches EOF, and exits the whole
//! process with status 0.

use std::io::{Read, Write};

fn main() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(rustix::thread::gettid().as_raw_nonzero().get());
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        std::process::exit(0); // exit_group: ends the process
    });
    let thread = rx.recv().expect("the thread's tid");
    let pid = std::process::id();
    let mut out = std::io::stdout().lock();
    writeln!(out, "{{\"pid\": {pid}, \"thread\": {thread}}}").expect("stdout");
    out.flush().expect("stdout");
    drop(out);
    // SAFETY: SYS_exit ends only the calling (main) thread; it takes an
    // integer status and touches no memory. Nothing of this thread's stack
    // is borrowed by the live thread (it owns everything it uses), and no
    // destructor needs to run: the process ends by exit_group later.
    unsafe { libc::syscall(libc::SYS_exit, 0) };
    unreachable!("SYS_exit returned");
}
