//! Group this process's own fds by open file description, with kcmp's
//! ordering where kcmp works and the exact equality-only fallbacks where it
//! is blocked (`fallback::compare_descriptions` plugged into
//! `grouping::OrderedGroups`).
//!
//! ```sh
//! cargo run -p kcmp --example group_own_fds
//! ```

use kcmp::fallback::compare_descriptions;
use kcmp::grouping::OrderedGroups;
use kcmp::{FdNum, Pid};
use std::fs::File;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Something to group: a file opened twice, one of them dup'ed.
    let a = File::open("/dev/null")?;
    let _a_dup = a.try_clone()?;
    let _b = File::open("/dev/null")?;

    // This process's fd numbers (the directory's own fd is closed again
    // before the comparisons: it simply fails to compare and is dropped).
    let mut fds: Vec<FdNum> = std::fs::read_dir("/proc/self/fd")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|n| FdNum::new(n).ok())
        .collect();
    fds.sort();

    let me = Pid::this();
    let mut cmp = |x: FdNum, y: FdNum| compare_descriptions(me, x, me, y);
    let mut groups = OrderedGroups::new();
    for fd in fds {
        // An fd that closed since the listing cannot be placed: skip it.
        if let Err(e) = groups.insert(fd, &mut cmp) {
            eprintln!("skipped: {e}");
        }
    }
    let ordered = groups.is_ordered();
    for group in groups.groups() {
        let target = std::fs::read_link(format!("/proc/self/fd/{}", group[0]))
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let numbers: Vec<String> = group.iter().map(|fd| fd.to_string()).collect();
        println!("{target}: fds {}", numbers.join(", "));
    }
    println!(
        "({} comparisons, {})",
        groups.comparisons(),
        if ordered {
            "kcmp's order"
        } else {
            "equality only: kcmp is blocked here"
        }
    );
    Ok(())
}
