//! The man pages show value placeholders (`--pid PID`) and each page's exit
//! statuses and examples.

#[test]
fn man_pages_show_placeholders_and_exit_statuses() {
    let pages = xtask::man_pages().unwrap();
    let page = |name: &str| -> String {
        let (_, roff) = pages
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no {name}"));
        String::from_utf8_lossy(roff).into_owned()
    };
    let scan = page("kcmp-scan.1");
    if std::env::var_os("KCMP_SHOW_MAN").is_some() {
        println!("{scan}");
    }
    for flag in [
        "pid",
        "tree",
        "comm",
        "user",
        "kind",
        "path",
        "min\\-holders",
    ] {
        let needle = format!("\\-\\-{flag}");
        let at = scan
            .find(&needle)
            .unwrap_or_else(|| panic!("{needle}: {scan}"));
        let line = scan[at..].lines().next().unwrap();
        assert!(
            line.contains("\\fI"),
            "no placeholder after {needle}: {line}"
        );
    }
    for name in [
        "kcmp-file.1",
        "kcmp-scan.1",
        "kcmp-holders.1",
        "kcmp-epoll-targets.1",
        "kcmp-doctor.1",
        "kcmp-demo.1",
    ] {
        let p = page(name);
        assert!(p.contains("Exit status:"), "{name}: {p}");
        assert!(p.contains(".SH EXAMPLES"), "{name}: {p}");
    }
    let synopsis = scan
        .lines()
        .skip_while(|l| *l != ".SH SYNOPSIS")
        .nth(1)
        .unwrap();
    assert!(
        synopsis.contains("[\\fB\\-\\-pid\\fR \\fIPID\\fR]"),
        "{synopsis}"
    );
    assert!(
        synopsis.contains("[\\fB\\-\\-min\\-holders\\fR \\fIN\\fR]"),
        "{synopsis}"
    );
    assert!(page("kcmp-epoll-tfd.1").contains("[\\fB\\-\\-toff\\fR \\fIN\\fR]"));
}
