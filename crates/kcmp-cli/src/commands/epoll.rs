//! `kcmp epoll-targets` (in progress).
/// Runs the command.
pub fn run(_pid: i32, _epfd: i32, _json: bool, _freeze: bool) -> i32 {
    eprintln!("kcmp: epoll-targets: not yet implemented");
    crate::exit::TROUBLE
}
