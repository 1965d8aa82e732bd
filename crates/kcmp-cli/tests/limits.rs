//! A hard fd limit below what pinning every process needs (issue 9): with
//! RLIMIT_NOFILE at 1024 (soft and hard, set before exec'ing kcmp) and
//! 1,500 processes sharing one pipe, `scan` and `holders` still answer
//! exactly: the library pins by pidfd while the limit allows and by start
//! time after, and never names EMFILE "the task exited".

use kcmp_testkit::cli::{output_of, testkit_bin_next_to};
use kcmp_testkit::process::{close_and_reap, read_line_within};
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::Duration;

fn limited_kcmp(args: &[&str]) -> (i32, String, String) {
    let oddities = testkit_bin_next_to(env!("CARGO_BIN_EXE_kcmp"), "kcmp-oddities");
    output_of(
        Command::new(oddities)
            .args(["limit", "1024", env!("CARGO_BIN_EXE_kcmp")])
            .args(args)
            .stdin(Stdio::null()),
    )
}

#[test]
fn fifteen_hundred_processes_under_a_hard_limit_of_1024_fds() {
    let oddities = testkit_bin_next_to(env!("CARGO_BIN_EXE_kcmp"), "kcmp-oddities");
    let mut child = Command::new(oddities)
        .args(["many", "1500"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take();
    let line = read_line_within(child.stdout.take().unwrap(), Duration::from_secs(120))
        .expect("the fixture prints its truth");
    let truth: Value = serde_json::from_str(&line).unwrap();
    let root = truth["pid"].as_i64().unwrap().to_string();
    let pipe = truth["pipe"].as_i64().unwrap();
    let kids = truth["children"].as_array().unwrap().len();
    assert_eq!(kids, 1500);

    let (code, out, err) = limited_kcmp(&["scan", "--tree", &root, "--json"]);
    assert_eq!(code, 0, "scan: {err}");
    let scan: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(scan["tasks"], 1501, "skipped: {}", scan["skipped"]);
    let shared = scan["open_files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| {
            d["members"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["pid"].as_i64().unwrap().to_string() == root && m["fd"] == pipe)
        })
        .expect("the shared pipe");
    assert_eq!(shared["members"].as_array().unwrap().len(), 1501);

    let (code, out, err) = limited_kcmp(&["holders", &root, &pipe.to_string(), "--json"]);
    assert_eq!(code, 0, "holders: {err}");
    let h: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        h["holders"].as_array().unwrap().len(),
        1501,
        "skipped: {}",
        h["skipped"]
    );
    close_and_reap(&mut child, stdin, Duration::from_secs(30));
}
