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
    kcmp_map::freeze::progress(); // the comparison, a step of work
    let not_frozen = set.not_frozen().to_vec();
    let released = set.finish()?;
    if let Some(note) = crate::output::not_frozen_note(&not_frozen) {
        eprintln!("kcmp: note: {note}");
    }
    if let Some(why) = released {
        eprintln!(
            "kcmp: note: not frozen throughout ({}): {}",
            why.code(),
            why.describe()
        );
    }
    *LAST_NOT_FROZEN.lock().unwrap_or_else(|e| e.into_inner()) = Some(not_frozen);
    result
}

/// The processes the last [`run_frozen`] with `freeze` could not freeze
/// (for the JSON's `not_frozen`); `None` when nothing was frozen.
pub fn last_not_frozen() -> Option<Vec<kcmp_map::freeze::NotFrozen>> {
    LAST_NOT_FROZEN
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

static LAST_NOT_FROZEN: std::sync::Mutex<Option<Vec<kcmp_map::freeze::NotFrozen>>> =
    std::sync::Mutex::new(None);
