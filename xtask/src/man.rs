//! The man pages: section 1 generated from the CLI definition (with a
//! reproducible date), and the hand-written `kcmp.3`.

use crate::{install_file, version, workspace_root, write_file, Layout};
use std::io::{self, Write};
use std::path::PathBuf;

/// The hand-written C API man page (crates/kcmp-ffi/man/kcmp.3).
pub fn man3_source() -> PathBuf {
    workspace_root().join("crates/kcmp-ffi/man/kcmp.3")
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
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
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
