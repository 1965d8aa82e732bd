//! systemd's `same_fd()` in Rust: are two fds of this process one open file
//! description? `kcmp::same_open_file` answers wherever an exact method
//! works (F_DUPFD_QUERY, then kcmp, then the epoll trick);
//! `fallback::same_own_description` also says which method answered.
//!
//! ```sh
//! cargo run -p kcmp --example same_fd [PATH]
//! ```

use kcmp::fallback::same_own_description;
use std::fs::File;

fn main() -> std::io::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/dev/null".into());
    let first = File::open(&path)?;
    let dup = first.try_clone()?; // dup(): the same description
    let second = File::open(&path)?; // a second open(): another one
    for (what, other) in [("a dup", &dup), ("a second open()", &second)] {
        // `?` works: kcmp::Error converts into std::io::Error with its errno.
        let same = kcmp::same_open_file(&first, other)?;
        let method = same_own_description(&first, other)?.method;
        println!(
            "{path} and {what} of it: {} (decided by {})",
            if same { "same" } else { "different" },
            method.name()
        );
    }
    Ok(())
}
