//! Escaping names for terminals and Graphviz, as `ls -b` does: control
//! characters become `\n`, `\t`, `\x1b`, …; invalid UTF-8 bytes `\xNN`; a
//! backslash `\\`. Printable text, UTF-8 included, passes unchanged. A file
//! name can thus neither move the cursor nor forge an output line.

use std::fmt::Write as _;

/// Escapes bytes (a link text read as bytes, a comm).
///
/// ```
/// use kcmp_cli::output::escape::escape_bytes;
/// assert_eq!(escape_bytes(b"/tmp/a\x1b[31mb\nc"), "/tmp/a\\x1b[31mb\\nc");
/// assert_eq!(escape_bytes(b"caf\xc3\xa9 \xff"), "caf\u{e9} \\xff");
/// assert_eq!(escape_bytes(b"a\\b"), "a\\\\b");
/// ```
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        push_escaped(&mut out, chunk.valid());
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// Escapes a string (see [`escape_bytes`]); borrows when nothing needs it.
///
/// ```
/// use kcmp_cli::output::escape::escape;
/// assert_eq!(escape("socket:[5]"), "socket:[5]");
/// assert_eq!(escape("a\tb\u{7f}\u{9b}"), "a\\tb\\x7f\\xc2\\x9b");
/// ```
pub fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    if s.chars().all(|c| !needs_escape(c)) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    push_escaped(&mut out, s);
    std::borrow::Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control() || c == '\\'
}

fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0b' => out.push_str("\\v"),
            '\x0c' => out.push_str("\\f"),
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(out, "\\x{b:02x}");
                }
            }
            c => out.push(c),
        }
    }
}

/// The bytes of a name when it is not valid UTF-8 and `lossy` (its text
/// with U+FFFD) is what they decode to; `None` otherwise. Reads the link
/// `/proc/PID/fd/FD` again, for commands whose engine result has no bytes
/// (`scan` uses the engine's: `OpenFileDescription::target_bytes`).
pub fn link_bytes(pid: kcmp::Pid, fd: kcmp::FdNum, lossy: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStringExt;
    if !lossy.contains('\u{fffd}') {
        return None;
    }
    let raw = std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
        .ok()?
        .into_os_string()
        .into_vec();
    (std::str::from_utf8(&raw).is_err() && String::from_utf8_lossy(&raw) == lossy).then_some(raw)
}

/// The name of a description for people: its bytes escaped when known
/// ([`link_bytes`]), else its text escaped.
pub fn display_name(text: &str, bytes: Option<&[u8]>) -> String {
    match bytes {
        Some(b) => escape_bytes(b),
        None => escape(text).into_owned(),
    }
}
