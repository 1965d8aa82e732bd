//! Who else holds my stdin? Every (pid, fd) on the host that refers to the
//! same open file description as fd 0 of this process — e.g. why a pipe
//! reader never sees EOF.
//!
//! ```sh
//! sleep 100 | cargo run -p kcmp-map --example stdin_holders
//! ```

use kcmp::{FdNum, Pid};
use kcmp_map::holders::{find_holders, HoldersOptions};

fn main() -> Result<(), kcmp::Error> {
    let options = HoldersOptions {
        include_self: true, // this process's own fd 0 is a holder too
        peer: true,         // on a pipe: who holds the other end
        ..HoldersOptions::default()
    };
    let report = find_holders(Pid::this(), FdNum::new(0)?, &options)?;
    println!("stdin is {}", report.target);
    for h in &report.holders {
        println!("  {} ({}) fd {}", h.pid, h.comm, h.fd);
    }
    if let Some(peer) = &report.peer {
        println!("other end ({}):", peer.end);
        for h in &peer.holders {
            println!("  {} ({}) fd {}", h.pid, h.comm, h.fd);
        }
    }
    if !report.skipped.is_empty() {
        println!("{} processes could not be inspected", report.skipped.len());
    }
    Ok(())
}
