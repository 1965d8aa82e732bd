//! Resolving epoll registrations: `epoll_targets` on the whole host and
//! `resolve_scan` on a scan of the fixture's tree, for K stale pipe
//! registrations under one closed fd number (`kcmp-epoll-fixture K`).
//!
//! Run: `cargo build --release --workspace && cargo bench -p kcmp --bench epoll`
//! (the fixture binary must sit next to the bench's target directory).
//! Before measuring, the kcmp calls per registration are printed on stderr.

use kcmp::epoll::{epoll_targets, resolve_scan};
use kcmp::scan::{scan, ScanOptions};
use kcmp::{Fd, Pid};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

const SIZES: [usize; 3] = [16, 128, 400];

/// A running fixture; killed (its children die with it) on drop.
struct Fixture {
    child: Child,
    root: Pid,
    truth: Value,
}

impl Fixture {
    fn spawn(k: usize) -> Fixture {
        let bin = kcmp_testkit::workspace_bin("kcmp-epoll-fixture");
        let mut child = Command::new(bin)
            .arg(k.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn kcmp-epoll-fixture");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("truth line");
        let truth: Value = serde_json::from_str(&line).expect("truth JSON");
        let root = Pid::new(truth["root"].as_i64().unwrap() as i32).unwrap();
        Fixture { child, root, truth }
    }

    fn epfd(&self, name: &str) -> Fd {
        let e = self.truth["epolls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap();
        Fd::new(e["holders"][0]["fd"].as_i64().unwrap() as i32).unwrap()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
