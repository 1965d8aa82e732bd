//! Running commands and cargo: [`run`], the target and profile
//! directories, and [`build`] of the binary and libkcmp.

use crate::{other, workspace_root};
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `cmd`; its output, or an error naming the command and its stderr.
pub fn run(cmd: &mut Command) -> io::Result<std::process::Output> {
    let out = cmd
        .output()
        .map_err(|e| other(format!("cannot run {cmd:?}: {e}")))?;
    if !out.status.success() {
        return Err(other(format!(
            "{cmd:?} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(out)
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Cargo's target directory for this workspace (honours
/// `CARGO_TARGET_DIR` and cargo config).
pub fn target_dir() -> io::Result<PathBuf> {
    let out = run(cargo().current_dir(workspace_root()).args([
        "metadata",
        "--no-deps",
        "--format-version",
        "1",
    ]))?;
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| other(format!("cargo metadata: {e}")))?;
    meta["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .ok_or_else(|| other("cargo metadata has no target_directory"))
}

/// The directory cargo writes a profile's artifacts to.
pub fn profile_dir(target: &Path, profile: &str) -> PathBuf {
    match profile {
        "dev" | "test" => target.join("debug"),
        "bench" => target.join("release"),
        p => target.join(p),
    }
}

/// Builds the `kcmp` binary and libkcmp with `profile` (into `target`, or
/// the workspace's target directory); returns the profile's artifact
/// directory.
///
/// Two cargo runs: `cargo build -p kcmp-cli --bin kcmp`, exactly what the
/// README's `cargo run --profile dist -p kcmp-cli` builds (so an install
/// after it rebuilds nothing of the binary), then `cargo rustc -p kcmp-ffi
/// --lib --crate-type cdylib,staticlib`: kcmp-ffi's manifest also lists
/// `rlib` (for its Rust tests), and cargo applies no LTO to a crate with an
/// rlib output, which leaves the LLVM bitcode of Rust's std and ~20 MB of
/// debug info in `libkcmp.a`.
pub fn build(profile: &str, target: Option<&Path>) -> io::Result<PathBuf> {
    let cli: &[&str] = &["build", "-p", "kcmp-cli", "--bin", "kcmp"];
    let ffi: &[&str] = &[
        "rustc",
        "-p",
        "kcmp-ffi",
        "--lib",
        "--crate-type",
        "cdylib,staticlib",
    ];
    for args in [cli, ffi] {
        let mut cmd = cargo();
        cmd.current_dir(workspace_root())
            .args(args)
            .args(["--profile", profile]);
        if let Some(t) = target {
            cmd.arg("--target-dir").arg(t);
        }
        eprintln!("xtask: {cmd:?}");
        let status = cmd.status()?;
        if !status.success() {
            return Err(other(format!("{cmd:?} failed ({status})")));
        }
    }
    let target = match target {
        Some(t) => t.to_path_buf(),
        None => target_dir()?,
    };
    Ok(profile_dir(&target, profile))
}
