//! Out of fds under a hard limit (`ulimit -n 64`): kcmp cannot inspect a
//! large set, and `audit`, a CI gate, must not pass it as clean (exit 0,
//! "0 findings"): it is trouble (2), named on stderr. Its own test binary:
//! it lowers this process's fd limits, which kcmp inherits.

use kcmp_testkit::Topology;
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

#[test]
fn audit_out_of_fds_is_trouble_not_a_clean_pass() {
    // The whole host, with at least these 301 processes on it: more than
    // 64 fds' worth.
    let topo = Topology::spawn("prefork", &["--procs", "300"]);
    let old = getrlimit(Resource::Nofile);
    let low = Rlimit {
        current: Some(64),
        maximum: Some(64),
    };
    setrlimit(Resource::Nofile, low).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kcmp"))
        .args(["audit"])
        .output();
    // Raising the hard limit back needs CAP_SYS_RESOURCE; without it this
    // binary keeps 64, which is enough for the topology's end.
    let _ = setrlimit(Resource::Nofile, old);
    let out = out.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("EMFILE"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    drop(topo);
}
