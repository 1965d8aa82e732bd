//! Unit tests that need a process of their own (a thread with its own fd
//! table, a process's first batch of closes): the test binary runs one of
//! its tests again in a fresh copy of itself.

/// Runs the test `name` of `module` (a `module_path!()` of this crate)
/// alone in a fresh copy of the test binary, with the environment variable
/// `var` set (the test checks it to do its work there); `Err` with the
/// copy's output when that run did not pass.
pub(crate) fn run_alone(module: &str, name: &str, var: &str) -> Result<(), String> {
    let module = module.split_once("::").map_or("", |(_, m)| m);
    let test = format!("{module}::{name}");
    let exe = std::env::current_exe().expect("the test binary");
    let out = std::process::Command::new(&exe)
        .args([test.as_str(), "--exact", "--test-threads=1", "--nocapture"])
        .env(var, "1")
        .output()
        .expect("the test binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    match out.status.success() && stdout.contains("1 passed") {
        true => Ok(()),
        false => Err(format!("{stdout}{}", String::from_utf8_lossy(&out.stderr))),
    }
}
