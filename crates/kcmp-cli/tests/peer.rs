//! `kcmp holders --peer` on a FIFO: the other side is every opener of the
//! same FIFO — the same (device, inode), whatever name it was opened by —
//! with the opposite access mode; an O_RDWR opener is on both sides.

use kcmp_testkit::process::{sleeper, Kid};
use serde_json::Value;
use std::collections::BTreeSet;
use std::os::unix::fs::OpenOptionsExt;
use std::process::Stdio;

fn holders(args: &[String]) -> Value {
    kcmp_testkit::cli::success_json(
        &format!("kcmp {args:?}"),
        kcmp_testkit::cli::run(
            env!("CARGO_BIN_EXE_kcmp"),
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        ),
    )
}

fn pairs(v: &Value) -> BTreeSet<(i64, i64)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|h| (h["pid"].as_i64().unwrap(), h["fd"].as_i64().unwrap()))
        .collect()
}

fn peer_of(kid: &Kid, fd: i32) -> (String, BTreeSet<(i64, i64)>) {
    let v = holders(&[
        "holders".into(),
        kid.pid().to_string(),
        fd.to_string(),
        "--peer".into(),
        "--json".into(),
    ]);
    let p = &v["peer"];
    assert!(p.is_object(), "no peer for a FIFO: {v}");
    (p["end"].as_str().unwrap().to_string(), pairs(&p["holders"]))
}

#[test]
fn the_other_side_of_a_fifo_by_device_and_inode() {
    let tmp = kcmp_testkit::process::TempDir::new("kcmp-fifo");
    let dir = tmp.path().to_path_buf();
    let fifo = dir.join("fifo");
    let alias = dir.join("same-fifo-other-name");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    std::fs::hard_link(&fifo, &alias).unwrap();
    // Reader (non-blocking open: no writer yet), writer by the other name,
    // and a read-write opener; a second reader shares nothing with them.
    let open = |path: &std::path::Path, read: bool, write: bool| {
        std::fs::OpenOptions::new()
            .read(read)
            .write(write)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .unwrap()
    };
    let reader = sleeper(
        Stdio::from(open(&fifo, true, false)),
        Stdio::null(),
        Stdio::null(),
    );
    let writer = sleeper(
        Stdio::null(),
        Stdio::from(open(&alias, false, true)),
        Stdio::null(),
    );
    let both = sleeper(
        Stdio::null(),
        Stdio::null(),
        Stdio::from(open(&fifo, true, true)),
    );
    let reader2 = sleeper(
        Stdio::from(open(&alias, true, false)),
        Stdio::null(),
        Stdio::null(),
    );
    let (r, w, b, r2) = (
        reader.pid() as i64,
        writer.pid() as i64,
        both.pid() as i64,
        reader2.pid() as i64,
    );

    let (end, got) = peer_of(&reader, 0);
    assert_eq!(got, [(w, 1), (b, 2)].into(), "reader's peer");
    assert!(end.contains("write"), "{end}");
    let (end, got) = peer_of(&writer, 1);
    assert_eq!(got, [(r, 0), (b, 2), (r2, 0)].into(), "writer's peer");
    assert!(end.contains("read"), "{end}");
    let (_, got) = peer_of(&both, 2);
    assert_eq!(
        got,
        [(r, 0), (w, 1), (r2, 0)].into(),
        "the O_RDWR opener's peer"
    );

    // The human form says which end, labelling fds.
    let (code, out, err) = kcmp_testkit::cli::run(
        env!("CARGO_BIN_EXE_kcmp"),
        &["holders", &r.to_string(), "0", "--peer"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("other end (read-write,write):"), "{out}");
    assert!(out.contains(&format!("{w} (sleep) fd 1 ")), "{out}");
    assert!(!err.contains("not a pipe"), "{err}");
    drop((reader, writer, both, reader2));
}

#[test]
fn the_peer_of_a_connected_unix_socket() {
    use std::os::fd::AsRawFd;
    let ino = |fd: &dyn AsRawFd| -> u64 {
        let l = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
        let s = l.to_string_lossy().into_owned();
        s.trim_start_matches("socket:[")
            .trim_end_matches(']')
            .parse()
            .unwrap()
    };
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let (ia, ib) = (ino(&a), ino(&b));
    let diag = kcmp_map::sockdiag::unix_peer(ia);
    let one = sleeper(
        Stdio::from(std::os::fd::OwnedFd::from(a)),
        Stdio::null(),
        Stdio::null(),
    );
    let other = sleeper(
        Stdio::null(),
        Stdio::from(std::os::fd::OwnedFd::from(b)),
        Stdio::null(),
    );
    let args: Vec<String> = vec![
        "holders".into(),
        one.pid().to_string(),
        "0".into(),
        "--peer".into(),
        "--json".into(),
    ];
    let v = holders(&args);
    if diag.is_none() {
        // No sock_diag for unix sockets here (CONFIG_UNIX_DIAG): no peer, and no guess.
        assert!(v["peer"].is_null(), "{v}");
        return;
    }
    assert_eq!(diag, Some(ib));
    assert_eq!(v["peer"]["target"], format!("socket:[{ib}]"), "{v}");
    assert_eq!(v["peer"]["end"], "peer", "{v}");
    assert_eq!(
        pairs(&v["peer"]["holders"]),
        [(other.pid() as i64, 1)].into(),
        "{v}"
    );
    let (code, out, err) = kcmp_testkit::cli::run(
        env!("CARGO_BIN_EXE_kcmp"),
        &["holders", &one.pid().to_string(), "0", "--peer"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!(
            "other end (peer):\n{} (sleep) fd 1 socket:[{ib}]",
            other.pid()
        )),
        "{out}"
    );
}

/// A FIFO opened read-write by one description only (held by two
/// processes): its holders are on both ends, so the human output must not
/// claim that nobody holds the other end (a reader never sees EOF here).
#[test]
fn a_read_write_fifo_alone_is_not_reported_as_having_no_other_end() {
    let tmp = kcmp_testkit::process::TempDir::new("kcmp-fifo-rw");
    let fifo = tmp.path().join("fifo");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    let a = sleeper(
        Stdio::from(f.try_clone().unwrap()),
        Stdio::null(),
        Stdio::null(),
    );
    let b = sleeper(Stdio::from(f), Stdio::null(), Stdio::null());
    let (end, others) = peer_of(&a, 0);
    assert_eq!(end, "read-write");
    assert!(others.is_empty(), "{others:?}");
    let (code, out, err) = kcmp_testkit::cli::run(
        env!("CARGO_BIN_EXE_kcmp"),
        &["holders", &a.pid().to_string(), "0", "--peer"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("{} (sleep) fd 0", b.pid())), "{out}");
    assert!(!out.contains("nobody holds it"), "{out}");
    assert!(out.contains("never sees EOF"), "{out}");
    drop((a, b));
}
