//! `--freeze` for the compare commands: run one comparison with both
//! processes stopped (PTRACE_SEIZE + PTRACE_INTERRUPT), then resume them
//! exactly as they were, before anything is printed.

use kcmp::Pid;

/// Runs `f`, with `pids` frozen for its duration when `freeze` is set.
/// Processes that cannot be frozen (the caller, its ancestors, already
/// traced, …) are named in a note on stderr; the comparison still runs.
pub fn run_frozen<T>(
    freeze: bool,
    pids: &[Pid],
    f: impl FnOnce() -> Result<T, kcmp::Error>,
) -> Result<T, kcmp::Error> {
    if !freeze {
        return f();
    }
    let mut unique = pids.to_vec();
    unique.sort_unstable();
    unique.dedup();
    let set = kcmp_map::freeze::freeze(&unique)?;
    let result = f();
    let not_frozen: Vec<String> = set
        .not_frozen()
        .iter()
        .map(|n| format!("{} ({})", n.pid, n.reason))
        .collect();
    let released = set.finish()?;
    if !not_frozen.is_empty() {
        eprintln!("kcmp: note: not frozen: {}", not_frozen.join(", "));
    }
    if let Some(why) = released {
        eprintln!(
            "kcmp: note: not frozen throughout ({}): {}",
            why.code(),
            why.describe()
        );
    }
    result
}
