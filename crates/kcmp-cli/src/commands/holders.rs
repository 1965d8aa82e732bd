//! `kcmp holders` (in progress).
/// Runs the command.
pub fn run(_pid: i32, _fd: i32, _peer: bool, _json: bool, _freeze: bool) -> i32 {
    eprintln!("kcmp: holders: not yet implemented");
    crate::exit::TROUBLE
}
