//! `kcmp scan` (in progress).
/// Runs the command.
pub fn run(_args: &crate::cli::ScanArgs) -> i32 {
    eprintln!("kcmp: scan: not yet implemented");
    crate::exit::TROUBLE
}
