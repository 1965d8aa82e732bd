//! Out of fds under a hard limit (`ulimit -n 64`): `audit`, a CI gate, must
//! never pass a host it did not see as clean (exit 0, "0 findings"): it
//! sees every process (the engine works within the limit) or it is
//! trouble (2), named on stderr. Its own test binary:
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
        .args(["audit", "--json"])
        .output();
    // Raising the hard limit back needs CAP_SYS_RESOURCE; without it this
    // binary keeps 64, which is enough for the topology's end.
    let _ = setrlimit(Resource::Nofile, old);
    let out = out.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    // Either the engine worked within the limit (it pins by start time
    // past its fd budget) and the audit saw every process of the
    // topology, or it is trouble named as EMFILE: never a clean pass of a
    // host it did not see.
    match out.status.code() {
        Some(2) => assert!(err.contains("EMFILE"), "{err}"),
        Some(0) | Some(1) => {
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let tasks = v["summary"]["tasks"].as_u64().unwrap_or(0);
            assert!(tasks >= 301, "audit saw {tasks} tasks under 64 fds: {err}");
        }
        other => panic!("audit under 64 fds: {other:?}: {err}"),
    }
    drop(topo);
}
