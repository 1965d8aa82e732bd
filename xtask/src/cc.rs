//! Compiling C against an installed libkcmp, as a user would (through
//! pkg-config), and the C example and benchmark built that way.

use crate::{build, install_c_library, run, target_dir, workspace_root, CArtifacts, Layout};
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Compiles C `sources` into `output` against the libkcmp installed under
/// `layout`, the way a user would:
/// `cc SOURCES -o OUTPUT EXTRA $(pkg-config --cflags --libs kcmp)` with
/// `PKG_CONFIG_PATH` pointing at the install.
pub fn cc_with_pkg_config(
    layout: &Layout,
    sources: &[&Path],
    output: &Path,
    extra: &[&str],
) -> io::Result<()> {
    cc_pkg_config(
        layout,
        r#"cc "$@" $(pkg-config --cflags --libs kcmp)"#,
        sources,
        output,
        extra,
    )
}

/// Links C `sources` into a fully static `output` against the `libkcmp.a`
/// installed under `layout`, exactly as kcmp(3) documents:
/// `cc -static SOURCES -o OUTPUT EXTRA $(pkg-config --static --cflags --libs kcmp)`.
pub fn cc_static_with_pkg_config(
    layout: &Layout,
    sources: &[&Path],
    output: &Path,
    extra: &[&str],
) -> io::Result<()> {
    cc_pkg_config(
        layout,
        r#"cc -static "$@" $(pkg-config --static --cflags --libs kcmp)"#,
        sources,
        output,
        extra,
    )
}

/// Runs the shell command `script` with `sources`, `-o output` and `extra`
/// as its arguments and `PKG_CONFIG_PATH` pointing at the install.
fn cc_pkg_config(
    layout: &Layout,
    script: &str,
    sources: &[&Path],
    output: &Path,
    extra: &[&str],
) -> io::Result<()> {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(script)
        .arg("sh")
        .args(sources)
        .arg("-o")
        .arg(output)
        .args(extra)
        .env("PKG_CONFIG_PATH", layout.pkgconfig_dir());
    run(&mut cmd).map(|_| ())
}

/// The man page's example program (crates/kcmp-ffi/examples/kcmp-example.c).
pub fn example_c_source() -> PathBuf {
    workspace_root().join("crates/kcmp-ffi/examples/kcmp-example.c")
}

/// The C benchmark source (crates/kcmp-ffi/benches/kcmp_vs_syscall.c).
pub fn bench_c_source() -> PathBuf {
    workspace_root().join("crates/kcmp-ffi/benches/kcmp_vs_syscall.c")
}

/// `cargo xtask bench-c`: builds libkcmp (release), stages it under
/// `target/xtask-bench`, compiles the C benchmark with `-O2` against it and
/// runs it with `calls` calls per loop and `rounds` rounds. Returns its
/// report.
pub fn bench_c(calls: u64, rounds: u32) -> io::Result<String> {
    let dir = build("release", None)?;
    let stage = target_dir()?.join("xtask-bench");
    let layout = Layout::new(&stage.join("prefix"));
    install_c_library(&layout, &CArtifacts::in_dir(&dir)?)?;
    let exe = stage.join("kcmp_vs_syscall");
    cc_with_pkg_config(&layout, &[&bench_c_source()], &exe, &["-O2"])?;
    let out = run(Command::new(&exe)
        .arg(calls.to_string())
        .arg(rounds.to_string())
        .env("LD_LIBRARY_PATH", layout.lib_dir()))?;
    Ok(format!(
        "$ LD_LIBRARY_PATH={} {} {calls} {rounds}\n{}",
        layout.lib_dir().display(),
        exe.display(),
        String::from_utf8_lossy(&out.stdout)
    ))
}
