//! Colour on terminals only (not `TERM=dumb`), honouring NO_COLOR.

use std::io::IsTerminal;

/// Whether to colour stdout: a terminal that is not `TERM=dumb`, and
/// NO_COLOR unset or empty.
pub fn colour_stdout() -> bool {
    std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
}

/// Terminal styles (no-ops when colour is off).
#[derive(Debug, Clone, Copy)]
pub struct Style {
    on: bool,
}

impl Style {
    /// Styles for stdout.
    pub fn stdout() -> Self {
        Style {
            on: colour_stdout(),
        }
    }

    /// No styling (for stderr and files).
    pub fn plain() -> Self {
        Style { on: false }
    }

    fn wrap(&self, code: &str, text: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// Bold.
    pub fn bold(&self, t: &str) -> String {
        self.wrap("1", t)
    }
    /// Dim.
    pub fn dim(&self, t: &str) -> String {
        self.wrap("2", t)
    }
    /// Yellow, for warnings and findings.
    pub fn warn(&self, t: &str) -> String {
        self.wrap("33", t)
    }
    /// Cyan, for targets.
    pub fn target(&self, t: &str) -> String {
        self.wrap("36", t)
    }
}
