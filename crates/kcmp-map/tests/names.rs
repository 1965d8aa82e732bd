//! Names that are not valid UTF-8 (issues 12 and 13): a scan keeps each
//! description's exact link bytes, and two names that read the same in
//! lossy UTF-8 (they differ only in an invalid byte) stay two descriptions.

use kcmp::{FdNum, Pid};
use kcmp_map::{scan, ScanOptions};
use kcmp_testkit::process::{Kid, TempDir};
use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Stdio};

/// A sleeping child with `stdin` and `stdout` (by absolute path: tests may
/// run as root and run nothing found through PATH).
fn sleeper(stdin: &File, stdout: &File) -> Kid {
    Kid(Command::new("/bin/sleep")
        .arg("60")
        .stdin(Stdio::from(stdin.try_clone().unwrap()))
        .stdout(Stdio::from(stdout.try_clone().unwrap()))
        .stderr(Stdio::null())
        .spawn()
        .unwrap())
}

#[test]
fn names_differing_in_an_invalid_byte_are_two_descriptions_with_exact_bytes() {
    let dir = TempDir::new("kcmp-names");
    let mut a = dir.path().as_os_str().as_bytes().to_vec();
    a.extend_from_slice(b"/name-\xff-x");
    let mut b = dir.path().as_os_str().as_bytes().to_vec();
    b.extend_from_slice(b"/name-\xfe-x");
    // One open of each file; both children hold both descriptions
    // (fd 0 on `a`, fd 1 on `b`).
    let fa = File::create(OsStr::from_bytes(&a)).unwrap();
    let fb = File::create(OsStr::from_bytes(&b)).unwrap();
    let kids = [sleeper(&fa, &fb), sleeper(&fa, &fb)];
    let pids: Vec<Pid> = kids.iter().map(|k| Pid::new(k.pid()).unwrap()).collect();
    let map = scan(&ScanOptions {
        pids: pids.clone(),
        ..ScanOptions::default()
    })
    .unwrap();
    let lossy = String::from_utf8_lossy(&a);
    assert_eq!(
        lossy,
        String::from_utf8_lossy(&b),
        "the names read the same"
    );
    let named: Vec<_> = map
        .open_files
        .iter()
        .filter(|d| d.target == lossy)
        .collect();
    assert_eq!(
        named.len(),
        2,
        "two descriptions under one lossy name: {named:?}"
    );
    for (fd, bytes) in [(0, &a), (1, &b)] {
        let d = map
            .description_of(pids[0], FdNum::new(fd).unwrap())
            .unwrap_or_else(|| panic!("fd {fd} not in the map: {map:?}"));
        let want: Vec<(Pid, i32)> = pids.iter().map(|&p| (p, fd)).collect();
        let got: Vec<(Pid, i32)> = d.members.iter().map(|m| (m.pid, m.fd.get())).collect();
        assert_eq!(got, want, "fd {fd}: one description held by both children");
        assert_eq!(d.target, lossy);
        assert_eq!(d.target_bytes(), bytes.as_slice(), "fd {fd}: exact bytes");
        assert!(!d.target_is_utf8());
        let json = serde_json::to_value(d).unwrap();
        let got: Vec<u8> = serde_json::from_value(json["target_bytes"].clone()).unwrap();
        assert_eq!(&got, bytes, "fd {fd}: JSON target_bytes");
    }
    // A valid UTF-8 name has no `target_bytes` key and `target` as its bytes.
    let stderr = map.description_of(pids[0], FdNum::new(2).unwrap()).unwrap();
    assert_eq!(stderr.target, "/dev/null");
    assert_eq!(stderr.target_bytes(), b"/dev/null");
    assert!(serde_json::to_value(stderr)
        .unwrap()
        .get("target_bytes")
        .is_none());
    drop(kids);
}
