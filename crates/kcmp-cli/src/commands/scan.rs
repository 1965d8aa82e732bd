//! `kcmp scan`: the sharing map of every process, a tree, or a set.

use crate::cli::ScanArgs;
use crate::output::progress::DelayedProgress;
use crate::output::{scan as render, style::Style};
use crate::{exit, report_error};
use kcmp::Pid;
use kcmp_map::scan::{scan_with_progress, ScanOptions};

/// Runs the scan and prints it; exit 0 unless nothing could be scanned.
pub fn run(args: &ScanArgs) -> i32 {
    // A host with thousands of processes needs a pidfd each: use the hard
    // limit (the library itself never raises it).
    let _ = kcmp_map::raise_fd_limit();
    let to_pids = |v: &[i32]| {
        v.iter()
            .filter_map(|&p| Pid::new(p).ok())
            .collect::<Vec<_>>()
    };
    let options = ScanOptions {
        pids: to_pids(&args.pids),
        trees: to_pids(&args.trees),
        threads: args.threads,
        freeze: args.freeze,
        workers: 0,
        skip_epoll: args.dot,
    };
    let progress = DelayedProgress::stderr();
    let result = scan_with_progress(&options, &|p| progress.update(p));
    progress.finish();
    let map = match result {
        Ok(map) => map,
        Err(e) => return report_error(&e),
    };
    let epolls = &map.epoll;
    if args.json {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
        let _ = render::write_json_with_epoll(&map, args.include_unshared, Some(epolls), &mut out);
        let _ = std::io::Write::flush(&mut out);
        return exit::SAME;
    }
    let text = if args.dot {
        render::dot(&map, args.include_unshared)
    } else {
        let style = Style::stdout();
        let findings = crate::output::epoll::scan_findings(&map, epolls, style);
        render::human_with_findings(&map, args.include_unshared, &findings, style)
    };
    crate::output::write_stdout(&text);
    exit::SAME
}
