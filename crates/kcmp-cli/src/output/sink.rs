//! Writing to stdout without losing output: every write error ends the
//! command with exit 2 and one line naming the errno
//! (`kcmp: cannot write output: ENOSPC (No space left on device)`); a closed
//! pipe (`kcmp scan | head`) ends it quietly with 141, the status a SIGPIPE
//! death gives in a shell.

use std::io::{self, Write};

/// The exit status for a closed stdout (128 + SIGPIPE).
pub const CLOSED_PIPE: i32 = 141;

/// The one-line message for a failed write: the errno's name and its text.
///
/// ```
/// let e = std::io::Error::from_raw_os_error(libc::ENOSPC);
/// assert_eq!(
///     kcmp_cli::output::sink::write_error_message(&e),
///     "kcmp: cannot write output: ENOSPC (No space left on device)"
/// );
/// ```
pub fn write_error_message(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => {
            let name = kcmp::errno_name(rustix::io::Errno::from_raw_os_error(n));
            let text = io::Error::from_raw_os_error(n).to_string();
            let text = text.split(" (os error").next().unwrap_or(&text).to_string();
            if name == "EUNKNOWN" {
                format!("kcmp: cannot write output: errno {n} ({text})")
            } else {
                format!("kcmp: cannot write output: {name} ({text})")
            }
        }
        None => format!("kcmp: cannot write output: {e}"),
    }
}

/// Ends the process after a failed write to stdout: 141 quietly for a
/// closed pipe, else exit 2 with [`write_error_message`] on stderr.
pub fn fail(e: &io::Error) -> ! {
    if e.kind() == io::ErrorKind::BrokenPipe {
        kcmp_map::exit(CLOSED_PIPE);
    }
    let _ = writeln!(io::stderr(), "{}", write_error_message(e));
    kcmp_map::exit(crate::exit::TROUBLE)
}

/// Buffered stdout whose errors end the command (see [`fail`]). Output is
/// flushed by [`Sink::flush`] (or when dropped: call `flush` to see it).
pub struct Sink {
    out: io::BufWriter<io::StdoutLock<'static>>,
}

impl Sink {
    /// Locks stdout for the rest of the command.
    pub fn stdout() -> Self {
        Sink {
            out: io::BufWriter::with_capacity(1 << 16, io::stdout().lock()),
        }
    }

    /// Writes `text`.
    pub fn text(&mut self, text: &str) {
        self.bytes(text.as_bytes());
    }

    /// Writes `text` and a newline.
    pub fn line(&mut self, text: &str) {
        self.bytes(text.as_bytes());
        self.bytes(b"\n");
    }

    /// Writes raw bytes.
    pub fn bytes(&mut self, b: &[u8]) {
        if let Err(e) = self.out.write_all(b) {
            fail(&e);
        }
    }

    /// Writes `v` as one JSON line.
    pub fn json_line(&mut self, v: &impl serde::Serialize) {
        if let Err(e) = serde_json::to_writer(&mut self.out, v) {
            match e.io_error_kind() {
                Some(_) => fail(&io::Error::from(e)),
                None => {
                    let _ = writeln!(io::stderr(), "kcmp: cannot encode JSON: {e}");
                    kcmp_map::exit(crate::exit::TROUBLE);
                }
            }
        }
        self.bytes(b"\n");
    }

    /// Flushes what is buffered, so that every record so far is out.
    pub fn flush(&mut self) {
        if let Err(e) = self.out.flush() {
            fail(&e);
        }
    }

    /// The underlying writer (errors from it must go to [`fail`]).
    pub fn writer(&mut self) -> &mut impl Write {
        &mut self.out
    }
}

/// Writes `text` to stdout and flushes; any error ends the command (see
/// [`fail`]).
pub fn emit(text: &str) {
    let mut s = Sink::stdout();
    s.text(text);
    s.flush();
}
