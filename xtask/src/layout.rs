//! Where each installed file goes: [`Layout`], an install prefix with an
//! optional `DESTDIR` and library directory.

use std::path::{Path, PathBuf};

/// Where each installed file goes, for an install prefix and an optional
/// staging root (`DESTDIR`): files land in `DESTDIR/PREFIX/...`, while
/// generated text (kcmp.pc) names `PREFIX`.
///
/// ```
/// use std::path::Path;
/// let l = xtask::Layout::new(Path::new("/usr/local"));
/// assert_eq!(l.pkgconfig_dir(), Path::new("/usr/local/lib/pkgconfig"));
/// let staged = l.with_destdir(Path::new("/tmp/stage"));
/// assert_eq!(staged.bin_dir(), Path::new("/tmp/stage/usr/local/bin"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    prefix: PathBuf,
    destdir: Option<PathBuf>,
    libdir: String,
}

impl Layout {
    /// A layout that installs straight into `prefix`.
    pub fn new(prefix: &Path) -> Self {
        Layout {
            prefix: prefix.to_path_buf(),
            destdir: None,
            libdir: "lib".into(),
        }
    }

    /// Installs libraries (and `pkgconfig/`) in `PREFIX/<libdir>` instead
    /// of `PREFIX/lib`, e.g. Debian's `lib/x86_64-linux-gnu`.
    ///
    /// ```
    /// use std::path::Path;
    /// let l = xtask::Layout::new(Path::new("/usr")).with_libdir("lib/x86_64-linux-gnu");
    /// assert_eq!(l.pkgconfig_dir(), Path::new("/usr/lib/x86_64-linux-gnu/pkgconfig"));
    /// ```
    pub fn with_libdir(mut self, libdir: &str) -> Self {
        self.libdir = libdir.trim_matches('/').to_string();
        self
    }

    /// The library directory, relative to the prefix (`lib` by default).
    pub fn libdir(&self) -> &str {
        &self.libdir
    }

    /// Stages the install under `destdir` (packagers' `DESTDIR`).
    pub fn with_destdir(mut self, destdir: &Path) -> Self {
        self.destdir = Some(destdir.to_path_buf());
        self
    }

    /// The prefix as recorded in kcmp.pc.
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// The real location of `rel` under the prefix (with `DESTDIR`).
    pub fn path(&self, rel: &str) -> PathBuf {
        let base = match &self.destdir {
            Some(d) => d.join(self.prefix.strip_prefix("/").unwrap_or(&self.prefix)),
            None => self.prefix.clone(),
        };
        base.join(rel)
    }

    /// `PREFIX/bin`.
    pub fn bin_dir(&self) -> PathBuf {
        self.path("bin")
    }
    /// `PREFIX/lib` (or the [`Layout::with_libdir`] directory).
    pub fn lib_dir(&self) -> PathBuf {
        self.path(&self.libdir)
    }
    /// `PREFIX/include`.
    pub fn include_dir(&self) -> PathBuf {
        self.path("include")
    }
    /// `PREFIX/lib/pkgconfig` (under the [`Layout::with_libdir`] directory).
    pub fn pkgconfig_dir(&self) -> PathBuf {
        self.lib_dir().join("pkgconfig")
    }
    /// `PREFIX/share/man/man<section>`.
    pub fn man_dir(&self, section: u8) -> PathBuf {
        self.path(&format!("share/man/man{section}"))
    }
    /// `PREFIX/share/bash-completion/completions`.
    pub fn bash_completion_dir(&self) -> PathBuf {
        self.path("share/bash-completion/completions")
    }
    /// `PREFIX/share/zsh/site-functions`.
    pub fn zsh_completion_dir(&self) -> PathBuf {
        self.path("share/zsh/site-functions")
    }
    /// `PREFIX/share/fish/vendor_completions.d`.
    pub fn fish_completion_dir(&self) -> PathBuf {
        self.path("share/fish/vendor_completions.d")
    }
}
