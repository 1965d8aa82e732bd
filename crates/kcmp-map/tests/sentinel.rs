//! The sentinels and the freezer are forks of the caller without exec, and
//! keep none of the caller's fds (issue 10: no program found by name).

use kcmp::Pid;
use kcmp_map::sentinel::Sentinels;

fn fds_of(pid: Pid) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn sentinels_are_forks_that_keep_no_inherited_fd() {
    // An fd without close-on-exec: a fork would inherit it.
    let f = std::fs::File::open("/dev/null").unwrap();
    let raw = std::os::fd::AsRawFd::as_raw_fd(&f);
    rustix::io::fcntl_setfd(&f, rustix::io::FdFlags::empty()).unwrap();
    let s = Sentinels::start().unwrap();
    let me = std::fs::read_link("/proc/self/exe").unwrap();
    for p in s.live_pids() {
        assert_eq!(
            fds_of(p),
            vec!["0".to_string()],
            "sentinel {p} (fd {raw} leaked?)"
        );
        let exe = std::fs::read_link(format!("/proc/{p}/exe")).unwrap();
        assert_eq!(exe, me, "sentinel {p} exec'd something");
    }
    let z = s.zombie_pid().expect("a zombie sentinel");
    let stat = std::fs::read_to_string(format!("/proc/{z}/stat")).unwrap();
    assert!(stat.contains(") Z "), "{stat}");
    drop(f);
}

#[test]
fn the_freezer_is_a_fork_that_keeps_only_its_sockets_and_lock() {
    let kid = kcmp_map::sentinel::Idle::spawn().unwrap();
    let set = kcmp_map::freeze::freeze(&[Pid::new(kid.id() as i32).unwrap()]).unwrap();
    assert_eq!(set.frozen().len(), 1, "{:?}", set.not_frozen());
    let me = std::process::id().to_string();
    let freezer = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .find(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            let ppid = stat
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().nth(1));
            stat.contains("(kcmp-freezer)") && ppid == Some(me.as_str())
        })
        .expect("a kcmp-freezer child");
    let fds = fds_of(Pid::new(freezer).unwrap());
    // The socket, the lock, the acknowledgement socket: nothing else.
    assert_eq!(fds, ["0", "1", "2"], "the freezer keeps {fds:?}");
    let exe = std::fs::read_link(format!("/proc/{freezer}/exe")).unwrap();
    assert_eq!(exe, std::fs::read_link("/proc/self/exe").unwrap());
    // Its own process group: Ctrl-Z on the terminal does not reach it.
    let stat = std::fs::read_to_string(format!("/proc/{freezer}/stat")).unwrap();
    let pgrp = stat.rsplit(')').next().unwrap().split_whitespace().nth(2);
    assert_eq!(pgrp, Some(freezer.to_string().as_str()));
    set.thaw().unwrap();
}
