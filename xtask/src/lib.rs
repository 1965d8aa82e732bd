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

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

pub mod dist;

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

/// The build products the install copies.
#[derive(Debug, Clone)]
pub struct CArtifacts {
    /// The cdylib (`libkcmp_ffi.so`).
    pub cdylib: PathBuf,
    /// The staticlib (`libkcmp_ffi.a`).
    pub staticlib: PathBuf,
}

impl CArtifacts {
    /// The artifacts cargo left in `dir` (a profile directory such as
    /// `target/release`, or its `deps`).
    pub fn in_dir(dir: &Path) -> io::Result<Self> {
        let a = CArtifacts {
            cdylib: dir.join("libkcmp_ffi.so"),
            staticlib: dir.join("libkcmp_ffi.a"),
        };
        for p in [&a.cdylib, &a.staticlib] {
            if !p.is_file() {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{} is missing (build kcmp-ffi first)", p.display()),
                ));
            }
        }
        Ok(a)
    }
}

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

fn other(msg: impl Into<String>) -> io::Error {
    io::Error::other(msg.into())
}

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

fn symlink(target: &str, link: &Path) -> io::Result<()> {
    match fs::remove_file(link) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::os::unix::fs::symlink(target, link)
}

/// The header shipped with libkcmp (crates/kcmp-ffi/include/kcmp.h).
pub fn header_source() -> PathBuf {
    workspace_root().join("crates/kcmp-ffi/include/kcmp.h")
}

/// The hand-written C API man page (crates/kcmp-ffi/man/kcmp.3).
pub fn man3_source() -> PathBuf {
    workspace_root().join("crates/kcmp-ffi/man/kcmp.3")
}

/// Installs libkcmp from built artifacts: `lib/libkcmp.so.X.Y.Z` with the
/// links `libkcmp.so.<major>` and `libkcmp.so`, `lib/libkcmp.a`,
/// `include/kcmp.h` and `lib/pkgconfig/kcmp.pc`. Returns the paths.
pub fn install_c_library(layout: &Layout, art: &CArtifacts) -> io::Result<Vec<PathBuf>> {
    let lib = layout.lib_dir();
    let real = format!("libkcmp.so.{}", version());
    let soname = format!("libkcmp.so.{SONAME_MAJOR}");
    install_file(&art.cdylib, &lib.join(&real), 0o755)?;
    remove_comment_section(&lib.join(&real))?;
    symlink(&real, &lib.join(&soname))?;
    symlink(&soname, &lib.join("libkcmp.so"))?;
    install_static_library(&art.staticlib, &lib.join("libkcmp.a"))?;
    let header = layout.include_dir().join("kcmp.h");
    install_file(&header_source(), &header, 0o644)?;
    let pc = layout.pkgconfig_dir().join("kcmp.pc");
    write_file(
        &pc,
        pkg_config(
            layout.prefix(),
            layout.libdir(),
            &version(),
            &libs_private(&native_static_libs()?),
        )
        .as_bytes(),
        0o644,
    )?;
    Ok(vec![
        lib.join(real),
        lib.join(soname),
        lib.join("libkcmp.so"),
        lib.join("libkcmp.a"),
        header,
        pc,
    ])
}

/// Installs the static library `src` as `dst` without what a linker never
/// uses: debug info (`objcopy --strip-debug`), the LLVM bitcode that Rust's
/// precompiled std objects carry (`.llvmbc`, `.llvmcmd`: binutils' `nm`
/// cannot read it and prints a plugin error per member), compiler
/// identification strings (`.comment`), and archive
/// members that define no symbol (`nm` complains "no symbols" about each;
/// a linker never pulls them in). The symbol table stays: `nm libkcmp.a`
/// lists `kcmp`.
pub fn install_static_library(src: &Path, dst: &Path) -> io::Result<()> {
    let parent = dst
        .parent()
        .ok_or_else(|| other(format!("{} has no parent", dst.display())))?;
    fs::create_dir_all(parent)?;
    let tmp = parent.join(".libkcmp.a.xtask-tmp");
    fs::copy(src, &tmp).map_err(|e| other(format!("{}: {e}", src.display())))?;
    run(Command::new("objcopy")
        .args(["--strip-debug", "--remove-section=.llvmbc"])
        .args(["--remove-section=.llvmcmd", "--remove-section=.comment"])
        .arg(&tmp))?;
    let out = Command::new("nm")
        .arg(&tmp)
        .output()
        .map_err(|e| other(format!("cannot run nm (binutils): {e}")))?;
    let empty: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| l.strip_prefix("nm: ")?.strip_suffix(": no symbols"))
        .map(String::from)
        .collect();
    if !empty.is_empty() {
        run(Command::new("ar").arg("d").arg(&tmp).args(&empty))?;
    }
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644))?;
    fs::rename(&tmp, dst).map_err(|e| other(format!("{}: {e}", dst.display())))
}

/// Removes the `.comment` section (compiler version strings) from an
/// installed ELF file, as Debian's dh_strip does.
fn remove_comment_section(file: &Path) -> io::Result<()> {
    run(Command::new("objcopy")
        .arg("--remove-section=.comment")
        .arg(file))
    .map(|_| ())
}

/// The system libraries `libkcmp.a` needs, for kcmp.pc's `Libs.private`:
/// rustc's list without `-lgcc_s`. There is no static libgcc_s, so `cc
/// -static` would fail on it; the C compiler driver adds the unwinder that
/// Rust's panics need itself (`-lgcc_eh` when linking statically, libgcc_s
/// as needed otherwise).
///
/// ```
/// assert_eq!(xtask::libs_private("-lgcc_s -lutil -lc"), "-lutil -lc");
/// ```
pub fn libs_private(native_static_libs: &str) -> String {
    native_static_libs
        .split_whitespace()
        .filter(|l| *l != "-lgcc_s")
        .collect::<Vec<_>>()
        .join(" ")
}

/// The text of `kcmp.pc` for `prefix`. `libs_private` are the system
/// libraries the static library needs (`pkg-config --static`). With them,
/// `cc -static prog.c $(pkg-config --static --cflags --libs kcmp)` links
/// `libkcmp.a`.
///
/// ```
/// let pc = xtask::pkg_config(std::path::Path::new("/opt/k"), "lib", "0.1.0", "-lc");
/// assert!(pc.starts_with("prefix=/opt/k\n"));
/// assert!(pc.contains("libdir=${exec_prefix}/lib\n"));
/// assert!(pc.contains("Libs: -L${libdir} -lkcmp\n"));
/// ```
pub fn pkg_config(prefix: &Path, libdir: &str, version: &str, libs_private: &str) -> String {
    format!(
        "prefix={}\n\
         exec_prefix=${{prefix}}\n\
         libdir=${{exec_prefix}}/{libdir}\n\
         includedir=${{prefix}}/include\n\
         \n\
         Name: kcmp\n\
         Description: libkcmp, the C wrapper for kcmp(2): compare kernel resources of processes\n\
         Version: {version}\n\
         Libs: -L${{libdir}} -lkcmp\n\
         Libs.private: {libs_private}\n\
         Cflags: -I${{includedir}}\n",
        prefix.display()
    )
}

/// The system libraries a Rust static library needs on this target, as
/// `rustc --print native-static-libs` reports them for an empty crate.
pub fn native_static_libs() -> io::Result<String> {
    let tmp = TempDir::new("xtask-nsl")?;
    let src = tmp.path().join("empty.rs");
    fs::write(&src, "")?;
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = run(Command::new(rustc)
        .current_dir(tmp.path())
        .args(["--crate-type", "staticlib", "--crate-name", "empty"])
        .args(["--print", "native-static-libs"])
        .arg(&src))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    stderr
        .lines()
        .find_map(|l| l.split_once("native-static-libs: ").map(|(_, libs)| libs))
        .map(|l| l.trim().to_string())
        .ok_or_else(|| other(format!("rustc did not print native-static-libs:\n{stderr}")))
}

/// Installs `man1/kcmp.1`, one `man1/kcmp-<sub>.1` per subcommand
/// (generated from [`kcmp_cli::command`]) and `man3/kcmp.3`.
pub fn install_man_pages(layout: &Layout) -> io::Result<Vec<PathBuf>> {
    let mut installed = Vec::new();
    for (name, page) in man_pages()? {
        let path = layout.man_dir(1).join(name);
        write_file(&path, &page, 0o644)?;
        installed.push(path);
    }
    let man3 = layout.man_dir(3).join("kcmp.3");
    install_file(&man3_source(), &man3, 0o644)?;
    installed.push(man3);
    Ok(installed)
}

/// The section 1 pages as (file name, roff): `kcmp.1` first, then one per
/// visible subcommand.
///
/// ```
/// let pages = xtask::man_pages().unwrap();
/// assert_eq!(pages[0].0, "kcmp.1");
/// assert!(pages.iter().any(|(name, _)| name == "kcmp-file.1"));
/// ```
pub fn man_pages() -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut cmd = kcmp_cli::command().disable_help_subcommand(true);
    cmd.build();
    let version = version();
    let subs: Vec<clap::Command> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect();
    let mut pages = Vec::new();
    let see_also: Vec<String> = subs
        .iter()
        .map(|s| format!("kcmp-{}", s.get_name()))
        .collect();
    pages.push((
        "kcmp.1".to_string(),
        render_man(cmd.clone(), &version, &see_also)?,
    ));
    for sub in subs {
        let page = render_man(sub.clone(), &version, &["kcmp".to_string()])?;
        pages.push((format!("kcmp-{}.1", sub.get_name()), page));
    }
    Ok(pages)
}

/// Non-ASCII characters (`×`, `–`, `…`) as groff escapes (`\[u00D7]`):
/// troff warns on raw UTF-8 input.
fn ascii_roff(roff: &str) -> String {
    let mut out = String::with_capacity(roff.len());
    for c in roff.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            out.push_str(&format!("\\[u{:04X}]", c as u32));
        }
    }
    out
}

/// clap_mangen's synopsis lists `[--pid]`; say what it takes: `[--pid PID]`.
fn synopsis_placeholders(cmd: &clap::Command, roff: String) -> String {
    let mut roff = roff;
    for a in cmd.get_arguments() {
        let (Some(long), Some(names)) = (a.get_long(), a.get_value_names()) else {
            continue;
        };
        if !a.get_action().takes_values() || names.is_empty() {
            continue;
        }
        let flag = format!("\\fB\\-\\-{}\\fR", long.replace('-', "\\-"));
        let with = format!("[{flag} \\fI{}\\fR]", names[0]);
        roff = roff.replacen(&format!("[{flag}]"), &with, 1);
    }
    roff
}

fn render_man(cmd: clap::Command, version: &str, see_also: &[String]) -> io::Result<Vec<u8>> {
    let placeholders = cmd.clone();
    let man = clap_mangen::Man::new(cmd)
        .date(man_date())
        .source(format!("kcmp {version}"))
        .manual("User Commands");
    let mut roff = Vec::new();
    man.render(&mut roff)?;
    // clap_mangen titles the after_help text "EXTRA"; ours holds examples.
    let roff = String::from_utf8_lossy(&roff)
        .replace(".SH EXTRA\nExamples:\n", ".SH EXAMPLES\n")
        .replace(".SH EXTRA\nExample:\n", ".SH EXAMPLES\n");
    let mut buf = ascii_roff(&synopsis_placeholders(&placeholders, roff)).into_bytes();
    writeln!(buf, ".SH \"SEE ALSO\"")?;
    let mut refs: Vec<(String, u8)> = see_also.iter().map(|n| (n.clone(), 1)).collect();
    refs.push(("kcmp".into(), 2));
    refs.push(("kcmp".into(), 3));
    let last = refs.len() - 1;
    for (i, (name, section)) in refs.iter().enumerate() {
        let sep = if i == last { "" } else { "," };
        writeln!(buf, ".BR {} ({}){sep}", name.replace('-', "\\-"), section)?;
    }
    Ok(buf)
}

/// The date on the generated man pages, `YYYY-MM-DD` (UTC): from
/// `SOURCE_DATE_EPOCH` when set (reproducible builds), else today.
pub fn man_date() -> String {
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
        });
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day)
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The shells [`install_completions`] writes for, with their install
/// directory and file name.
pub fn completion_files(layout: &Layout) -> Vec<(clap_complete::Shell, PathBuf)> {
    use clap_complete::Shell;
    vec![
        (Shell::Bash, layout.bash_completion_dir().join("kcmp")),
        (Shell::Zsh, layout.zsh_completion_dir().join("_kcmp")),
        (Shell::Fish, layout.fish_completion_dir().join("kcmp.fish")),
    ]
}

/// Installs bash, zsh and fish completions generated from the CLI
/// definition.
pub fn install_completions(layout: &Layout) -> io::Result<Vec<PathBuf>> {
    let mut installed = Vec::new();
    for (shell, path) in completion_files(layout) {
        let mut cmd = kcmp_cli::command();
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd, "kcmp", &mut buf);
        write_file(&path, &buf, 0o644)?;
        installed.push(path);
    }
    Ok(installed)
}

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
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"cc "$@" $(pkg-config --cflags --libs kcmp)"#)
        .arg("sh")
        .args(sources)
        .arg("-o")
        .arg(output)
        .args(extra)
        .env("PKG_CONFIG_PATH", layout.pkgconfig_dir());
    run(&mut cmd).map(|_| ())
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
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"cc -static "$@" $(pkg-config --static --cflags --libs kcmp)"#)
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

/// A directory removed (with its contents) when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates a fresh directory `$TMPDIR/<prefix>-<pid>-<n>`.
    pub fn new(prefix: &str) -> io::Result<Self> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        loop {
            let p = std::env::temp_dir().join(format!(
                "{prefix}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            match fs::create_dir(&p) {
                Ok(()) => return Ok(TempDir(p)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        assert_eq!(civil_from_days(20_420), (2025, 11, 28));
    }

    #[test]
    fn man_date_uses_source_date_epoch() {
        // The only test of this binary that touches the environment.
        std::env::set_var("SOURCE_DATE_EPOCH", "1764288000");
        assert_eq!(man_date(), "2025-11-28");
        std::env::remove_var("SOURCE_DATE_EPOCH");
        let today = man_date();
        assert_eq!(today.len(), 10);
        assert!(today.starts_with("20"), "{today}");
    }
}
