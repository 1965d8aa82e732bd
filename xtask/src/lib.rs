//! Project tasks behind `cargo xtask`, as a library so that tests install
//! with exactly the code the command uses.
//!
//! * [`install`] — `cargo xtask install --prefix DIR`: builds (the `dist`
//!   profile: no debug info, stripped, fat LTO, one codegen unit), then installs
//!   the `kcmp` binary, libkcmp (`.so` with its soname links, `.a`), `kcmp.h`,
//!   `kcmp.pc`, the man pages (generated from the CLI definition, plus the
//!   hand-written `kcmp.3`) and bash/zsh/fish completions.
//! * [`install_c_library`] — only the C library part, from already built
//!   artifacts (used by the C example test and the C benchmark).
//! * [`dist::dist`] — `cargo xtask dist`: the release tarball and the three
//!   Debian packages (`kcmp`, `libkcmp0`, `libkcmp-dev`) under `dist/`.
//!
//! ```no_run
//! use std::path::Path;
//! let layout = xtask::Layout::new(Path::new("/usr/local"));
//! xtask::install(&layout, &xtask::InstallOptions::default())?;
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;
use std::path::{Path, PathBuf};

mod cargo;
mod cc;
mod clib;
mod completions;
pub mod dist;
mod install;
mod layout;
mod man;
mod tempdir;

pub use cargo::{build, profile_dir, run, target_dir};
pub use cc::{
    bench_c, bench_c_source, cc_static_with_pkg_config, cc_with_pkg_config, example_c_source,
};
pub(crate) use clib::remove_comment_section;
pub use clib::{
    header_source, install_c_library, install_static_library, libs_private, native_static_libs,
    pkg_config, CArtifacts,
};
pub use completions::{completion_files, install_completions};
pub(crate) use install::symlink;
pub use install::{install, install_built, install_file, write_file, InstallOptions};
pub use layout::Layout;
pub(crate) use man::civil_from_days;
pub use man::{install_man_pages, man3_source, man_date, man_pages};
pub use tempdir::TempDir;

/// The cargo profile that ships: `cargo xtask install`, `cargo xtask dist`
/// and the README's `cargo run` build with it (see the root Cargo.toml).
pub const DIST_PROFILE: &str = "dist";

/// The major version of libkcmp's ABI: the soname is `libkcmp.so.<major>`
/// (kept in step with crates/kcmp-ffi/build.rs).
pub const SONAME_MAJOR: &str = "0";

/// The version of the workspace (libkcmp, the CLI).
pub fn version() -> String {
    kcmp_cli::command()
        .get_version()
        .unwrap_or("0.0.0")
        .to_string()
}

/// The workspace root (the parent of the xtask crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}

fn other(msg: impl Into<String>) -> io::Error {
    io::Error::other(msg.into())
}
