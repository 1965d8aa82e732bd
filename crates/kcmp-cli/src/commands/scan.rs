//! `kcmp scan`: the sharing map of every process, a tree, or a set.

use crate::cli::ScanArgs;
use crate::output::progress::DelayedProgress;
use crate::output::scan::{self as render, View};
use crate::output::sink::Sink;
use crate::output::style::Style;
use crate::{exit, report_error};
use kcmp::Pid;
use kcmp_map::scan::{scan_with_progress, ScanOptions};

/// Runs the scan and prints it; exit 0 unless nothing could be scanned.
pub fn run(args: &ScanArgs) -> i32 {
    let map = match scan_selected(&args.pids, &args.trees, args.threads, args.freeze, args.dot) {
        Ok(map) => map,
        Err(status) => return status,
    };
    let view = View::new(&map, args.include_unshared, &args.filters());
    let mut sink = Sink::stdout();
    if args.json {
        crate::output::scan_json::write_json(&view, true, &mut sink);
    } else if args.json_lines {
        crate::output::scan_json::write_json_lines(&view, true, &mut sink);
    } else if args.dot {
        sink.text(&crate::output::dot::dot(&view));
    } else {
        let style = Style::stdout();
        let findings = crate::output::epoll::scan_findings(&map, &view.epolls, style);
        sink.text(&render::human(&view, args.long, &findings, style));
    }
    sink.flush();
    if !(args.json || args.json_lines) {
        for n in render::notes(&map, Style::plain()) {
            eprintln!("kcmp: {n}");
        }
    } else if let Some(n) = crate::output::not_frozen_note(&map.not_frozen) {
        eprintln!("kcmp: {n}");
    }
    // The process exits next: freeing a host's worth of small allocations
    // one by one would cost milliseconds (5 ms at 75,000 fds).
    std::mem::forget(view);
    std::mem::forget(map);
    exit::SAME
}

/// The scan of `--pid`/`--tree` as the commands run it (scan, audit): the
/// soft fd limit raised to the hard one (a host with thousands of processes
/// needs a pidfd each; the library never raises it), a progress bar for
/// long scans, and an error naming the missing pid as the exit status.
pub fn scan_selected(
    pids: &[i32],
    trees: &[i32],
    threads: bool,
    freeze: bool,
    skip_epoll: bool,
) -> Result<kcmp_map::SharingMap, i32> {
    let _ = kcmp_map::raise_fd_limit();
    let to_pids = |v: &[i32]| {
        v.iter()
            .filter_map(|&p| Pid::new(p).ok())
            .collect::<Vec<_>>()
    };
    let options = ScanOptions {
        pids: to_pids(pids),
        trees: to_pids(trees),
        threads,
        freeze,
        workers: 0,
        skip_epoll,
        all_free_fds: true, // this program owns its fd table (raised above)
        // Every copy checked as on a host with FUSE (benchmarks of that path).
        check_every_copy: std::env::var_os("KCMP_CHECK_EVERY_COPY").is_some(),
    };
    let progress = DelayedProgress::stderr();
    let result = scan_with_progress(&options, &|p| progress.update(p));
    progress.finish();
    result.map_err(|e| {
        let asked: Vec<Pid> = options.pids.iter().chain(&options.trees).copied().collect();
        report_error(&crate::commands::explain::error(e, &asked))
    })
}
