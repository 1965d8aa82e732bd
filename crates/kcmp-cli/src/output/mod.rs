//! Output formats: human text (with colour on terminals), JSON, Graphviz.

pub mod epoll;
pub mod progress;
pub mod scan;
pub mod style;

/// Writes to stdout; a closed pipe (`kcmp scan | head`) is not an error.
pub fn write_stdout(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}
