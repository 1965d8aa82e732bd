//! Helpers of the `readable_scan` and `readable_names` tests: run the
//! built `kcmp` (without colour) and read its output.

use kcmp_testkit::cli;
use serde_json::Value;

/// Runs the built `kcmp` with `args` (`NO_COLOR=1`): (exit code, stdout, stderr).
pub fn kcmp(args: &[&str]) -> (i32, String, String) {
    cli::output_of(
        std::process::Command::new(env!("CARGO_BIN_EXE_kcmp"))
            .args(args)
            .env("NO_COLOR", "1"),
    )
}

/// The stdout of `kcmp args`, which must succeed without a panic.
pub fn ok(args: &[&str]) -> String {
    let (code, out, err) = kcmp(args);
    assert_eq!(code, 0, "kcmp {args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    out
}

/// The JSON stdout of `kcmp args`, which must succeed.
pub fn json(args: &[&str]) -> Value {
    cli::success_json(&format!("kcmp {args:?}"), kcmp(args))
}

/// The path of the CLI's JSON schema `name`.
pub fn schema(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("schema/{name}.schema.json"))
}

/// "N holders in M processes" of a description line.
pub fn counts(line: &str) -> (usize, usize) {
    let words: Vec<&str> = line.split_whitespace().collect();
    let i = words
        .iter()
        .position(|w| w.starts_with("holder"))
        .unwrap_or_else(|| panic!("no holder count: {line}"));
    (words[i - 1].parse().unwrap(), words[i + 2].parse().unwrap())
}
