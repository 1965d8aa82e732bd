//! `kcmp_map::epoll` against real epoll instances whose registrations are known
//! by construction (the `kcmp-epoll-fixture` binary of kcmp-testkit).

use kcmp::{compare_epoll_target, EpollSlot, FdNum, Pid};
use kcmp_map::epoll::{epoll_targets, registrations, resolve_scan, EpollTarget};
use kcmp_map::scan::{scan, FdRef, ScanOptions};
use kcmp_testkit::epoll::EpollFixture as Fixture;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// The fixture's root as a [`Pid`].
fn root_of(fx: &Fixture) -> Pid {
    Pid::new(fx.root() as i32).unwrap()
}

/// The fd of epoll `name` in the fixture's root, as an [`FdNum`].
fn epfd_of(fx: &Fixture, name: &str) -> FdNum {
    FdNum::new(fx.epfd(name) as i32).unwrap()
}

fn refs(v: &Value) -> Vec<FdRef> {
    let mut out: Vec<FdRef> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|h| FdRef {
            pid: Pid::new(h["pid"].as_i64().unwrap() as i32).unwrap(),
            fd: FdNum::new(h["fd"].as_i64().unwrap() as i32).unwrap(),
        })
        .collect();
    out.sort_unstable();
    out
}

const ERR_HUP: u32 = (libc::EPOLLERR | libc::EPOLLHUP) as u32;

/// (tfd, data, events without ERR|HUP, stale, holders), sorted.
type Row = (i32, u64, u32, bool, Vec<FdRef>);

fn expected_rows(epoll: &Value, viewer: Pid) -> BTreeSet<Row> {
    expected_rows_among(epoll, viewer, &|_| true)
}

/// The expected rows with holders restricted to the processes `keep` accepts.
fn expected_rows_among(epoll: &Value, viewer: Pid, keep: &dyn Fn(&FdRef) -> bool) -> BTreeSet<Row> {
    epoll["registrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let data =
                u64::from_str_radix(r["data"].as_str().unwrap().trim_start_matches("0x"), 16)
                    .unwrap();
            (
                r["tfd"].as_i64().unwrap() as i32,
                data,
                r["events"].as_u64().unwrap() as u32,
                r["stale_in"][viewer.to_string()].as_bool().unwrap(),
                refs(&r["holders"])
                    .into_iter()
                    .filter(|h| keep(h))
                    .collect(),
            )
        })
        .collect()
}

fn actual_rows(targets: &[EpollTarget]) -> BTreeSet<Row> {
    targets
        .iter()
        .map(|t| {
            (
                t.tfd.get(),
                t.data,
                t.events & !ERR_HUP,
                t.stale,
                t.holders.clone(),
            )
        })
        .collect()
}

/// The toffs under each tfd are exactly 0..n.
fn assert_toffs_dense(targets: &[EpollTarget]) {
    let mut by_tfd: BTreeMap<i32, Vec<u32>> = BTreeMap::new();
    for t in targets {
        by_tfd.entry(t.tfd.get()).or_default().push(t.toff);
    }
    for (tfd, mut toffs) in by_tfd {
        toffs.sort_unstable();
        let want: Vec<u32> = (0..toffs.len() as u32).collect();
        assert_eq!(toffs, want, "toffs under tfd {tfd}");
    }
}

#[test]
fn every_epoll_of_the_fixture_matches_the_truth_from_every_holder() {
    let fx = Fixture::spawn(8);
    for epoll in fx.truth()["epolls"].as_array().unwrap() {
        // Every holder of the epoll: the root, and c2 for the inherited one.
        for holder in refs(&epoll["holders"]) {
            let found = epoll_targets(holder.pid, holder.fd).unwrap();
            assert_eq!((found.pid, found.epfd), (holder.pid, holder.fd));
            assert_eq!(
                found.targets.len(),
                epoll["registrations"].as_array().unwrap().len(),
                "{}",
                epoll["name"]
            );
            assert_eq!(
                actual_rows(&found.targets),
                expected_rows(epoll, holder.pid),
                "epoll {} seen from {:?}",
                epoll["name"],
                holder
            );
            assert_toffs_dense(&found.targets);
            for t in &found.targets {
                assert_eq!(t.held(), !t.holders.is_empty());
                // A live tfd is reported exactly when it is open now.
                let open = std::fs::read_link(format!("/proc/{}/fd/{}", holder.pid, t.tfd)).is_ok();
                assert_eq!(t.tfd_now.is_some(), open);
            }
        }
    }
}

#[test]
fn classic_many_pipes_under_one_closed_number_each_toff_is_one_pipe() {
    let k = 40;
    let fx = Fixture::spawn(k);
    let root = root_of(&fx);
    let epfd = epfd_of(&fx, "classic");
    let classic_tfd = fx.truth()["closed_fd"].as_i64().unwrap() as i32;
    let found = epoll_targets(root, epfd).unwrap();
    assert_eq!(found.targets.len(), k);
    let mut seen = BTreeSet::new();
    for t in &found.targets {
        assert_eq!(t.tfd.get(), classic_tfd);
        assert!(t.stale, "the classic number is closed");
        assert_eq!(t.tfd_now, None);
        assert_eq!(t.holders.len(), 1, "each registration is one pipe read end");
        assert!(seen.insert(t.holders[0]), "two toffs resolved to one pipe");
        // The kernel agrees: that holder is the file at (100, toff), and
        // no other registration's holder is.
        let slot = EpollSlot {
            epfd,
            tfd: FdNum::new(classic_tfd).unwrap(),
            toff: t.toff,
        };
        let h = t.holders[0];
        assert!(compare_epoll_target(h.pid, h.fd, root, slot)
            .unwrap()
            .is_equal());
        assert!(t.target.as_deref().unwrap().starts_with("pipe:["));
    }
    assert_eq!(
        actual_rows(&found.targets),
        expected_rows(fx.epoll("classic"), root)
    );
    assert_toffs_dense(&found.targets);
    // Binary search, not a sweep: far fewer kcmp calls than fds × registrations.
    assert!(
        (found.kcmp_calls as usize) < k * 8,
        "{} kcmp calls for {k} registrations",
        found.kcmp_calls
    );
}

#[test]
fn toff_order_is_the_fdinfo_line_order() {
    let fx = Fixture::spawn(16);
    let root = root_of(&fx);
    let epfd = epfd_of(&fx, "classic");
    let regs = registrations(root, epfd).unwrap();
    let truth = fx.epoll("classic")["registrations"].as_array().unwrap();
    for r in &regs {
        // The truth's holder for this line's data must be the kernel's file
        // at this line's (tfd, toff).
        let want = truth
            .iter()
            .find(|t| t["data"] == format!("{:#x}", r.data))
            .expect("every line's data is in the truth");
        let h = refs(&want["holders"])[0];
        let got = compare_epoll_target(h.pid, h.fd, root, r.slot(epfd)).unwrap();
        assert!(
            got.is_equal(),
            "line with data {:#x} is not toff {}",
            r.data,
            r.toff
        );
    }
}

#[test]
fn toff_past_the_end_is_enoent() {
    let k = 5;
    let fx = Fixture::spawn(k);
    let root = root_of(&fx);
    let epfd = epfd_of(&fx, "classic");
    let holder = refs(&fx.epoll("classic")["registrations"][0]["holders"])[0];
    let classic_tfd = fx.truth()["closed_fd"].as_i64().unwrap() as i32;
    let slot = |toff| EpollSlot {
        epfd,
        tfd: FdNum::new(classic_tfd).unwrap(),
        toff,
    };
    assert!(compare_epoll_target(holder.pid, holder.fd, root, slot(k as u32 - 1)).is_ok());
    let err = compare_epoll_target(holder.pid, holder.fd, root, slot(k as u32)).unwrap_err();
    assert_eq!(err.errno_name(), Some("ENOENT"));
    // A number nothing was ever registered under.
    let none = EpollSlot {
        epfd,
        tfd: FdNum::new(99).unwrap(),
        toff: 0,
    };
    let err = compare_epoll_target(holder.pid, holder.fd, root, none).unwrap_err();
    assert_eq!(err.errno_name(), Some("ENOENT"));
}

#[test]
fn bad_epoll_fds_are_ebadf_einval_esrch() {
    let fx = Fixture::spawn(2);
    let root = root_of(&fx);
    let closed = FdNum::new(fx.truth()["closed_fd"].as_i64().unwrap() as i32).unwrap();
    let err = epoll_targets(root, closed).unwrap_err();
    assert_eq!(err.errno_name(), Some("EBADF"), "{err}");
    let eventfd = FdNum::new(fx.truth()["not_epoll_fd"].as_i64().unwrap() as i32).unwrap();
    let err = epoll_targets(root, eventfd).unwrap_err();
    assert_eq!(err.errno_name(), Some("EINVAL"), "{err}");
    assert!(
        err.to_string().contains(&format!(
            "fd {eventfd} of process {root} is not an epoll instance"
        )),
        "{err}"
    );
    let gone = Pid::new(kcmp_testkit::reaped_pid()).unwrap();
    let err = epoll_targets(gone, FdNum::new(0).unwrap()).unwrap_err();
    assert_eq!(err.errno_name(), Some("ESRCH"), "{err}");
}

#[test]
fn scan_epoll_section_matches_the_truth() {
    let fx = Fixture::spawn(6);
    let map = scan(&ScanOptions {
        trees: vec![root_of(&fx)],
        ..ScanOptions::default()
    })
    .unwrap();
    let instances = resolve_scan(&map);
    let truth = fx.truth()["epolls"].as_array().unwrap();
    assert_eq!(
        instances.len(),
        truth.len(),
        "one instance per epoll description"
    );
    for epoll in truth {
        let holders = refs(&epoll["holders"]);
        let first = holders[0];
        let inst = instances
            .iter()
            .find(|i| i.pid == first.pid && i.epfd == first.fd)
            .unwrap_or_else(|| panic!("epoll {} not listed under {first:?}", epoll["name"]));
        assert_eq!(inst.holders, holders, "{}", epoll["name"]);
        assert_eq!(inst.error, None);
        assert_eq!(
            actual_rows(&inst.targets),
            expected_rows(epoll, first.pid),
            "epoll {}",
            epoll["name"]
        );
        assert_toffs_dense(&inst.targets);
    }
    // The inherited epoll is one instance although two processes hold it.
    let inh = refs(&fx.epoll("inherited")["holders"]);
    assert_eq!(inh.len(), 2);
    assert_eq!(instances.iter().filter(|i| i.holders == inh).count(), 1);
}

#[test]
fn scan_of_one_process_restricts_holders_to_it() {
    let fx = Fixture::spawn(3);
    let root = root_of(&fx);
    let map = scan(&ScanOptions {
        pids: vec![root],
        ..ScanOptions::default()
    })
    .unwrap();
    let instances = resolve_scan(&map);
    let truth = fx.truth()["epolls"].as_array().unwrap();
    assert_eq!(instances.len(), truth.len());
    let only_root = |h: &FdRef| h.pid == root;
    for epoll in truth {
        let holders: Vec<FdRef> = refs(&epoll["holders"])
            .into_iter()
            .filter(only_root)
            .collect();
        let inst = instances
            .iter()
            .find(|i| i.holders == holders)
            .unwrap_or_else(|| panic!("epoll {} missing", epoll["name"]));
        assert_eq!((inst.pid, inst.epfd), (holders[0].pid, holders[0].fd));
        assert_eq!(
            actual_rows(&inst.targets),
            expected_rows_among(epoll, root, &only_root),
            "epoll {}",
            epoll["name"]
        );
    }
    // The registrations that only the children hold are unheld in this scan.
    let other = instances
        .iter()
        .find(|i| i.epfd.get() as i64 == refs(&fx.epoll("other")["holders"])[0].fd.get() as i64)
        .unwrap();
    assert!(other.targets.iter().all(|t| !t.held()));
}

#[test]
fn an_epoll_without_registrations_has_no_targets() {
    let fx = Fixture::spawn(1);
    let found = epoll_targets(root_of(&fx), epfd_of(&fx, "empty")).unwrap();
    assert!(found.targets.is_empty());
    assert_eq!(found.kcmp_calls, 0);
}

/// An epoll fd may be locked like any file (flock, fcntl): its fdinfo then
/// shows `lock:` lines before its `tfd:` lines, and its registrations are
/// still read (an adversarial review found them read as none).
#[test]
fn a_locked_epoll_fd_keeps_its_registrations() {
    use rustix::event::epoll;
    use rustix::fs::{fcntl_lock, flock, FlockOperation};
    let me = Pid::this();
    for lock in ["flock", "fcntl"] {
        let ep = epoll::create(epoll::CreateFlags::CLOEXEC).unwrap();
        let (r, w) = rustix::pipe::pipe().unwrap();
        epoll::add(&ep, &r, epoll::EventData::new_u64(1), epoll::EventFlags::IN).unwrap();
        epoll::add(
            &ep,
            &w,
            epoll::EventData::new_u64(2),
            epoll::EventFlags::OUT,
        )
        .unwrap();
        let epfd = FdNum::of(&ep);
        let before = registrations(me, epfd).unwrap();
        assert_eq!(before.len(), 2);
        match lock {
            "flock" => flock(&ep, FlockOperation::NonBlockingLockExclusive).unwrap(),
            _ => fcntl_lock(&ep, FlockOperation::NonBlockingLockExclusive).unwrap(),
        }
        let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{epfd}")).unwrap();
        assert!(text.contains("lock:"), "{lock}: no lock shown:\n{text}");
        let locked = registrations(me, epfd).unwrap();
        assert_eq!(locked, before, "{lock}:\n{text}");
        let found = epoll_targets(me, epfd).unwrap();
        assert_eq!(found.targets.len(), 2, "{lock}");
    }
}

/// Real fdinfo texts of other kinds of files (a memfd named like a `tfd:`
/// line among them) give the kernel's own header lines and no
/// registrations.
#[test]
fn fdinfo_of_other_kinds_has_its_header_and_no_registrations() {
    use rustix::fd::OwnedFd;
    use rustix::fs::{statx, AtFlags, MemfdFlags, StatxFlags};
    use rustix::net::{socket, AddressFamily, SocketType};
    let memfd =
        rustix::fs::memfd_create("x\ntfd: 1 events: 19 data: 1", MemfdFlags::CLOEXEC).unwrap();
    rustix::io::write(&memfd, b"hello").unwrap();
    let files: Vec<(&str, OwnedFd)> = vec![
        (
            "eventfd",
            rustix::event::eventfd(3, rustix::event::EventfdFlags::CLOEXEC).unwrap(),
        ),
        ("memfd", memfd),
        (
            "pidfd",
            rustix::process::pidfd_open(
                rustix::process::getpid(),
                rustix::process::PidfdFlags::empty(),
            )
            .unwrap(),
        ),
        (
            "unix socket",
            socket(AddressFamily::UNIX, SocketType::STREAM, None).unwrap(),
        ),
        (
            "inotify",
            rustix::fs::inotify::init(rustix::fs::inotify::CreateFlags::CLOEXEC).unwrap(),
        ),
    ];
    for (what, fd) in &files {
        let n = FdNum::of(fd);
        let info = kcmp_map::procfs::read_fdinfo(Pid::this(), n).unwrap();
        let st = statx(
            fd,
            "",
            AtFlags::EMPTY_PATH,
            StatxFlags::INO | StatxFlags::MNT_ID,
        )
        .unwrap();
        assert_eq!(
            (info.ino, info.mnt_id),
            (st.stx_ino, st.stx_mnt_id),
            "{what}"
        );
        assert!(info.epoll_registrations.is_empty(), "{what}");
        let access = rustix::fs::fcntl_getfl(fd).unwrap().bits() & libc::O_ACCMODE as u32;
        assert_eq!(info.access_mode(), access, "{what}");
    }
}
