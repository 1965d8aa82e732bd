//! `cargo xtask install`: build, then put every file in place, each
//! written atomically.

use crate::{
    build, install_c_library, install_completions, install_man_pages, other,
    remove_comment_section, CArtifacts, Layout, DIST_PROFILE,
};
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// How [`install`] builds.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// The cargo profile ([`DIST_PROFILE`] by default).
    pub profile: String,
    /// A target directory of its own (`cargo build --target-dir`); `None`
    /// builds in the workspace's. Tests that run inside `cargo test` set it
    /// so as not to rebuild artifacts the running cargo still uses.
    pub target_dir: Option<PathBuf>,
}

impl Default for InstallOptions {
    fn default() -> Self {
        InstallOptions {
            profile: DIST_PROFILE.into(),
            target_dir: None,
        }
    }
}

/// Builds, then installs everything under `layout`. Returns the list of
/// installed paths.
pub fn install(layout: &Layout, opts: &InstallOptions) -> io::Result<Vec<PathBuf>> {
    let dir = build(&opts.profile, opts.target_dir.as_deref())?;
    install_built(layout, &dir)
}

/// Installs everything under `layout` from the artifacts already built in
/// the profile directory `dir`. Returns the list of installed paths.
pub fn install_built(layout: &Layout, dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut installed = Vec::new();
    let bin = layout.bin_dir().join("kcmp");
    install_file(&dir.join("kcmp"), &bin, 0o755)?;
    remove_comment_section(&bin)?;
    installed.push(bin);
    installed.extend(install_c_library(layout, &CArtifacts::in_dir(dir)?)?);
    installed.extend(install_man_pages(layout)?);
    installed.extend(install_completions(layout)?);
    Ok(installed)
}

/// Copies `src` to `dst` with `mode`, atomically (a temporary file renamed
/// over `dst`, so a running program keeps its old mapping).
pub fn install_file(src: &Path, dst: &Path, mode: u32) -> io::Result<()> {
    let data = fs::read(src).map_err(|e| other(format!("{}: {e}", src.display())))?;
    write_file(dst, &data, mode)
}

/// Writes `data` to `dst` with `mode`, atomically; creates parent dirs.
pub fn write_file(dst: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let parent = dst
        .parent()
        .ok_or_else(|| other(format!("{} has no parent", dst.display())))?;
    fs::create_dir_all(parent)?;
    let tmp = parent.join(format!(
        ".{}.xtask-tmp",
        dst.file_name().and_then(OsStr::to_str).unwrap_or("file")
    ));
    fs::write(&tmp, data).map_err(|e| other(format!("{}: {e}", tmp.display())))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
    fs::rename(&tmp, dst).map_err(|e| other(format!("{}: {e}", dst.display())))
}

pub(crate) fn symlink(target: &str, link: &Path) -> io::Result<()> {
    match fs::remove_file(link) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::os::unix::fs::symlink(target, link)
}
