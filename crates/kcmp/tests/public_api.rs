//! The public API of `kcmp` and `kcmp-map`, kept on purpose.
//!
//! The test documents both crates with rustdoc (stable Rust: the HTML, not
//! the nightly-only JSON) into a target directory of its own, lists every
//! public item from each crate's `all.html` and, from each type's and
//! trait's page, its inherent methods, variants, fields, associated items
//! and trait implementations; then compares the list with
//! `crates/kcmp/tests/public-api.txt` and `crates/kcmp-map/tests/public-api.txt`.
//! An item added, removed or moved fails the test with the difference.
//!
//! After a deliberate change, regenerate both lists with one command and
//! review the diff:
//!
//! ```sh
//! UPDATE_PUBLIC_API=1 cargo test -p kcmp --test public_api
//! ```
//!
//! Members of `kcmp::Errno` are rustix's (a re-export), so only the item
//! itself is listed. Auto-trait and blanket implementations are left out.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// Runs `cargo doc` for both crates into `<target>/public-api` (its own
/// directory: the outer `cargo test` holds the lock of the main one).
fn build_docs() -> PathBuf {
    let root = workspace_root();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("public-api");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(&root)
        .args([
            "doc",
            "--no-deps",
            "--locked",
            "-p",
            "kcmp",
            "-p",
            "kcmp-map",
        ])
        .args(["--features", "kcmp/serde"])
        .arg("--target-dir")
        .arg(&target)
        .env_remove("RUSTDOCFLAGS")
        .output()
        .expect("run cargo doc");
    assert!(
        out.status.success(),
        "cargo doc failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    target.join("doc")
}

/// `%3C` and friends in rustdoc's ids.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).expect("utf-8 id")
}

/// Every `id="…"` of an HTML page, in order.
fn ids(html: &str) -> Vec<&str> {
    html.split("id=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect()
}

/// The items of `all.html`: (kind, path relative to the crate, page).
fn all_items(doc: &Path, krate: &str) -> Vec<(String, String, PathBuf)> {
    let dir = doc.join(krate);
    let html = std::fs::read_to_string(dir.join("all.html")).expect("all.html");
    let mut items = Vec::new();
    for chunk in html.split("<li><a href=\"").skip(1) {
        let Some((href, rest)) = chunk.split_once("\">") else {
            continue;
        };
        let Some((name, _)) = rest.split_once("</a>") else {
            continue;
        };
        let file = href.rsplit('/').next().unwrap_or(href);
        let Some((kind, _)) = file.split_once('.') else {
            continue;
        };
        items.push((kind.to_string(), name.to_string(), dir.join(href)));
    }
    items
}

/// The members of one type or trait page.
fn members(page: &Path, path: &str, out: &mut BTreeSet<String>) {
    let html = std::fs::read_to_string(page).expect("item page");
    let mut in_trait_impls = false;
    for id in ids(&html) {
        match id {
            "trait-implementations" => in_trait_impls = true,
            "synthetic-implementations" | "blanket-implementations" => break,
            _ => {}
        }
        let id = percent_decode(id);
        let line = if let Some(name) = id.strip_prefix("impl-") {
            format!("impl {path}: {name}")
        } else if in_trait_impls {
            continue; // a trait's own methods
        } else if let Some((kind, name)) = id.split_once('.') {
            match kind {
                "method" | "tymethod" | "variant" | "structfield" | "associatedconstant"
                | "associatedtype" => format!("{kind} {path}::{name}"),
                _ => continue,
            }
        } else {
            continue;
        };
        out.insert(line);
    }
}

/// The public API of one crate, one line per item, sorted.
fn public_api(doc: &Path, krate: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (kind, name, page) in all_items(doc, krate) {
        let path = format!("{krate}::{name}");
        out.insert(format!("{kind} {path}"));
        let foreign = path == "kcmp::Errno";
        if !foreign && matches!(kind.as_str(), "struct" | "enum" | "trait" | "union") {
            members(&page, &path, &mut out);
        }
    }
    out
}

fn list_file(krate_dir: &str) -> PathBuf {
    workspace_root()
        .join("crates")
        .join(krate_dir)
        .join("tests/public-api.txt")
}

#[test]
fn public_api_is_kept_on_purpose() {
    let doc = build_docs();
    let update = std::env::var_os("UPDATE_PUBLIC_API").is_some();
    let mut failures = Vec::new();
    for (krate, dir) in [("kcmp", "kcmp"), ("kcmp_map", "kcmp-map")] {
        let got = public_api(&doc, krate);
        assert!(
            got.len() > 20,
            "{krate}: too few items parsed ({}): has rustdoc's HTML changed?",
            got.len()
        );
        let file = list_file(dir);
        if update {
            let text: String = got.iter().map(|l| format!("{l}\n")).collect();
            std::fs::write(&file, text).expect("write the list");
            continue;
        }
        let want: BTreeSet<String> = std::fs::read_to_string(&file)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect();
        let added: Vec<_> = got.difference(&want).collect();
        let removed: Vec<_> = want.difference(&got).collect();
        if !added.is_empty() || !removed.is_empty() {
            failures.push(format!(
                "{krate}: the public API changed ({}):\n  added:   {added:#?}\n  removed: {removed:#?}",
                file.display()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\nIf this is on purpose: UPDATE_PUBLIC_API=1 cargo test -p kcmp --test public_api",
        failures.join("\n")
    );
}

#[test]
fn the_parser_sees_what_a_page_holds() {
    // A page with an inherent method, a trait impl with its own method, and
    // a blanket impl after the cut: only the first two are kept.
    let dir = std::env::temp_dir().join(format!("kcmp-public-api-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("struct.X.html");
    std::fs::write(
        &page,
        r#"<div id="implementations-list"><section id="impl-X"></section>
        <section id="method.new"></section><h2 id="trait-implementations"></h2>
        <section id="impl-From%3Cu32%3E-for-X"></section><section id="method.from"></section>
        <h2 id="blanket-implementations"></h2><section id="impl-Any-for-T"></section>"#,
    )
    .unwrap();
    let mut out = BTreeSet::new();
    members(&page, "c::X", &mut out);
    std::fs::remove_dir_all(&dir).unwrap();
    let want: BTreeSet<String> = [
        "impl c::X: X",
        "method c::X::new",
        "impl c::X: From<u32>-for-X",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(out, want);
}
