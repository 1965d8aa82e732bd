//! `cargo xtask install` into a temporary prefix: every file is there, the
//! binary and library work, the man pages render, the completions load; the
//! shipped sizes hold and a fully static program links against libkcmp.a.
//!
//! Builds with the `dist` profile, the one `cargo xtask install` uses,
//! through the same [`xtask::install`] the command runs (in a target
//! directory of its own; `.ci/run` then makes `cargo xtask dist` from that
//! same build instead of building the profile a second time).

use kcmp_testkit::cli::{assert_success, text};
use std::path::Path;
use std::process::Command;
use xtask::{InstallOptions, Layout, TempDir};

/// The shipping profile, and a target directory of the install's own next
/// to this build's: building in the running cargo's target directory would
/// wait for the lock the running `cargo test` holds.
fn build_options() -> InstallOptions {
    let exe = std::env::current_exe().unwrap();
    let target = exe
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .expect("target/PROFILE/deps");
    InstallOptions {
        profile: xtask::DIST_PROFILE.to_string(),
        target_dir: Some(target.join("xtask-install-test")),
    }
}

/// Section names of an ELF file, or of every member of an archive.
fn sections(file: &Path) -> Vec<String> {
    let out = Command::new("readelf")
        .args(["-S", "-W"])
        .arg(file)
        .output()
        .expect("readelf");
    assert_success("readelf -S", &out);
    text(&out.stdout)
        .lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let rest = l.strip_prefix('[')?.split_once(']')?.1;
            rest.split_whitespace().next().map(String::from)
        })
        .collect()
}

/// What a packager and a C user get: small files, no debug info or LLVM
/// bitcode, an archive binutils' nm reads without a complaint, and a fully
/// static link with the documented command.
fn check_shipped_artifacts(prefix: &Path) {
    const MIB: u64 = 1 << 20;
    let v = xtask::version();
    for (rel, limit) in [
        ("bin/kcmp".to_string(), 3 * MIB),
        (format!("lib/libkcmp.so.{v}"), MIB),
        ("lib/libkcmp.a".to_string(), 8 * MIB),
    ] {
        let path = prefix.join(&rel);
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size <= limit, "{rel} is {size} bytes, over {limit}");
        let bad: Vec<String> = sections(&path)
            .into_iter()
            .filter(|s| s == ".llvmbc" || s == ".llvmcmd" || s.starts_with(".debug_"))
            .collect();
        assert!(bad.is_empty(), "{rel} has {bad:?}");
    }
    let out = Command::new("nm")
        .arg(prefix.join("lib/libkcmp.a"))
        .output()
        .expect("nm");
    assert_success("nm libkcmp.a", &out);
    assert!(
        out.stderr.is_empty(),
        "nm complains:\n{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).lines().any(|l| l.ends_with(" T kcmp")),
        "nm lists kcmp"
    );

    let tmp = TempDir::new("xtask-static-test").unwrap();
    let exe = tmp.path().join("kcmp-example-static");
    xtask::cc_static_with_pkg_config(
        &Layout::new(prefix),
        &[&xtask::example_c_source()],
        &exe,
        &[],
    )
    .expect("cc -static prog.c $(pkg-config --static --cflags --libs kcmp)");
    let out = Command::new("readelf")
        .arg("-d")
        .arg(&exe)
        .output()
        .unwrap();
    assert!(
        text(&out.stdout).contains("There is no dynamic section"),
        "statically linked: {}",
        text(&out.stdout)
    );
    let out = Command::new(&exe).output().unwrap();
    assert_success("the static example", &out);
    let results: Vec<String> = text(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(" ==> ").map(|(_, r)| r.to_string()))
        .collect();
    assert_eq!(
        results,
        ["same", "different", "same"],
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn install_puts_every_file_in_place_and_each_works() {
    let tmp = TempDir::new("xtask-install-test").unwrap();
    let prefix = tmp.path().join("usr");
    let layout = Layout::new(&prefix);
    let installed = xtask::install(&layout, &build_options()).expect("cargo xtask install");

    // Every listed file exists.
    let mut expected: Vec<String> = [
        "bin/kcmp",
        "lib/libkcmp.so",
        "lib/libkcmp.so.0",
        "lib/libkcmp.a",
        "include/kcmp.h",
        "lib/pkgconfig/kcmp.pc",
        "share/man/man1/kcmp.1",
        "share/man/man3/kcmp.3",
        "share/bash-completion/completions/kcmp",
        "share/zsh/site-functions/_kcmp",
        "share/fish/vendor_completions.d/kcmp.fish",
    ]
    .map(String::from)
    .to_vec();
    expected.push(format!("lib/libkcmp.so.{}", xtask::version()));
    let cmd = kcmp_cli::command();
    let subs: Vec<String> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| s.get_name().to_string())
        .collect();
    assert!(subs.iter().any(|s| s == "file") && subs.iter().any(|s| s == "scan"));
    for s in &subs {
        expected.push(format!("share/man/man1/kcmp-{s}.1"));
    }
    for rel in &expected {
        let p = prefix.join(rel);
        assert!(p.is_file(), "{} is missing", p.display());
        assert!(
            installed.contains(&p),
            "{} not reported as installed",
            p.display()
        );
    }
    assert_eq!(installed.len(), expected.len(), "{installed:#?}");
    check_shipped_artifacts(&prefix);

    // The library links: libkcmp.so -> libkcmp.so.0 -> libkcmp.so.X.Y.Z,
    // whose soname is libkcmp.so.0.
    let lib = prefix.join("lib");
    assert_eq!(
        std::fs::read_link(lib.join("libkcmp.so")).unwrap(),
        Path::new("libkcmp.so.0")
    );
    assert_eq!(
        std::fs::read_link(lib.join("libkcmp.so.0")).unwrap(),
        Path::new(&format!("libkcmp.so.{}", xtask::version()))
    );
    let out = Command::new("readelf")
        .arg("-d")
        .arg(lib.join("libkcmp.so"))
        .output()
        .expect("readelf");
    assert_success("readelf", &out);
    assert!(text(&out.stdout).contains("Library soname: [libkcmp.so.0]"));
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(lib.join("libkcmp.so"))
        .output()
        .expect("nm");
    assert_success("nm", &out);
    let exported = text(&out.stdout);
    for sym in [
        "kcmp",
        "kcmp_same_file",
        "kcmp_holders",
        "kcmp_holders_free",
    ] {
        assert!(
            exported.lines().any(|l| l.ends_with(&format!(" T {sym}"))),
            "{sym} is exported"
        );
    }

    // The binary runs.
    let out = Command::new(prefix.join("bin/kcmp"))
        .arg("--version")
        .output()
        .unwrap();
    assert_success("kcmp --version", &out);
    assert_eq!(
        text(&out.stdout).trim(),
        format!("kcmp {}", xtask::version())
    );

    // kcmp.pc names the prefix.
    let pc = std::fs::read_to_string(prefix.join("lib/pkgconfig/kcmp.pc")).unwrap();
    assert!(
        pc.starts_with(&format!("prefix={}\n", prefix.display())),
        "{pc}"
    );

    // Man pages: roff structure, and groff renders them without a warning.
    let mut pages: Vec<_> = std::fs::read_dir(prefix.join("share/man/man1"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    pages.push(prefix.join("share/man/man3/kcmp.3"));
    for page in &pages {
        let roff = std::fs::read_to_string(page).unwrap();
        for needed in [
            ".TH ",
            ".SH NAME",
            ".SH SYNOPSIS",
            ".SH DESCRIPTION",
            ".SH \"SEE ALSO\"",
        ] {
            let found = roff.contains(needed)
                || (needed == ".SH \"SEE ALSO\"" && roff.contains(".SH SEE ALSO"));
            assert!(found, "{} lacks {needed}", page.display());
        }
        let out = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(page)
            .output()
            .expect("groff is needed to check the man pages");
        assert_success(&format!("groff {}", page.display()), &out);
        assert!(
            out.stderr.is_empty(),
            "groff warns on {}:\n{}",
            page.display(),
            text(&out.stderr)
        );
    }
    let out = Command::new("groff")
        .args(["-man", "-Tutf8", "-P-cbou"])
        .arg(prefix.join("share/man/man1/kcmp.1"))
        .output()
        .unwrap();
    let rendered = text(&out.stdout);
    assert!(rendered.contains("kcmp-file(1)"), "{rendered}");
    assert!(rendered.contains("EXAMPLES"), "{rendered}");
    let kcmp3 = Command::new("groff")
        .args(["-man", "-Tutf8", "-P-cbou"])
        .arg(prefix.join("share/man/man3/kcmp.3"))
        .output()
        .unwrap();
    let rendered3 = text(&kcmp3.stdout);
    let th = std::fs::read_to_string(prefix.join("share/man/man3/kcmp.3")).unwrap();
    assert!(
        th.contains(&format!("\"libkcmp {}\"", xtask::version())),
        "kcmp.3's .TH names the current version"
    );
    for word in [
        "kcmp_same_file",
        "kcmp_holders_free",
        "OWNERSHIP",
        "ERRORS",
        "EXAMPLES",
        "cc -static prog.c $(pkg-config --static --cflags --libs kcmp)",
    ] {
        assert!(rendered3.contains(word), "kcmp.3 lacks {word}");
    }

    // Completions: bash sources the file and registers kcmp; zsh and fish
    // files have their shells' shape (bash is the one shell installed here).
    let bash = prefix.join("share/bash-completion/completions/kcmp");
    let out = Command::new("bash")
        .arg("--norc")
        .arg("-c")
        .arg(r#"set -e; source "$1"; complete -p kcmp"#)
        .arg("bash")
        .arg(&bash)
        .output()
        .expect("bash");
    assert_success("sourcing the bash completion", &out);
    assert!(text(&out.stdout).contains("kcmp"), "{}", text(&out.stdout));
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    let zsh = std::fs::read_to_string(prefix.join("share/zsh/site-functions/_kcmp")).unwrap();
    assert!(zsh.starts_with("#compdef kcmp"), "{zsh}");
    let fish =
        std::fs::read_to_string(prefix.join("share/fish/vendor_completions.d/kcmp.fish")).unwrap();
    assert!(fish.contains("complete -c kcmp"), "{fish}");
    for s in &subs {
        assert!(fish.contains(s.as_str()), "fish completion lacks {s}");
    }
}

#[test]
fn destdir_stages_files_but_pkg_config_names_the_prefix() {
    let tmp = TempDir::new("xtask-destdir-test").unwrap();
    let layout = Layout::new(Path::new("/opt/kcmp")).with_destdir(tmp.path());
    let installed = xtask::install_man_pages(&layout).unwrap();
    assert!(installed
        .iter()
        .all(|p| p.starts_with(tmp.path().join("opt/kcmp/share/man"))));
    let pc = xtask::pkg_config(layout.prefix(), "lib", "1.2.3", "-lc");
    assert!(pc.starts_with("prefix=/opt/kcmp\n"));
    assert!(pc.contains("Version: 1.2.3\n"));
    assert!(pc.contains("Libs.private: -lc\n"));
}

#[test]
fn native_static_libs_lists_the_c_library() {
    let libs = xtask::native_static_libs().unwrap();
    assert!(libs.split_whitespace().any(|l| l == "-lc"), "{libs}");
}
