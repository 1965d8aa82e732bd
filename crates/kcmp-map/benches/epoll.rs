//! Resolving epoll registrations: `epoll_targets` on the whole host and
//! `resolve_scan` on a scan of the fixture's tree, for K stale pipe
//! registrations under one closed fd number (`kcmp-epoll-fixture K`).
//!
//! Run: `cargo build --release --workspace && cargo bench -p kcmp --bench epoll`
//! (the fixture binary must sit next to the bench's target directory).
//! Before measuring, the kcmp calls per registration are printed on stderr.

use kcmp::{FdNum, Pid};
use kcmp_map::epoll::{epoll_targets, resolve_scan};
use kcmp_map::scan::{scan, ScanOptions};
use kcmp_testkit::epoll::EpollFixture;

const SIZES: [usize; 3] = [16, 128, 400];

/// A running fixture (ended on drop) with its root and the epoll fds.
struct Fixture {
    inner: EpollFixture,
    root: Pid,
}

impl Fixture {
    fn spawn(k: usize) -> Fixture {
        let inner = EpollFixture::spawn(k);
        let root = Pid::new(inner.root() as i32).unwrap();
        Fixture { inner, root }
    }

    /// The fd of epoll `name` in the root.
    fn epfd(&self, name: &str) -> FdNum {
        FdNum::new(self.inner.epfd(name) as i32).unwrap()
    }
}

fn main() {
    for k in SIZES {
        let fx = Fixture::spawn(k);
        let found = epoll_targets(fx.root, fx.epfd("classic")).unwrap();
        eprintln!(
            "epoll_targets, {k} registrations: {} kcmp calls ({:.2} per registration)",
            found.kcmp_calls,
            found.kcmp_calls as f64 / k as f64
        );
    }
    divan::main();
}

/// The whole host is listed; only fds with a registration's inode are compared.
#[divan::bench(args = SIZES, sample_count = 30)]
fn epoll_targets_classic(b: divan::Bencher, k: usize) {
    let fx = Fixture::spawn(k);
    let epfd = fx.epfd("classic");
    b.bench_local(|| epoll_targets(fx.root, epfd).unwrap());
}

/// The scan's epoll section for the fixture's tree (the scan itself is not measured).
#[divan::bench(args = SIZES, sample_count = 30)]
fn resolve_scan_tree(b: divan::Bencher, k: usize) {
    let fx = Fixture::spawn(k);
    let map = scan(&ScanOptions {
        trees: vec![fx.root],
        ..ScanOptions::default()
    })
    .unwrap();
    b.bench_local(|| resolve_scan(&map));
}
