//! libkcmp from C, the way users build against it: the library artifacts of
//! this build are installed into a temporary prefix with the same code as
//! `cargo xtask install` ([`xtask::install_c_library`]), then C programs are
//! compiled with `cc prog.c $(pkg-config --cflags --libs kcmp)` and run
//! against the real kernel.

use kcmp_testkit::cli::{assert_success, text};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use xtask::{CArtifacts, Layout, TempDir};

/// Every test holds this for reading; the test that lists the holders of
/// one of this process's fds holds it for writing. A process spawned by
/// another test holds copies of all our fds between its fork and its exec,
/// and would show up as a holder.
static SPAWNS: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    SPAWNS.read().unwrap_or_else(|e| e.into_inner())
}

fn exclusive() -> RwLockWriteGuard<'static, ()> {
    SPAWNS.write().unwrap_or_else(|e| e.into_inner())
}

/// A temporary prefix with libkcmp installed.
struct Prefix {
    dir: TempDir,
    layout: Layout,
}

impl Prefix {
    fn new() -> Prefix {
        let dir = TempDir::new("kcmp-ffi-test").expect("temporary directory");
        let layout = Layout::new(dir.path());
        xtask::install_c_library(&layout, &artifacts()).expect("installing libkcmp");
        Prefix { dir, layout }
    }

    /// Compiles `source` (relative to the crate) with pkg-config.
    fn compile(&self, source: &str, extra: &[&str]) -> PathBuf {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(source);
        let exe = self.dir.path().join(
            Path::new(source)
                .file_stem()
                .expect("a file name")
                .to_str()
                .expect("UTF-8"),
        );
        xtask::cc_with_pkg_config(&self.layout, &[&src], &exe, extra)
            .unwrap_or_else(|e| panic!("compiling {source}: {e}"));
        exe
    }

    /// Runs `exe` with the prefix's lib dir on LD_LIBRARY_PATH.
    fn run(&self, exe: &Path, args: &[&str]) -> Output {
        Command::new(exe)
            .args(args)
            .env("LD_LIBRARY_PATH", self.layout.lib_dir())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", exe.display()))
    }
}

/// The cdylib and staticlib cargo built for this test: the package's lib
/// target is built with all its crate types into `deps/` before its tests
/// (`cargo test` does not copy them up to the profile directory, so a copy
/// there may be stale).
fn artifacts() -> CArtifacts {
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("deps dir");
    CArtifacts::in_dir(deps).expect("libkcmp_ffi.so and libkcmp_ffi.a next to the test binary")
}

/// The dynamic section's NEEDED entries of an ELF file.
fn needed(exe: &Path) -> Vec<String> {
    let out = Command::new("readelf")
        .arg("-d")
        .arg(exe)
        .output()
        .expect("readelf (binutils) is needed to inspect the binary");
    assert_success("readelf -d", &out);
    text(&out.stdout)
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| l.split('[').nth(1)?.split(']').next().map(String::from))
        .collect()
}

/// Checks the man page example's output: three comparisons, the first
/// between the child and its parent, answering same / different / same.
fn check_example_output(out: &Output) {
    assert_success("kcmp-example", out);
    let stdout = text(&out.stdout);
    let number_after = |prefix: &str| -> i32 {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no line {prefix:?} in:\n{stdout}"))
            .trim()
            .parse()
            .expect("a pid")
    };
    let parent = number_after("Parent PID is ");
    let child = number_after("PID of child of fork() is ");
    let results: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.split_once(" ==> ").map(|(_, r)| r))
        .collect();
    assert_eq!(results, ["same", "different", "same"], "output:\n{stdout}");
    let first = stdout
        .lines()
        .find(|l| l.contains(" ==> "))
        .expect("a comparison line");
    assert!(
        first.contains(&format!("kcmp({child}, {parent}, KCMP_FILE, ")),
        "the first comparison is child against parent: {first}"
    );
}

#[test]
fn man_page_example_prints_same_different_same() {
    let _spawns = shared();
    let prefix = Prefix::new();
    let exe = prefix.compile("examples/kcmp-example.c", &[]);
    assert!(
        needed(&exe).contains(&"libkcmp.so.0".to_string()),
        "linked against the soname libkcmp.so.0: {:?}",
        needed(&exe)
    );
    check_example_output(&prefix.run(&exe, &[]));
}

#[test]
fn man_page_example_links_statically() {
    let _spawns = shared();
    let prefix = Prefix::new();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/kcmp-example.c");
    let exe = prefix.dir.path().join("kcmp-example-static");
    // As kcmp(3) says: cc -static prog.c $(pkg-config --static --cflags --libs kcmp).
    // With -static the linker takes libkcmp.a for -lkcmp; Libs.private must
    // name no library that exists only shared (-lgcc_s did).
    xtask::cc_static_with_pkg_config(&prefix.layout, &[&src], &exe, &[])
        .unwrap_or_else(|e| panic!("cc -static: {e}"));
    assert!(
        needed(&exe).is_empty(),
        "a static executable needs no shared library: {:?}",
        needed(&exe)
    );
    let libs = Command::new("pkg-config")
        .args(["--static", "--libs", "kcmp"])
        .env("PKG_CONFIG_PATH", prefix.layout.pkgconfig_dir())
        .output()
        .expect("pkg-config");
    assert!(
        !text(&libs.stdout).contains("-lgcc_s"),
        "{}",
        text(&libs.stdout)
    );
    let out = Command::new(&exe)
        .output()
        .expect("running the static example");
    check_example_output(&out);
}

/// Compiles tests/c/api_test.c and runs one of its groups of checks.
fn api_test(group: &str) {
    let prefix = Prefix::new();
    let exe = prefix.compile("tests/c/api_test.c", &["-Wall", "-Wextra", "-Werror"]);
    let out = prefix.run(&exe, &[group]);
    assert_success(&format!("api_test {group}"), &out);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("all checks passed"), "{stdout}");
    assert!(stdout.lines().filter(|l| l.starts_with("ok: ")).count() > 5);
}

#[test]
fn c_kcmp_returns_exactly_what_the_syscall_returns() {
    let _spawns = shared();
    api_test("kcmp");
}

#[test]
fn c_same_file_answers_and_sets_errno() {
    let _spawns = shared();
    api_test("same_file");
}

#[test]
fn c_holders_lists_every_holder_and_sets_errno() {
    let _spawns = shared();
    api_test("holders");
}

#[test]
fn c_same_file_and_holders_fall_back_when_a_seccomp_filter_returns_enosys() {
    let _spawns = shared();
    api_test("fallback-enosys");
}

#[test]
fn c_same_file_and_holders_fall_back_when_a_seccomp_filter_returns_eperm() {
    let _spawns = shared();
    api_test("fallback-eperm");
}

#[test]
fn holders_example_lists_this_process_fds() {
    let _spawns = exclusive();
    let prefix = Prefix::new();
    let exe = prefix.compile("examples/kcmp-holders.c", &[]);
    let f = std::fs::File::open("/dev/null").unwrap();
    let g = f.try_clone().unwrap();
    let me = std::process::id().to_string();
    let out = prefix.run(&exe, &[&me, &f.as_raw_fd().to_string()]);
    assert_success("kcmp-holders", &out);
    let mut want = vec![
        format!("{me} {}", f.as_raw_fd()),
        format!("{me} {}", g.as_raw_fd()),
    ];
    want.sort_by_key(|l| l.split(' ').nth(1).unwrap().parse::<i32>().unwrap());
    let got: Vec<String> = text(&out.stdout).lines().map(String::from).collect();
    assert_eq!(got, want);

    let out = prefix.run(&exe, &[&me, "1000000"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("Bad file descriptor"));
}

#[test]
fn header_compiles_as_strict_c99_and_as_cplusplus() {
    let _spawns = shared();
    let prefix = Prefix::new();
    let tmp = prefix.dir.path();
    let body = "#include <kcmp.h>\nint main(void) { struct kcmp_holder *h = 0; \
                kcmp_holders_free(h); return kcmp(1, 1, KCMP_VM, 0, 0) == 7; }\n";
    for (compiler, file, std) in [("cc", "h.c", "-std=c99"), ("c++", "h.cc", "-std=c++11")] {
        let src = tmp.join(file);
        std::fs::write(&src, body).unwrap();
        let out = Command::new(compiler)
            .args([
                std,
                "-Wall",
                "-Wextra",
                "-pedantic",
                "-Werror",
                "-fsyntax-only",
            ])
            .arg(format!("-I{}", prefix.layout.include_dir().display()))
            .arg(&src)
            .output()
            .unwrap_or_else(|e| panic!("{compiler}: {e}"));
        assert_success(&format!("{compiler} {std}"), &out);
    }
}

#[test]
fn pkg_config_file_names_the_prefix() {
    let _spawns = shared();
    let prefix = Prefix::new();
    let query = |args: &[&str]| {
        let out = Command::new("pkg-config")
            .args(args)
            .arg("kcmp")
            .env("PKG_CONFIG_PATH", prefix.layout.pkgconfig_dir())
            .output()
            .expect("pkg-config");
        assert_success("pkg-config", &out);
        text(&out.stdout).trim().to_string()
    };
    let p = prefix.dir.path().display().to_string();
    assert_eq!(query(&["--variable=prefix"]), p);
    assert_eq!(query(&["--modversion"]), xtask::version());
    assert_eq!(query(&["--cflags"]), format!("-I{p}/include"));
    assert_eq!(query(&["--libs"]), format!("-L{p}/lib -lkcmp"));
    let static_libs = query(&["--static", "--libs"]);
    assert!(static_libs.contains("-lc"), "{static_libs}");
    assert!(!static_libs.contains("-lgcc_s"), "{static_libs}");
}
