//! The sharing map of a process tree: every open file description held by
//! two or more (pid, fd) pairs, and the processes that share an address
//! space, fd table, fs struct, signal handlers, I/O context or undo list.
//!
//! ```sh
//! cargo run -p kcmp-map --example tree_map [PID]   # default: this process
//! ```

use kcmp::Pid;
use kcmp_map::{scan, ScanOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = match std::env::args().nth(1) {
        Some(arg) => Pid::new(arg.parse()?)?,
        None => Pid::this(),
    };
    let map = scan(&ScanOptions {
        trees: vec![root],
        ..ScanOptions::default()
    })?;
    for d in map.open_files.iter().filter(|d| d.members.len() > 1) {
        let members: Vec<String> = d
            .members
            .iter()
            .map(|m| format!("{}:{}", m.pid, m.fd))
            .collect();
        println!("{} held by {}", d.target, members.join(" "));
    }
    for (kind, groups) in &map.shared {
        for group in groups {
            let pids: Vec<String> = group.iter().map(|p| p.to_string()).collect();
            println!("one {kind} shared by {}", pids.join(" "));
        }
    }
    println!("{} tasks, {} skipped", map.tasks.len(), map.skipped.len());
    Ok(())
}
