//! libkcmp as installed for C: the shared library and its links, the
//! stripped static library, `kcmp.h` and `kcmp.pc`.

use crate::{
    install_file, other, run, symlink, version, workspace_root, write_file, Layout, TempDir,
    SONAME_MAJOR,
};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

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

/// The header shipped with libkcmp (crates/kcmp-ffi/include/kcmp.h).
pub fn header_source() -> PathBuf {
    workspace_root().join("crates/kcmp-ffi/include/kcmp.h")
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
pub(crate) fn remove_comment_section(file: &Path) -> io::Result<()> {
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
