//! Attacks on "never block on another process's files" around FUSE: a
//! holder (`kcmp-hang-fixture fuse`) holds a file of a FUSE filesystem
//! twice (one description, a bucket of two) whose server answers nothing
//! any more; closing a copy of that file sends FLUSH and waits forever.
//!
//! - A server-free host is one where fusectl counts no FUSE connection
//!   (its root's link count is 2). A connection's own directory in fusectl
//!   also has a link count of 2: mounted over `/sys/fs/fuse/connections`,
//!   it must not be taken for the root.
//! - Without kcmp(2) (seccomp, `kcmp-seccomp-run enosys`), the fallbacks
//!   compare copies taken with `pidfd_getfd`: those copies must not be of
//!   the FUSE file either.
//!
//! A run that hangs is killed after [`LIMIT`]; it ends (uninterruptible
//! until then) when the fixture aborts the connection, and is reaped then.

use kcmp_testkit::cli::{testkit_bin_next_to, Spawned};
use kcmp_testkit::process::{kernel_stacks, no_fuse, reap_within, JsonFixture};
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

/// The longest one kcmp run may take (a scan of one process takes
/// milliseconds).
const LIMIT: Duration = Duration::from_secs(10);

fn bin(name: &str) -> std::path::PathBuf {
    testkit_bin_next_to(env!("CARGO_BIN_EXE_kcmp"), name)
}

/// The hung FUSE file's holder: (fixture, holder pid, fd, its dup).
fn hung_fuse_holder() -> (JsonFixture, i64, i64, i64) {
    let mut command = Command::new(bin("kcmp-hang-fixture"));
    command.arg("fuse");
    let fx = JsonFixture::start(&mut command, Duration::from_secs(10));
    let field = |k: &str| fx.json[k].as_i64().unwrap();
    let (holder, fd, dup) = (field("holder"), field("fuse_fd"), field("fuse_dup"));
    (fx, holder, fd, dup)
}

/// Runs `program args` for at most [`LIMIT`]: its (code, stdout, stderr),
/// or, when it hangs, a report of where its threads wait (it is killed,
/// then reaped once `fx` ended and released it).
fn run_limited(
    fx: &mut JsonFixture,
    program: &str,
    args: &[String],
) -> Result<(i32, String, String), String> {
    let run = Spawned::start(program, args);
    match run.wait_within(LIMIT) {
        Ok(done) => Ok(done),
        Err(mut child) => {
            let stacks = kernel_stacks(child.id());
            let _ = child.kill();
            fx.end();
            let reaped = reap_within(&mut child, Duration::from_secs(5));
            Err(format!(
                "{program} {args:?}: hung for {LIMIT:?} (reaped after the abort: {reaped})\n{stacks}"
            ))
        }
    }
}

/// `mount(8)` by its absolute path (never looked up in PATH as root).
fn mount_program() -> Option<&'static str> {
    ["/usr/bin/mount", "/bin/mount"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
}

/// fusectl is mounted (`kcmp-with-fusectl`), then one FUSE connection's
/// directory (link count 2, fusectl's `f_type`) is bind-mounted over
/// `/sys/fs/fuse/connections`, where kcmp counts connections: kcmp must
/// not take it for a fusectl root without connections (a server-free
/// host), copy the hung FUSE file without a mount check and hang closing
/// the copy.
#[test]
fn a_fusectl_connection_directory_over_the_connections_root_is_not_a_server_free_host() {
    if let Some(why) = no_fuse() {
        eprintln!("skipped: {why}");
        return;
    }
    let Some(mount) = mount_program() else {
        eprintln!("skipped: no mount(8)");
        return;
    };
    let (mut fx, holder, _, _) = hung_fuse_holder();
    let script = format!(
        "for d in /sys/fs/fuse/connections/*/; do {mount} --bind \"$d\" \
         /sys/fs/fuse/connections || exit 77; break; done; \
         exec \"$0\" scan --json --pid {holder}"
    );
    let args: Vec<String> = vec![
        "/bin/sh".into(),
        "-c".into(),
        script,
        env!("CARGO_BIN_EXE_kcmp").into(),
    ];
    let wrapper = bin("kcmp-with-fusectl");
    let (code, out, err) = run_limited(&mut fx, &wrapper.to_string_lossy(), &args)
        .unwrap_or_else(|hung| panic!("{hung}"));
    if code == 77 {
        eprintln!("skipped: {err}");
        return;
    }
    assert_eq!(code, 0, "kcmp scan: exit {code}: {err}");
    let v: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        v["stats"]["copies_on_server_free_host"], 0,
        "{}",
        v["stats"]
    );
    let fuse_holders = v["open_files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["target"].as_str().is_some_and(|t| t.ends_with("/f")))
        .map(|f| f["holder_count"].clone());
    assert_eq!(fuse_holders, Some(2.into()), "{out}");
}

/// kcmp(2) refused (ENOSYS, as without CONFIG_KCMP): `kcmp file` of the
/// two fds of the hung FUSE file, and a scan of their holder, answer
/// (or fail) within the limit, without closing a copy of the FUSE file.
#[test]
fn without_kcmp_a_hung_fuse_file_never_hangs_a_comparison_or_a_scan() {
    if let Some(why) = no_fuse() {
        eprintln!("skipped: {why}");
        return;
    }
    let seccomp = bin("kcmp-seccomp-run");
    let kcmp = env!("CARGO_BIN_EXE_kcmp").to_string();
    let mut hung = Vec::new();
    for scan in [false, true] {
        // A fixture per run: a hung run is released by ending it.
        let (mut fx, holder, fd, dup) = hung_fuse_holder();
        let h = holder.to_string();
        let mut args = vec!["enosys".to_string(), "--".into(), kcmp.clone()];
        if scan {
            args.extend(["scan".into(), "--json".into(), "--pid".into(), h]);
        } else {
            args.extend(["file".into(), h.clone(), fd.to_string(), h, dup.to_string()]);
        }
        match run_limited(&mut fx, &seccomp.to_string_lossy(), &args) {
            Ok((code, _, err)) => assert!(!err.contains("panicked"), "exit {code}: {err}"),
            Err(report) => hung.push(report),
        }
    }
    assert!(hung.is_empty(), "{}", hung.join("\n"));
}
