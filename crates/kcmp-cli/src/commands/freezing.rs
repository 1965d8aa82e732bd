//! `--freeze`: run an inspection with the inspected processes stopped.

use kcmp::Pid;

/// Runs `f`, with `pids` frozen for its duration when `freeze` is set.
pub fn run_frozen<T>(
    freeze: bool,
    _pids: &[Pid],
    f: impl FnOnce() -> Result<T, kcmp::Error>,
) -> Result<T, kcmp::Error> {
    if freeze {
        return Err(kcmp::Error::InvalidArgument(
            "--freeze is not wired yet".into(),
        ));
    }
    f()
}
