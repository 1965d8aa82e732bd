//! The baseline for the scan benchmark: a bare, single-threaded walk of the
//! given processes — list /proc/PID/fd and readlink every entry — and
//! nothing else. `kcmp scan` does this walk (on all cores) plus the
//! grouping; bench/scan-vs-walk.sh compares the two.
//!
//! Usage: `bare_walk PID...` (prints the number of fds seen).

fn main() {
    let mut fds = 0usize;
    let mut bytes = 0usize;
    for arg in std::env::args().skip(1) {
        let Ok(pid) = arg
            .parse::<i32>()
            .map_err(|_| ())
            .and_then(|p| kcmp::Pid::new(p).map_err(|_| ()))
        else {
            eprintln!("bare_walk: {arg:?} is not a pid");
            std::process::exit(2);
        };
        if let Ok(entries) = kcmp_map::procfs::list_fds(pid) {
            fds += entries.len();
            bytes += entries.iter().map(|e| e.target.len()).sum::<usize>();
        }
    }
    println!("{fds} fds ({bytes} bytes of link text)");
}
