//! Out of fds (`EMFILE`, e.g. under `ulimit -n 64`) is not a vanished
//! process: pinning a live process when /proc cannot be opened must fail
//! with EMFILE (or succeed), never claim the process exited. (Its own test
//! binary: it lowers this process's fd limit.)

use kcmp::{Pid, ProcessHandle};
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

#[test]
fn pinning_out_of_fds_is_emfile_not_vanished() {
    let me = Pid::this();
    let start = ProcessHandle::open(me).unwrap().start_time();
    // The lowest free fd is n: every fd below is in use. With the limit at
    // n + 1, pidfd_open gets n and the /proc read that follows gets EMFILE.
    let n = {
        use std::os::fd::AsRawFd;
        std::fs::File::open("/dev/null").unwrap().as_raw_fd() as u64
    };
    let old = getrlimit(Resource::Nofile);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(n + 1),
            maximum: old.maximum,
        },
    )
    .unwrap();
    let pinned = ProcessHandle::pin(me, start);
    setrlimit(Resource::Nofile, old).unwrap();
    match pinned {
        Ok(h) => assert!(!h.has_exited()),
        Err(e) => {
            assert!(!e.is_gone(), "a live process reported gone: {e}");
            assert_eq!(e.errno_name(), Some("EMFILE"), "{e}");
        }
    }
}
