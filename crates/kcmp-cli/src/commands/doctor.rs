//! `kcmp doctor` (helper C replaces this file).
/// Runs the doctor.
pub fn run(_json: bool) -> i32 {
    eprintln!("kcmp: doctor: not yet implemented");
    crate::exit::TROUBLE
}
