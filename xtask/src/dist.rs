//! `cargo xtask dist`: what a release ships, built with the `dist` profile.
//!
//! * `dist/kcmp-VERSION-x86_64-linux-gnu.tar.gz`: the install layout (a
//!   relocatable `kcmp.pc`) with README.md, the licenses, CHANGELOG.md and a
//!   `SHA256SUMS` of its files;
//! * three Debian packages, split the way Debian ships a library with a
//!   soname: `kcmp_VERSION_ARCH.deb` (the command, section 1 man pages,
//!   completions), `libkcmp0_VERSION_ARCH.deb` (the shared library, with
//!   `shlibs`, `symbols` and the ldconfig trigger) and
//!   `libkcmp-dev_VERSION_ARCH.deb` (`libkcmp.a`, the `libkcmp.so` link,
//!   `kcmp.h`, `kcmp.pc`, `kcmp.3`), built with `dpkg-deb`;
//! * `dist/SHA256SUMS` of those files.

use crate::{
    build, install_built, other, run, version, workspace_root, write_file, Layout, TempDir,
    DIST_PROFILE, SONAME_MAJOR,
};
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The symbols libkcmp exports (its whole ABI), for the Debian `symbols`
/// file.
pub const EXPORTED_SYMBOLS: [&str; 4] = [
    "kcmp",
    "kcmp_holders",
    "kcmp_holders_free",
    "kcmp_same_file",
];

/// The documents every artifact carries, from the workspace root.
pub const DOCS: [&str; 4] = ["README.md", "CHANGELOG.md", "LICENSE-MIT", "LICENSE-APACHE"];

/// How [`dist`] builds.
#[derive(Debug, Clone)]
pub struct DistOptions {
    /// Where the artifacts go (`dist/` under the workspace by default).
    pub out_dir: PathBuf,
    /// A target directory of its own, as [`crate::InstallOptions::target_dir`].
    pub target_dir: Option<PathBuf>,
}

impl Default for DistOptions {
    fn default() -> Self {
        DistOptions {
            out_dir: workspace_root().join("dist"),
            target_dir: None,
        }
    }
}

/// Debian's architecture name and the GNU triplet (multiarch directory) of
/// the machine this runs on.
pub fn arch() -> io::Result<(&'static str, &'static str)> {
    match std::env::consts::ARCH {
        "x86_64" => Ok(("amd64", "x86_64-linux-gnu")),
        "aarch64" => Ok(("arm64", "aarch64-linux-gnu")),
        a => Err(other(format!(
            "cargo xtask dist: unsupported architecture {a}"
        ))),
    }
}

/// Builds with the `dist` profile and writes the tarball, the three .deb
/// files and `SHA256SUMS` into `opts.out_dir`. Returns their paths.
pub fn dist(opts: &DistOptions) -> io::Result<Vec<PathBuf>> {
    let dir = build(DIST_PROFILE, opts.target_dir.as_deref())?;
    fs::create_dir_all(&opts.out_dir)?;
    let work = TempDir::new("xtask-dist")?;
    let mut made = vec![tarball(&dir, work.path(), &opts.out_dir)?];
    made.extend(debs(&dir, work.path(), &opts.out_dir)?);
    let names: Vec<String> = made.iter().map(|p| file_name(p).to_string()).collect();
    let sums = sha256sums(&opts.out_dir, &names)?;
    let sums_path = opts.out_dir.join("SHA256SUMS");
    write_file(&sums_path, sums.as_bytes(), 0o644)?;
    made.push(sums_path);
    Ok(made)
}

fn file_name(p: &Path) -> &str {
    p.file_name().and_then(|n| n.to_str()).unwrap_or("")
}

/// `sha256sum` of `files` (relative to `dir`), in its output format.
fn sha256sums(dir: &Path, files: &[String]) -> io::Result<String> {
    let out = run(Command::new("sha256sum")
        .current_dir(dir)
        .arg("--")
        .args(files))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Every regular file and symlink under `root`, relative, sorted.
fn walk(root: &Path) -> io::Result<Vec<String>> {
    fn go(root: &Path, dir: &Path, acc: &mut Vec<String>) -> io::Result<()> {
        for e in fs::read_dir(dir)? {
            let e = e?;
            let p = e.path();
            let t = e.file_type()?;
            if t.is_dir() {
                go(root, &p, acc)?;
            } else {
                let rel = p.strip_prefix(root).map_err(|e| other(e.to_string()))?;
                acc.push(rel.to_string_lossy().into_owned());
            }
        }
        Ok(())
    }
    let mut acc = Vec::new();
    go(root, root, &mut acc)?;
    acc.sort();
    Ok(acc)
}

/// `SOURCE_DATE_EPOCH` if set, else now: the mtime of archive members.
fn epoch() -> i64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
        })
}

/// The tarball: the install layout under `kcmp-VERSION-TRIPLET/`.
fn tarball(dir: &Path, work: &Path, out: &Path) -> io::Result<PathBuf> {
    let (_, triplet) = arch()?;
    let name = format!("kcmp-{}-{triplet}", version());
    let root = work.join("tar").join(&name);
    let layout = Layout::new(&root);
    install_built(&layout, dir)?;
    // Relocatable: pkg-config finds the prefix from where kcmp.pc lies.
    let pc = crate::pkg_config(
        Path::new("${pcfiledir}/../.."),
        layout.libdir(),
        &version(),
        &crate::libs_private(&crate::native_static_libs()?),
    );
    write_file(
        &layout.pkgconfig_dir().join("kcmp.pc"),
        pc.as_bytes(),
        0o644,
    )?;
    for doc in DOCS {
        crate::install_file(&workspace_root().join(doc), &root.join(doc), 0o644)?;
    }
    let files: Vec<String> = walk(&root)?
        .into_iter()
        .filter(|f| !root.join(f).is_symlink())
        .collect();
    write_file(
        &root.join("SHA256SUMS"),
        sha256sums(&root, &files)?.as_bytes(),
        0o644,
    )?;
    let tar = out.join(format!("{name}.tar.gz"));
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$1" -C "$2" -cf - "$3" | gzip -9n > "$4""#)
        .arg("sh")
        .arg(epoch().to_string())
        .arg(root.parent().expect("tar dir"))
        .arg(&name)
        .arg(&tar);
    run(&mut cmd)?;
    Ok(tar)
}

/// One binary package being assembled.
struct Package {
    name: &'static str,
    section: &'static str,
    depends: Vec<String>,
    multi_arch: &'static str,
    synopsis: &'static str,
    description: &'static str,
    root: PathBuf,
}

/// Moves `rel` from the staged install `stage` into the package root.
fn take(stage: &Path, pkg: &Package, rel: &str) -> io::Result<()> {
    let src = stage.join(rel);
    let dst = pkg.root.join(rel);
    fs::create_dir_all(dst.parent().expect("a parent"))?;
    fs::rename(&src, &dst).map_err(|e| other(format!("{}: {e}", src.display())))
}

/// Compresses `path` in place with `gzip -9n` (Debian's man pages and
/// changelogs).
fn gzip(path: &Path) -> io::Result<()> {
    run(Command::new("gzip").args(["-9nf"]).arg(path)).map(|_| ())
}

/// The `Depends` a binary needs for its ELF `NEEDED` libraries: the highest
/// symbol version it uses of each (what dpkg-shlibdeps would compute from
/// the libraries' shlibs for the two libraries Rust programs link).
pub fn elf_depends(file: &Path) -> io::Result<Vec<String>> {
    let dynamic =
        String::from_utf8_lossy(&run(Command::new("readelf").arg("-dW").arg(file))?.stdout)
            .into_owned();
    let symbols =
        String::from_utf8_lossy(&run(Command::new("objdump").arg("-T").arg(file))?.stdout)
            .into_owned();
    let max_version = |prefix: &str| -> Option<String> {
        symbols
            .split_whitespace()
            .filter_map(|w| {
                w.trim_matches(|c| c == '(' || c == ')')
                    .strip_prefix(prefix)
            })
            .filter_map(|v| {
                let parts: Option<Vec<u32>> = v.split('.').map(|n| n.parse().ok()).collect();
                parts.map(|p| (p, v.to_string()))
            })
            .max()
            .map(|(_, v)| v)
    };
    let mut deps = BTreeMap::new();
    for line in dynamic.lines().filter(|l| l.contains("(NEEDED)")) {
        let lib = line
            .split('[')
            .nth(1)
            .and_then(|s| s.split(']').next())
            .unwrap_or("");
        let (pkg, prefix) = match lib {
            "libc.so.6"
            | "libm.so.6"
            | "libpthread.so.0"
            | "libdl.so.2"
            | "librt.so.1"
            | "libutil.so.1"
            | "ld-linux-x86-64.so.2" => ("libc6", "GLIBC_"),
            "libgcc_s.so.1" => ("libgcc-s1", "GCC_"),
            other_lib => {
                return Err(other(format!(
                    "{} needs {other_lib}: which Debian package provides it?",
                    file.display()
                )))
            }
        };
        let dep = match max_version(prefix) {
            Some(v) => format!("{pkg} (>= {v})"),
            None => pkg.to_string(),
        };
        // libc's libraries all map to one entry with one (the highest
        // GLIBC_) version.
        deps.insert(pkg, dep);
    }
    Ok(deps.into_values().collect())
}

/// The maintainer named in the packages: `DEBFULLNAME <DEBEMAIL>` when
/// both are set, else the author of the checked-out commit.
fn maintainer() -> io::Result<String> {
    if let (Ok(n), Ok(e)) = (std::env::var("DEBFULLNAME"), std::env::var("DEBEMAIL")) {
        return Ok(format!("{n} <{e}>"));
    }
    let out = run(Command::new("git").current_dir(workspace_root()).args([
        "log",
        "-1",
        "--format=%an <%ae>",
    ]))
    .map_err(|e| {
        other(format!(
            "set DEBFULLNAME and DEBEMAIL for the packages' Maintainer ({e})"
        ))
    })?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The Debian copyright file (machine-readable format).
pub fn debian_copyright() -> io::Result<String> {
    let mit = fs::read_to_string(workspace_root().join("LICENSE-MIT"))?;
    let mit_body: String = mit
        .lines()
        .skip_while(|l| !l.starts_with("Permission is hereby granted"))
        .map(|l| {
            if l.is_empty() {
                " .\n".to_string()
            } else {
                format!(" {l}\n")
            }
        })
        .collect();
    Ok(format!(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
         Upstream-Name: kcmp\n\
         Comment: The programs are written in Rust and statically include the Rust\n \
         standard library and the crates listed in the source's Cargo.lock, which\n \
         are under MIT, Apache-2.0, Unlicense, Unicode-3.0 or compatible terms.\n\
         \n\
         Files: *\n\
         Copyright: 2026 the kcmp authors\n\
         License: MIT or Apache-2.0\n\
         \n\
         License: MIT\n{mit_body}\
         \n\
         License: Apache-2.0\n \
         Licensed under the Apache License, Version 2.0 (the \"License\");\n \
         you may not use this file except in compliance with the License.\n \
         You may obtain a copy of the License at\n \
         .\n \
         http://www.apache.org/licenses/LICENSE-2.0\n \
         .\n \
         Unless required by applicable law or agreed to in writing, software\n \
         distributed under the License is distributed on an \"AS IS\" BASIS,\n \
         WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.\n \
         See the License for the specific language governing permissions and\n \
         limitations under the License.\n \
         .\n \
         On Debian systems, the complete text of the Apache License, Version 2.0\n \
         can be found in \"/usr/share/common-licenses/Apache-2.0\".\n"
    ))
}

/// RFC 2822 date of `secs` (UTC), for the Debian changelog.
fn rfc2822(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = crate::civil_from_days(days);
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let mon = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][m as usize - 1];
    format!(
        "{wd}, {d:02} {mon} {y} {:02}:{:02}:{:02} +0000",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The Debian changelog of a native package `name`: one entry for this
/// version, pointing at CHANGELOG.md's section.
fn debian_changelog(name: &str, maintainer: &str) -> String {
    format!(
        "{name} ({v}) unstable; urgency=medium\n\n  \
         * Release {v}; the upstream CHANGELOG.md lists the changes.\n\n \
         -- {maintainer}  {date}\n",
        v = version(),
        date = rfc2822(epoch())
    )
}

/// Installs into a `/usr` staging root, splits it into the three packages
/// and builds each with `dpkg-deb`.
fn debs(dir: &Path, work: &Path, out: &Path) -> io::Result<Vec<PathBuf>> {
    let (deb_arch, triplet) = arch()?;
    let v = version();
    let stage = work.join("stage");
    let libdir = format!("lib/{triplet}");
    let layout = Layout::new(Path::new("/usr"))
        .with_destdir(&stage)
        .with_libdir(&libdir);
    install_built(&layout, dir)?;
    let usr = stage.join("usr");
    let lib = format!("usr/{libdir}");
    let real = format!("libkcmp.so.{v}");
    let soname = format!("libkcmp.so.{SONAME_MAJOR}");
    let shared = format!("libkcmp{SONAME_MAJOR}");

    let mut kcmp = Package {
        name: "kcmp",
        section: "utils",
        depends: elf_depends(&usr.join("bin/kcmp"))?,
        multi_arch: "foreign",
        synopsis: "compare kernel resources of processes with kcmp(2)",
        description: "kcmp tells whether two processes share one kernel object: an open\n \
            file description, address space, fd table, fs struct, signal\n \
            handlers, I/O context, SysV undo list or epoll registration. It maps\n \
            what every process of a host shares (kcmp scan), lists the holders\n \
            of a file description (why a pipe never sees EOF), resolves epoll\n \
            registrations, and reports what the kernel supports (kcmp doctor).",
        root: work.join("pkg/kcmp"),
    };
    let mut lib0 = Package {
        name: "libkcmp0",
        section: "libs",
        depends: elf_depends(&stage.join(&lib).join(&real))?,
        multi_arch: "same",
        synopsis: "C wrapper for the kcmp(2) system call",
        description: "libkcmp provides kcmp(), the system call wrapper that glibc lacks,\n \
            and two higher-level calls: kcmp_same_file() tells whether two file\n \
            descriptors share one open file description, kcmp_holders() lists\n \
            every process and fd holding it, with fallbacks where kcmp(2) is\n \
            unavailable.\n \
            .\n \
            This package contains the shared library.",
        root: work.join(format!("pkg/{shared}")),
    };
    let dev = Package {
        name: "libkcmp-dev",
        section: "libdevel",
        depends: vec![format!("{shared} (= {v})")],
        multi_arch: "same",
        synopsis: "C wrapper for the kcmp(2) system call - development files",
        description: "libkcmp provides kcmp(), the system call wrapper that glibc lacks,\n \
            and two higher-level calls: kcmp_same_file() tells whether two file\n \
            descriptors share one open file description, kcmp_holders() lists\n \
            every process and fd holding it.\n \
            .\n \
            This package contains the header, the static library, the\n \
            pkg-config file and the kcmp(3) manual page.",
        root: work.join("pkg/libkcmp-dev"),
    };

    // The command.
    take(&stage, &kcmp, "usr/bin/kcmp")?;
    for page in fs::read_dir(usr.join("share/man/man1"))? {
        let name = page?.file_name().to_string_lossy().into_owned();
        take(&stage, &kcmp, &format!("usr/share/man/man1/{name}"))?;
        gzip(&kcmp.root.join(format!("usr/share/man/man1/{name}")))?;
    }
    take(&stage, &kcmp, "usr/share/bash-completion/completions/kcmp")?;
    take(
        &stage,
        &kcmp,
        "usr/share/fish/vendor_completions.d/kcmp.fish",
    )?;
    // Debian's zsh looks in vendor-completions for packaged functions
    // (site-functions is the local administrator's).
    let zsh = kcmp.root.join("usr/share/zsh/vendor-completions/_kcmp");
    fs::create_dir_all(zsh.parent().expect("a parent"))?;
    fs::rename(usr.join("share/zsh/site-functions/_kcmp"), &zsh)?;

    // The shared library: mode 0644 as Debian wants, its soname link.
    take(&stage, &lib0, &format!("{lib}/{real}"))?;
    set_mode(&lib0.root.join(&lib).join(&real), 0o644)?;
    std::os::unix::fs::symlink(&real, lib0.root.join(&lib).join(&soname))?;
    fs::remove_file(stage.join(&lib).join(&soname))?;

    // The development files; libkcmp.so points at the real file.
    take(&stage, &dev, &format!("{lib}/libkcmp.a"))?;
    std::os::unix::fs::symlink(&real, dev.root.join(&lib).join("libkcmp.so"))?;
    fs::remove_file(stage.join(&lib).join("libkcmp.so"))?;
    take(&stage, &dev, &format!("{lib}/pkgconfig/kcmp.pc"))?;
    take(&stage, &dev, "usr/include/kcmp.h")?;
    take(&stage, &dev, "usr/share/man/man3/kcmp.3")?;
    gzip(&dev.root.join("usr/share/man/man3/kcmp.3"))?;

    // Rust code is not built with the C headers' _FORTIFY_SOURCE; lintian
    // (info) cannot tell that from unfortified C.
    for (pkg, file) in [
        (&kcmp, "usr/bin/kcmp".to_string()),
        (&lib0, format!("{lib}/{real}")),
    ] {
        write_file(
            &pkg.root
                .join(format!("usr/share/lintian/overrides/{}", pkg.name)),
            format!(
                "# Rust code: glibc's _FORTIFY_SOURCE applies to C compiled with its\n\
                 # headers; Rust's std calls memcpy and friends with checked lengths.\n\
                 {}: hardening-no-fortify-functions [{file}]\n",
                pkg.name
            )
            .as_bytes(),
            0o644,
        )?;
    }
    let maintainer = maintainer()?;
    let copyright = debian_copyright()?;
    lib0.depends.sort();
    kcmp.depends.sort();
    let mut made = Vec::new();
    for pkg in [&kcmp, &lib0, &dev] {
        let doc = pkg.root.join(format!("usr/share/doc/{}", pkg.name));
        write_file(&doc.join("copyright"), copyright.as_bytes(), 0o644)?;
        write_file(
            &doc.join("changelog.gz"),
            debian_changelog(pkg.name, &maintainer).as_bytes(),
            0o644,
        )?;
        fs::rename(doc.join("changelog.gz"), doc.join("changelog"))?;
        gzip(&doc.join("changelog"))?;
        let control = pkg.root.join("DEBIAN");
        fs::create_dir_all(&control)?;
        if pkg.name == shared {
            write_file(
                &control.join("shlibs"),
                format!("libkcmp {SONAME_MAJOR} {shared} (>= {v})\n").as_bytes(),
                0o644,
            )?;
            let mut symbols =
                format!("{soname} {shared} #MINVER#\n* Build-Depends-Package: libkcmp-dev\n");
            for s in EXPORTED_SYMBOLS {
                symbols.push_str(&format!(" {s}@Base {v}\n"));
            }
            write_file(&control.join("symbols"), symbols.as_bytes(), 0o644)?;
            write_file(
                &control.join("triggers"),
                b"activate-noawait ldconfig\n",
                0o644,
            )?;
        }
        made.push(build_deb(pkg, &maintainer, deb_arch, out)?);
    }
    let left = walk(&stage)?;
    if !left.is_empty() {
        return Err(other(format!("files in no package: {left:?}")));
    }
    Ok(made)
}

fn set_mode(p: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
}

/// Writes `DEBIAN/control` and `DEBIAN/md5sums`, normalises modes and runs
/// `dpkg-deb --build`.
fn build_deb(pkg: &Package, maintainer: &str, deb_arch: &str, out: &Path) -> io::Result<PathBuf> {
    let files = walk(&pkg.root)?;
    let mut bytes = 0u64;
    let mut payload = Vec::new();
    for f in &files {
        if f.starts_with("DEBIAN/") {
            continue;
        }
        let p = pkg.root.join(f);
        let meta = fs::symlink_metadata(&p)?;
        if meta.file_type().is_file() {
            bytes += meta.len();
            payload.push(f.clone());
        }
    }
    set_dir_modes(&pkg.root)?;
    let md5 = run(Command::new("md5sum")
        .current_dir(&pkg.root)
        .arg("--")
        .args(&payload))?;
    write_file(&pkg.root.join("DEBIAN/md5sums"), &md5.stdout, 0o644)?;
    let mut control = format!(
        "Package: {}\n\
         Version: {}\n\
         Architecture: {deb_arch}\n\
         Maintainer: {maintainer}\n\
         Installed-Size: {}\n",
        pkg.name,
        version(),
        bytes.div_ceil(1024) + 1
    );
    if !pkg.depends.is_empty() {
        control.push_str(&format!("Depends: {}\n", pkg.depends.join(", ")));
    }
    control.push_str(&format!(
        "Section: {}\n\
         Priority: optional\n\
         Multi-Arch: {}\n\
         Description: {}\n {}\n",
        pkg.section, pkg.multi_arch, pkg.synopsis, pkg.description
    ));
    write_file(&pkg.root.join("DEBIAN/control"), control.as_bytes(), 0o644)?;
    let deb = out.join(format!("{}_{}_{deb_arch}.deb", pkg.name, version()));
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zxz", "--build"])
        .arg(&pkg.root)
        .arg(&deb)
        .env("SOURCE_DATE_EPOCH", epoch().to_string()))?;
    Ok(deb)
}

fn set_dir_modes(dir: &Path) -> io::Result<()> {
    set_mode(dir, 0o755)?;
    for e in fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            set_dir_modes(&e.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2822_dates_have_the_right_weekday() {
        assert_eq!(rfc2822(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc2822(1_764_288_000 + 3_661),
            "Fri, 28 Nov 2025 01:01:01 +0000"
        );
        assert_eq!(rfc2822(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
    }

    #[test]
    fn debian_copyright_carries_both_licenses() {
        let c = debian_copyright().unwrap();
        assert!(c.starts_with(
            "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
        ));
        assert!(c.contains("\nCopyright: 2026 the kcmp authors\n"));
        assert!(c.contains("\nLicense: MIT or Apache-2.0\n"));
        assert!(c.contains("\n Permission is hereby granted"));
        assert!(c.contains("/usr/share/common-licenses/Apache-2.0"));
    }
}
