//! `kcmp doctor` on this machine (kcmp available, no filter): every probe is
//! real, so the report must match what the machine does.

use std::process::Command;

fn kcmp() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kcmp"))
}

fn doctor_json() -> (serde_json::Value, i32) {
    let out = kcmp().args(["doctor", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("bad JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    (v, out.status.code().unwrap())
}

fn status_field(key: &str) -> Option<String> {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
}

#[test]
fn json_report_matches_the_machine() {
    let (v, code) = doctor_json();
    // The keys documented in kcmp_map::doctor.
    for key in [
        "kernel",
        "min_kernel",
        "kernel_features",
        "euid",
        "kcmp",
        "seccomp",
        "cap_sys_ptrace",
        "ptrace_scope",
        "fallbacks",
        "freeze",
        "server_free_host",
        "unprivileged",
        "usable",
    ] {
        assert!(v.get(key).is_some(), "missing {key}: {v}");
    }
    let uname = rustix::system::uname();
    assert_eq!(
        v["kernel"]["release"],
        uname.release().to_str().unwrap(),
        "{v}"
    );
    // Every feature with its version, present as the release says.
    let release = uname.release().to_str().unwrap();
    let mut nums = release.split(['.', '-']);
    let have: (u32, u32) = (
        nums.next().unwrap().parse().unwrap(),
        nums.next().unwrap().parse().unwrap(),
    );
    let features = v["kernel_features"].as_array().expect("an array");
    let mut seen = Vec::new();
    for f in features {
        let name = f["name"].as_str().unwrap();
        let since = f["since"].as_str().unwrap();
        let (maj, min) = since.split_once('.').unwrap();
        let since_v: (u32, u32) = (maj.parse().unwrap(), min.parse().unwrap());
        assert_eq!(f["present"], have >= since_v, "{name}: {v}");
        assert!(!f["without"].as_str().unwrap().is_empty());
        seen.push((name.to_string(), since.to_string()));
    }
    for (name, since) in [
        ("pidfd", "5.3"),
        ("pidfd_getfd", "5.6"),
        ("fdinfo ino", "5.14"),
        ("PIDFD_THREAD", "6.9"),
        ("F_DUPFD_QUERY", "6.10"),
        ("PIDFD_GET_INFO", "6.13"),
    ] {
        assert!(
            seen.contains(&(name.to_string(), since.to_string())),
            "{name} {since} in {seen:?}"
        );
    }
    assert_eq!(v["min_kernel"], "3.5");
    let seccomp: u64 = status_field("Seccomp:").unwrap().parse().unwrap();
    assert_eq!(v["seccomp"]["mode"], seccomp);
    if seccomp == 0 {
        // The test machine has kcmp (Linux 6.18, no filter).
        assert_eq!(v["kcmp"]["works"], true, "{v}");
        assert!(v["kcmp"]["errno"].is_null());
        assert_eq!(code, 0);
        assert_eq!(v["usable"], true);
    }
    let cap = u64::from_str_radix(&status_field("CapEff:").unwrap(), 16).unwrap();
    assert_eq!(v["cap_sys_ptrace"], cap & (1 << 19) != 0);
    let scope = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .ok()
        .map(|s| s.trim().parse::<u64>().unwrap());
    match scope {
        Some(s) => assert_eq!(v["ptrace_scope"]["value"], s),
        None => assert!(v["ptrace_scope"]["value"].is_null()),
    }
    assert_eq!(v["euid"], rustix::process::geteuid().as_raw());
    // Linux 6.18 has F_DUPFD_QUERY (6.10) and pidfd_getfd (5.6).
    for f in ["f_dupfd_query", "pidfd_getfd", "epoll_trick"] {
        assert_eq!(v["fallbacks"][f]["works"], true, "{f}: {v}");
    }
    // As root (or with CAP_SYS_PTRACE) ptrace of an own child works; SIGSTOP always.
    assert_eq!(v["freeze"]["sigstop"]["works"], true, "{v}");
    if cap & (1 << 19) != 0 {
        assert_eq!(v["freeze"]["ptrace"]["works"], true, "{v}");
    }
    assert!(v["freeze"]["cgroup_freeze"]["works"].is_boolean());
    assert!(v["unprivileged"].as_str().unwrap().contains("EPERM"));
}

#[test]
fn human_report_names_every_section() {
    let out = kcmp().arg("doctor").env("NO_COLOR", "1").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for word in [
        "kernel",
        "kcmp",
        "seccomp",
        "CAP_SYS_PTRACE",
        "ptrace_scope",
        "F_DUPFD_QUERY",
        "pidfd_getfd",
        "epoll trick",
        "ptrace",
        "cgroup v2",
        "SIGSTOP",
        "server-free",
        "unprivileged users",
        "kernel features (minimum Linux 3.5",
        "PIDFD_THREAD    6.9+",
        "verdict",
    ] {
        assert!(text.contains(word), "no {word:?} in:\n{text}");
    }
    assert!(!text.contains('\x1b'), "colour on a pipe:\n{text}");
    let (v, code) = doctor_json();
    assert_eq!(out.status.code(), Some(code));
    assert_eq!(v["usable"], code == 0);
}

/// `server_free_host` says what a scan does: where it says yes, a scan's
/// copies of files skip their mount checks (`copies_on_server_free_host`);
/// where it says no, none do.
#[test]
fn server_free_host_says_what_a_scan_does() {
    let (v, _) = doctor_json();
    let free = v["server_free_host"]["works"].as_bool().unwrap();
    let detail = v["server_free_host"]["detail"].as_str().unwrap();
    assert!(!detail.is_empty(), "{v}");
    // This test process's own files: a scan of it copies them.
    let files: Vec<std::fs::File> = (0..4)
        .map(|_| std::fs::File::open("/proc/self/status").unwrap())
        .collect();
    let me = std::process::id().to_string();
    let out = kcmp()
        .args(["scan", "--pid", &me, "--json"])
        .output()
        .unwrap();
    let scan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let kept = scan["stats"]["copies_on_server_free_host"]
        .as_u64()
        .unwrap();
    assert_eq!(kept > 0, free, "doctor: {detail}; scan: {}", scan["stats"]);
    drop(files);
}

#[test]
fn doctor_leaves_no_child_behind() {
    // As a child subreaper, this test process inherits whatever doctor leaves
    // behind (its `sleep` probes), so only our own children are looked at,
    // never the rest of the host.
    let me = rustix::process::getpid();
    rustix::process::set_child_subreaper(Some(me)).unwrap();
    let out = kcmp().args(["doctor", "--json"]).output().unwrap();
    assert!(out.status.success());
    let orphans: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().to_str()?.to_string();
            name.parse::<i32>().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{name}/stat")).ok()?;
            let comm = &stat[stat.find('(')? + 1..stat.rfind(')')?];
            let mut rest = stat[stat.rfind(')')? + 2..].split_whitespace();
            let state = rest.next()?;
            let ppid: i32 = rest.next()?.parse().ok()?;
            (ppid == me.as_raw_nonzero().get() && comm == "sleep")
                .then(|| format!("{name} ({state})"))
        })
        .collect();
    assert!(
        orphans.is_empty(),
        "doctor left children behind: {orphans:?}"
    );
}
