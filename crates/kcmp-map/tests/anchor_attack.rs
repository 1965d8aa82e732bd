//! Attacks on the scan's anchors (its own `pidfd_getfd` copies of the
//! descriptions it groups), with a fixture holding every fd kind this host
//! can create (`kcmp-anchor-zoo`): repeated scans leak no fd, group exactly,
//! anchor what they can, and never release or outlive a lock.
//!
//! The tests that count this process's fds or take locks in it run one at a
//! time ([`SERIAL`]).

use kcmp::{FdNum, Pid};
use kcmp_map::{scan, ScanOptions, SharingMap};
use kcmp_testkit::process::{close_and_reap, JsonFixture, TempDir};
use rustix::fd::{AsFd, AsRawFd};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::process::{Command, Stdio};
use std::sync::mpsc::TryRecvError;
use std::sync::Mutex;
use std::time::Duration;

static SERIAL: Mutex<()> = Mutex::new(());

/// One description by construction: its (pid, fd) holders.
type Description = Vec<(Pid, FdNum)>;

/// A kind of fd and its descriptions.
type Kind = (String, Vec<Description>);

/// A truth fd: its kind, its description's index there, itself, and the
/// members of the map's description holding it.
type Found<'m> = (String, usize, (Pid, FdNum), Option<&'m [kcmp_map::FdRef]>);

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running `kcmp-anchor-zoo`; dropping it ends it and its children.
/// A running `kcmp-anchor-zoo` (ended, then its directory removed, when
/// dropped: fields drop in order).
struct Zoo {
    running: JsonFixture,
    _dir: TempDir,
}

impl Zoo {
    fn spawn(tag: &str, kinds: &[&str]) -> Zoo {
        let dir = TempDir::new(&format!("kcmp-zoo-{tag}"));
        let mut command = Command::new(kcmp_testkit::workspace_bin("kcmp-anchor-zoo"));
        command.arg(dir.path()).args(kinds);
        let running = JsonFixture::start(&mut command, Duration::from_secs(30));
        assert!(running.json.is_object(), "kcmp-anchor-zoo gave no truth");
        Zoo { running, _dir: dir }
    }

    fn root(&self) -> Pid {
        Pid::new(self.running.json["root"].as_i64().unwrap() as i32).unwrap()
    }

    /// Each built kind with its descriptions (lists of (pid, fd)).
    fn kinds(&self) -> Vec<Kind> {
        let fd = |p: &Value| {
            let pid = Pid::new(p[0].as_i64().unwrap() as i32).unwrap();
            (pid, FdNum::new(p[1].as_i64().unwrap() as i32).unwrap())
        };
        let kinds = self.running.json["kinds"].as_array().unwrap();
        kinds
            .iter()
            .map(|k| {
                let descs = k["descriptions"].as_array().unwrap();
                let descs = descs
                    .iter()
                    .map(|d| d.as_array().unwrap().iter().map(fd).collect())
                    .collect();
                (k["kind"].as_str().unwrap().to_string(), descs)
            })
            .collect()
    }

    fn skipped(&self) -> Vec<String> {
        let skipped = self.running.json["skipped"].as_array().unwrap();
        skipped.iter().map(|s| s.to_string()).collect()
    }

    /// A scan of the zoo that checks every copy's mount (the checked path,
    /// also where the host is server-free).
    fn scan(&self) -> SharingMap {
        self.scan_checking(true)
    }

    /// A scan of the zoo; without `check_every_copy`, copies skip their
    /// mount checks where the host is server-free.
    fn scan_checking(&self, check_every_copy: bool) -> SharingMap {
        scan(&ScanOptions {
            trees: vec![self.root()],
            skip_epoll: true,
            check_every_copy,
            ..ScanOptions::default()
        })
        .expect("scan")
    }
}

fn own_fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Every truth fd is in the map, and two truth fds share a description in
/// the map exactly when they do by construction. Returns the mismatches.
fn grouping_errors(map: &SharingMap, kinds: &[Kind]) -> Vec<String> {
    let mut errors = Vec::new();
    let mut found: Vec<Found<'_>> = Vec::new();
    for (kind, descs) in kinds {
        for (i, d) in descs.iter().enumerate() {
            for &(pid, fd) in d {
                let members = map.description_of(pid, fd).map(|d| &d.members[..]);
                if members.is_none() {
                    errors.push(format!("{kind}: {pid}/{fd} not in the map"));
                }
                found.push((kind.clone(), i, (pid, fd), members));
            }
        }
    }
    for a in &found {
        for b in &found {
            let truth = a.0 == b.0 && a.1 == b.1;
            let seen = a.3.is_some() && a.3 == b.3;
            if truth != seen && a.3.is_some() && b.3.is_some() {
                errors.push(format!(
                    "{}: {:?} and {}: {:?}: shared by construction {truth}, in the map {seen}",
                    a.0, a.2, b.0, b.2
                ));
            }
        }
    }
    errors
}

/// Point 1 and 2: a process with every fd kind this host allows, scanned 30
/// times in this process: this process's fd count never grows (no anchor
/// is leaked, none is left open by a failed post-check), and every scan
/// groups every fd exactly as built (dups share, separate opens do not,
/// memfds passed over `SCM_RIGHTS` are one description in two processes,
/// memfds of one name in four processes are eight descriptions).
#[test]
fn every_fd_kind_scanned_thirty_times_leaks_nothing_and_groups_exactly() {
    let _one = serial();
    let zoo = Zoo::spawn("all", &["all"]);
    let kinds = zoo.kinds();
    eprintln!("kinds not built here: {:?}", zoo.skipped());
    assert!(kinds.len() >= 30, "built only {} kinds", kinds.len());
    let before = own_fd_count();
    for round in 0..30 {
        // Both paths: every copy checked, and (on a server-free host) none.
        let map = zoo.scan_checking(round % 2 == 0);
        let errors = grouping_errors(&map, &kinds);
        assert!(errors.is_empty(), "scan {round}: {errors:#?}");
        let now = own_fd_count();
        assert_eq!(now, before, "scan {round}: this process's fds grew");
        if round == 0 {
            // nsfs and memfd_secret (see the test below).
            let unanchored = map.stats.descriptions_without_anchor;
            eprintln!("descriptions without anchor, all kinds: {unanchored}");
        }
    }
}

/// Which kinds a scan takes no copy of (`stats.descriptions_without_anchor`
/// of a scan of that kind alone): only those whose close could wait on a
/// server are left without one, and those are listed here exactly.
#[test]
fn only_known_kinds_go_without_anchor() {
    let _one = serial();
    let all = Zoo::spawn("list", &["all"]);
    let names: Vec<String> = all.kinds().into_iter().map(|k| k.0).collect();
    drop(all);
    let mut unanchored = BTreeSet::new();
    let mut counts = HashMap::new();
    for name in &names {
        let zoo = Zoo::spawn("one", &[name]);
        let map = zoo.scan();
        assert!(grouping_errors(&map, &zoo.kinds()).is_empty(), "{name}");
        let n = map.stats.descriptions_without_anchor;
        counts.insert(name.clone(), n);
        if n > 0 {
            unanchored.insert(name.clone());
        }
    }
    eprintln!("descriptions without anchor by kind: {counts:?}");
    // memfd_secret (`/secretmem`) lives on an internal mount the engine
    // does not learn (it probes shmem, hugetlbfs, anon_inodefs, pidfs and
    // nsfs with files of its own).
    let expected: BTreeSet<String> = ["memfd-secret"]
        .iter()
        .map(|s| s.to_string())
        .filter(|s| names.contains(s))
        .collect();
    assert_eq!(unanchored, expected);
}

/// The lock lines of /proc/locks on inode `ino`, as (kind, pid) pairs.
fn locks_on(ino: u64) -> Vec<(String, String)> {
    let text = std::fs::read_to_string("/proc/locks").expect("read /proc/locks");
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().filter(|w| *w != "->").collect();
            let on = f.get(5)?.rsplit(':').next()?.parse::<u64>().ok()? == ino;
            on.then(|| (f[1].to_string(), f[4].to_string()))
        })
        .collect()
}

fn holds_posix_lock_on(ino: u64) -> bool {
    let me = std::process::id().to_string();
    locks_on(ino).iter().any(|(k, p)| k == "POSIX" && *p == me)
}

fn inode(fd: &impl rustix::fd::AsFd) -> u64 {
    rustix::fs::fstat(fd).unwrap().st_ino
}

fn open_rw(path: &std::path::Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap()
}

/// Point 3: this process holds a POSIX lock on a file, a memfd, and a file
/// another process holds only through `O_PATH`; the scanned process holds
/// two descriptions of each (each twice). The locks survive, the grouping
/// is exact, and exactly those six descriptions go without anchor (a copy
/// of them, closed, would release the lock).
#[test]
fn the_callers_posix_locks_survive_and_their_files_group_exactly() {
    let _one = serial();
    callers_posix_locks_survive(0);
}

/// [`the_callers_posix_locks_survive_and_their_files_group_exactly`] with
/// this process holding 300 more fds: the engine then reads its locks from
/// /proc/locks rather than from each fd's fdinfo.
#[test]
fn the_callers_posix_locks_survive_with_many_fds_of_its_own() {
    let _one = serial();
    callers_posix_locks_survive(300);
}

fn callers_posix_locks_survive(extra_fds: usize) {
    let extra: Vec<rustix::fd::OwnedFd> = (0..extra_fds)
        .map(|_| rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC).unwrap())
        .collect();
    let tmp = TempDir::new(&format!("kcmp-attack-locks-{extra_fds}"));
    let dir = tmp.path();
    let (file_path, opath_path) = (dir.join("locked"), dir.join("locked-opath"));
    let file = open_rw(&file_path);
    let opath_file = open_rw(&opath_path);
    let memfd = rustix::fs::memfd_create("kcmp-attack-locked", rustix::fs::MemfdFlags::CLOEXEC)
        .expect("memfd_create");
    let locked = [inode(&file), inode(&opath_file), inode(&memfd)];
    for fd in [file.as_fd(), opath_file.as_fd(), memfd.as_fd()] {
        rustix::fs::fcntl_lock(fd, rustix::fs::FlockOperation::NonBlockingLockExclusive)
            .expect("F_SETLK");
    }
    let memfd_path = format!("/proc/{}/fd/{}", std::process::id(), memfd.as_raw_fd());
    let zoo = Zoo::spawn(
        "locks",
        &[
            &format!("open:{}", file_path.display()),
            &format!("opath:{}", opath_path.display()),
            &format!("open:{memfd_path}"),
        ],
    );
    let map = zoo.scan();
    for ino in locked {
        assert!(holds_posix_lock_on(ino), "the scan released a lock");
    }
    assert!(grouping_errors(&map, &zoo.kinds()).is_empty());
    assert_eq!(map.stats.descriptions_without_anchor, 6);
    drop(zoo);
    drop(extra);
}

/// Point 3: OFD locks, flock locks and POSIX locks held by the *scanned*
/// process, and an flock held by this process, prevent no copy (closing a
/// copy releases only this process's POSIX locks): every description is
/// anchored, and every lock survives the scan.
#[test]
fn other_locks_do_not_prevent_anchors_and_survive() {
    let _one = serial();
    let tmp = TempDir::new("kcmp-attack-other");
    let dir = tmp.path();
    let (a, b, c) = (dir.join("posix"), dir.join("ofd"), dir.join("flock"));
    let files: Vec<std::fs::File> = [&a, &b, &c].iter().map(|p| open_rw(p)).collect();
    let inodes: Vec<u64> = files.iter().map(inode).collect();
    // This process's own flock on the flock-ed file (shared, as the zoo's).
    rustix::fs::flock(&files[2], rustix::fs::FlockOperation::NonBlockingLockShared).unwrap();
    let zoo = Zoo::spawn(
        "other",
        &[
            &format!("posix:{}", a.display()),
            &format!("ofd:{}", b.display()),
            &format!("flock:{}", c.display()),
        ],
    );
    let before: Vec<usize> = inodes.iter().map(|&i| locks_on(i).len()).collect();
    assert_eq!(before, [1, 2, 3], "the zoo's locks (and ours) are in place");
    let map = zoo.scan();
    let after: Vec<usize> = inodes.iter().map(|&i| locks_on(i).len()).collect();
    assert_eq!(after, before, "a lock was released by the scan");
    assert!(grouping_errors(&map, &zoo.kinds()).is_empty());
    assert_eq!(map.stats.descriptions_without_anchor, 0);
    drop(zoo);
}

/// A POSIX lock this process takes *during* a scan (another thread of a
/// library caller: SQLite takes them all the time) survives it. The engine
/// reads this process's locks once, before it lists any fd
/// (`OwnLocks::read_among` in `pipeline::run`), so it copies the scanned
/// process's descriptions of the file locked since; closing such a copy
/// would release the lock, so the closer asks the kernel first
/// (`F_OFD_GETLK`) and leaves a locked file's copy open (it failed before).
/// Made deterministic with the progress callback (phase 0, listing), which
/// runs after the locks were read and before any copy is taken.
#[test]
fn a_posix_lock_taken_during_the_scan_survives_it() {
    let _one = serial();
    let tmp = TempDir::new("kcmp-attack-midlock");
    let dir = tmp.path();
    let path = dir.join("locked-later");
    let ino = inode(&open_rw(&path));
    let zoo = Zoo::spawn("midlock", &[&format!("open:{}", path.display())]);
    let taken: Mutex<Option<std::fs::File>> = Mutex::new(None);
    let take_lock = |p: kcmp_map::scan::ScanProgress| {
        let mut taken = taken.lock().unwrap();
        if p.phase == 0 && taken.is_none() {
            let file = open_rw(&path);
            rustix::fs::fcntl_lock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
                .expect("F_SETLK");
            *taken = Some(file);
        }
    };
    let options = ScanOptions {
        trees: vec![zoo.root()],
        skip_epoll: true,
        ..ScanOptions::default()
    };
    let map = kcmp_map::scan::scan_with_progress(&options, &take_lock).expect("scan");
    assert!(taken.lock().unwrap().is_some(), "the lock was taken");
    assert!(grouping_errors(&map, &zoo.kinds()).is_empty());
    let held = holds_posix_lock_on(ino);
    drop(zoo);
    assert!(
        held,
        "the scan released a POSIX lock this process took meanwhile"
    );
}

/// A TCP connection whose send queue is full (the peer, returned, never
/// reads) and whose `SO_LINGER` is an hour: the last close of it waits
/// until the peer has acknowledged everything, or the hour is over.
fn lingering_tcp() -> (std::net::TcpStream, std::net::TcpStream) {
    use rustix::net::sockopt;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    sockopt::set_socket_recv_buffer_size(&listener, 4096).unwrap();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    sockopt::set_socket_send_buffer_size(&client, 4096).unwrap();
    client.set_nonblocking(true).unwrap();
    let chunk = [7u8; 4096];
    while std::io::Write::write(&mut &client, &chunk).is_ok() {}
    sockopt::set_socket_linger(&client, Some(Duration::from_secs(3600))).unwrap();
    (client, server)
}

/// The kernel stacks of this process's threads that mention `word`
/// (/proc/self/task/TID/stack, readable by root), for the evidence.
fn kernel_stacks_with(word: &str) -> Vec<String> {
    let tasks = std::fs::read_dir("/proc/self/task").unwrap();
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("stack")).ok())
        .filter(|s| s.contains(word))
        .collect()
}

/// Tells its channel's receiver, by being dropped (the sender
/// disconnects), that the thread holding it is done.
struct Told(#[allow(dead_code)] std::sync::mpsc::Sender<()>);

/// One self-scan while a watcher thread closes every fd of the lingering
/// socket `client` as soon as the engine's copy of it appears: the copy is
/// then the last reference. Returns whether the copy was seen, and whether
/// the scan returned before `server` was drained (which ends the wait).
fn scan_while_closing_the_holder(dups: usize) -> (bool, bool) {
    let (client, server) = lingering_tcp();
    let ino = inode(&client);
    let text = format!("socket:[{ino}]");
    let mut ours: Vec<rustix::fd::OwnedFd> = vec![client.into()];
    for _ in 1..dups {
        ours.push(rustix::io::fcntl_dupfd_cloexec(&ours[0], 0).unwrap());
    }
    let mine: std::collections::HashSet<i32> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    let top = mine.iter().copied().max().unwrap() + 512;
    let done = std::sync::atomic::AtomicBool::new(false);
    let (tx, rx) = std::sync::mpsc::channel();
    let (watched_tx, watched) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            let _told = Told(watched_tx);
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let copy = (0..top).filter(|n| !mine.contains(n)).any(|n| {
                    std::fs::read_link(format!("/proc/self/fd/{n}"))
                        .is_ok_and(|l| l.to_string_lossy() == text)
                });
                if copy {
                    drop(std::mem::take(&mut ours));
                    return true;
                }
            }
            false
        });
        s.spawn(move || {
            let map = scan(&ScanOptions {
                pids: vec![Pid::this()],
                skip_epoll: true,
                workers: 1,
                ..ScanOptions::default()
            });
            let _ = tx.send(map.is_ok());
        });
        let returned = rx.recv_timeout(Duration::from_secs(15)).is_ok();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        if !returned {
            eprintln!("blocked in: {:?}", kernel_stacks_with("close"));
        }
        // Whoever closes last waits in close(): the scan (its copy), or the
        // watcher, when the engine closed its copy before the watcher's last
        // fd (then this round proves nothing, and must not wait an hour).
        // Let the peer read until both are done, which ends the wait.
        server
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut scanned = returned;
        let mut watcher_done = false;
        while !(scanned && watcher_done) {
            scanned = scanned || rx.try_recv().is_ok();
            watcher_done = watcher_done
                || watched
                    .try_recv()
                    .is_err_and(|e| e == TryRecvError::Disconnected);
            if !(scanned && watcher_done) {
                let _ = std::io::Read::read(&mut &server, &mut buf);
            }
        }
        (watcher.join().unwrap(), returned)
    })
}

/// Never hang: an anchor can end up as the *last*
/// reference to its description, when every holder closes its fds (or
/// exits) while the engine holds its copy; closing the copy then runs the
/// file's `release`, and a TCP socket with `SO_LINGER` and unacknowledged
/// data waits there for up to its linger time (here an hour) for a peer
/// that does not read. The engine copies sockets unconditionally
/// (`FdTarget::may_flush` is false for them, `closes_safely` passes
/// `S_IFSOCK`); copies are closed on the closer thread
/// (`pipeline::closer`), so the scan returns (before, it closed them in
/// `Budget::release` and waited). Made deterministic with a self-scan: a watcher
/// thread closes this process's 5,000 fds of the socket as soon as the
/// engine's copy appears.
#[test]
fn an_anchor_left_last_never_waits_for_so_linger() {
    let _one = serial();
    for _ in 0..5 {
        let (seen, returned) = scan_while_closing_the_holder(5000);
        if seen {
            assert!(
                returned,
                "the scan waited in the last close of a lingering socket"
            );
            return;
        }
    }
    panic!("the engine's copy of the socket was never seen: inconclusive");
}

/// Never hang: the mount check must not trust a mount table read
/// once per scan and namespace (`Budget::mount_table`): a mount id
/// names a mount only while it lives: the kernel hands the lowest free id
/// to the next mount. A process (`kcmp-mount-swap`, in a mount namespace of
/// its own) unmounts a tmpfs after the engine read its table and mounts,
/// with the same id, a filesystem the engine does not know as local
/// (`fusectl` here; a FUSE or NFS mount takes the same path), and moves two
/// listed fds there. Before, the check found the id as tmpfs in the stale
/// table and the copies were kept as anchors and closed, as a FUSE file's
/// would be (whose `flush` waits for its server). Now the table is watched
/// (`poll` on `/proc/PID/mountinfo`) and read again when the namespace's
/// mounts change: the copies are refused, as by the control scan after
/// the swap. Made deterministic with the progress
/// callback (one worker: grouping the 256th bucket, the moved fds' bucket,
/// after the first bucket read the table).
#[test]
fn a_mount_id_reused_during_the_scan_is_not_trusted() {
    let (answer, truth, during, after) = swap_during_scan(&[]);
    assert_eq!(answer, format!("swapped {}", truth["mnt_id"]));
    // The control: with a fresh table the two fusectl descriptions go
    // without anchor.
    assert_eq!(after.descriptions_without_anchor, 2, "control: refused");
    assert_eq!(
        during.descriptions_without_anchor, 2,
        "copies of fds on a mount of unknown type were taken and closed"
    );
}

/// Never hang: for an fd listed as a pipe, socket or anonymous inode, the
/// check of the copy took any mount in no mount table for an internal one
/// (anon_inodefs, pidfs) and kept the copy. But a file on a *detached* mount
/// (`umount -l` of a FUSE mount a process still uses), or on a mount of
/// another namespace (inherited before `unshare(CLONE_NEWNS)`, or received
/// over `SCM_RIGHTS`), is in no table either: an fd listed as
/// `anon_inode:[eventfd]` and switched (`dup2`) onto such a file before the
/// copy was kept and closed, flushing a file of a mount of unknown type.
/// Now only the internal mounts the engine learned from files of its own
/// count: the copy fails the check and is left open (two descriptions
/// without anchor, as the control scan of the same fds, listed by path,
/// shows).
#[test]
fn a_copy_switched_onto_a_detached_mount_is_not_kept() {
    let (answer, _, during, after) = swap_during_scan(&["detach"]);
    assert!(answer.starts_with("detached"), "{answer}");
    assert_eq!(after.descriptions_without_anchor, 2, "control: refused");
    assert_eq!(
        during.descriptions_without_anchor, 2,
        "copies of fds on a detached fusectl mount were taken and closed"
    );
}

/// The guard the two tests above get around, when nothing moves during the
/// scan: fds on a mount of a type the engine does not know as local
/// (fusectl), and on a detached mount (in no table), are never copied.
#[test]
fn unknown_and_detached_mounts_are_never_copied() {
    for mode in [&[][..], &["detach"][..]] {
        let (_, _, _, after) = swap_during_scan(mode);
        assert_eq!(after.descriptions_without_anchor, 2, "{mode:?}");
    }
}

/// Runs `kcmp-mount-swap DIR ARGS`, scans it with one worker and has it
/// `swap` just before the 256th bucket (its `fds`) is grouped, then scans
/// it again. Returns its answer, its truth and the two scans' stats.
fn swap_during_scan(
    args: &[&str],
) -> (
    String,
    Value,
    kcmp_map::scan::ScanStats,
    kcmp_map::scan::ScanStats,
) {
    use std::io::{BufRead, Write};
    let _one = serial();
    let tmp = TempDir::new("kcmp-attack-mntid");
    let dir = tmp.path();
    let mut child = Command::new(kcmp_testkit::workspace_bin("kcmp-mount-swap"))
        .arg(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn kcmp-mount-swap");
    let stdin = Mutex::new(child.stdin.take());
    let out = Mutex::new(std::io::BufReader::new(child.stdout.take().unwrap()));
    let mut line = String::new();
    out.lock().unwrap().read_line(&mut line).unwrap();
    let truth: Value = serde_json::from_str(&line).expect("kcmp-mount-swap truth");
    let pid = Pid::new(truth["root"].as_i64().unwrap() as i32).unwrap();
    let answer = Mutex::new(String::new());
    let swap = |p: kcmp_map::scan::ScanProgress| {
        if p.phase == 1 && p.done == 256 {
            let mut stdin = stdin.lock().unwrap();
            writeln!(stdin.as_mut().unwrap(), "swap").unwrap();
            out.lock()
                .unwrap()
                .read_line(&mut answer.lock().unwrap())
                .unwrap();
        }
    };
    // The checked path, also where the host is server-free (where a
    // mount type not known as local may be copied).
    let options = ScanOptions {
        pids: vec![pid],
        skip_epoll: true,
        workers: 1,
        check_every_copy: true,
        ..ScanOptions::default()
    };
    let during = kcmp_map::scan::scan_with_progress(&options, &swap).map(|m| m.stats);
    let after = scan(&options).map(|m| m.stats);
    let answer = answer.lock().unwrap().trim().to_string();
    close_and_reap(
        &mut child,
        stdin.lock().unwrap().take(),
        Duration::from_secs(30),
    );
    (answer, truth, during.expect("scan"), after.expect("scan"))
}
