//! The command-line definition (clap derive). Also used by `cargo xtask`
//! to generate man pages and shell completions.

use clap::{Args, Parser, Subcommand};

/// Parses a number the way the contract demands: decimal, no sign games.
fn parse_number(s: &str) -> Result<i64, String> {
    s.parse::<i64>()
        .map_err(|_| format!("{s:?} is not a number"))
}

/// A pid argument: a positive decimal number.
pub fn parse_pid(s: &str) -> Result<i32, String> {
    let n = parse_number(s)?;
    if n <= 0 || n > i32::MAX as i64 {
        return Err(format!("pid {n} is out of range (1..={})", i32::MAX));
    }
    Ok(n as i32)
}

/// An fd argument: a decimal number in 0..=i32::MAX.
pub fn parse_fd(s: &str) -> Result<i32, String> {
    let n = parse_number(s)?;
    if !(0..=i32::MAX as i64).contains(&n) {
        return Err(format!("fd {n} is out of range (0..={})", i32::MAX));
    }
    Ok(n as i32)
}

fn parse_toff(s: &str) -> Result<u32, String> {
    let n = parse_number(s)?;
    u32::try_from(n).map_err(|_| format!("toff {n} is out of range (0..={})", u32::MAX))
}

/// kcmp: do these processes share this kernel resource?
#[derive(Debug, Parser)]
#[command(
    name = "kcmp",
    version,
    about = "Compare kernel resources of processes with kcmp(2), and map what they share",
    long_about = "Compare kernel resources of processes with kcmp(2), and map what they share.\n\n\
        Compare commands print `same` or `different` and exit like cmp(1): 0 same, 1 different, 2 trouble.",
    after_help = "Examples:\n  kcmp file 1144 3 1145 3        # one open file description?\n  kcmp vm 1144 1145              # one address space?\n  kcmp scan --tree 1144          # everything a process tree shares\n  kcmp holders 1144 4 --peer     # who keeps my pipe open?\n  kcmp doctor                    # does kcmp work here?"
)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Output switches shared by the compare commands.
#[derive(Debug, Clone, Args)]
pub struct CompareOptions {
    /// Print one JSON object instead of a word.
    #[arg(long)]
    pub json: bool,
    /// Stop both processes while comparing (PTRACE_SEIZE + PTRACE_INTERRUPT), then resume them.
    #[arg(long)]
    pub freeze: bool,
}

/// Two pids for a process-level comparison.
#[derive(Debug, Clone, Args)]
pub struct ProcessPair {
    /// First process or thread id.
    #[arg(value_parser = parse_pid)]
    pub pid1: i32,
    /// Second process or thread id.
    #[arg(value_parser = parse_pid)]
    pub pid2: i32,
    /// --json and --freeze.
    #[command(flatten)]
    pub options: CompareOptions,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Do FD1 of PID1 and FD2 of PID2 refer to one open file description? (KCMP_FILE)
    #[command(after_help = "Example:\n  kcmp file 1144 3 1145 3\n  kcmp file --json $$ 0 $$ 1")]
    #[command(allow_negative_numbers = true)]
    File {
        /// First process.
        #[arg(value_parser = parse_pid)]
        pid1: i32,
        /// FdNum in the first process.
        #[arg(value_parser = parse_fd)]
        fd1: i32,
        /// Second process.
        #[arg(value_parser = parse_pid)]
        pid2: i32,
        /// FdNum in the second process.
        #[arg(value_parser = parse_fd)]
        fd2: i32,
        /// --json and --freeze.
        #[command(flatten)]
        options: CompareOptions,
    },
    /// Do two tasks share one address space? (KCMP_VM)
    #[command(after_help = "Example:\n  kcmp vm 1144 1145")]
    #[command(allow_negative_numbers = true)]
    Vm(ProcessPair),
    /// Do two tasks share one fd table? (KCMP_FILES)
    #[command(after_help = "Example:\n  kcmp files 1144 1145")]
    #[command(allow_negative_numbers = true)]
    Files(ProcessPair),
    /// Do two tasks share cwd, root and umask? (KCMP_FS)
    #[command(after_help = "Example:\n  kcmp fs 1144 1145")]
    #[command(allow_negative_numbers = true)]
    Fs(ProcessPair),
    /// Do two tasks share signal handlers? (KCMP_SIGHAND)
    #[command(after_help = "Example:\n  kcmp sighand 1144 1145")]
    #[command(allow_negative_numbers = true)]
    Sighand(ProcessPair),
    /// Do two tasks share an I/O context? (KCMP_IO; `same` may mean both have none)
    #[command(after_help = "Example:\n  kcmp io 1144 1145")]
    #[command(allow_negative_numbers = true)]
    Io(ProcessPair),
    /// Do two tasks share a SysV semaphore undo list? (KCMP_SYSVSEM; `same` may mean both have none)
    #[command(after_help = "Example:\n  kcmp sysvsem 1144 1145")]
    #[command(allow_negative_numbers = true)]
    Sysvsem(ProcessPair),
    /// Is FD1 of PID1 the file registered as TFD in epoll EPFD of PID2? (KCMP_EPOLL_TFD)
    #[command(after_help = "Example:\n  kcmp epoll-tfd 1144 5 1145 7 5 --toff 0")]
    #[command(allow_negative_numbers = true)]
    EpollTfd {
        /// The process holding the fd to test.
        #[arg(value_parser = parse_pid)]
        pid1: i32,
        /// The fd to test, in PID1.
        #[arg(value_parser = parse_fd)]
        fd1: i32,
        /// The process holding the epoll instance.
        #[arg(value_parser = parse_pid)]
        pid2: i32,
        /// The epoll fd, in PID2.
        #[arg(value_parser = parse_fd)]
        epfd: i32,
        /// The fd number the target was registered under.
        #[arg(value_parser = parse_fd)]
        tfd: i32,
        /// Which registration under TFD, counted from 0 in the kernel's order.
        #[arg(long, default_value_t = 0, value_parser = parse_toff)]
        toff: u32,
        /// --json and --freeze.
        #[command(flatten)]
        options: CompareOptions,
    },
    /// Map what processes share: open file descriptions and process-level resources.
    #[command(
        after_help = "Examples:\n  kcmp scan                      # the whole host\n  kcmp scan --tree 1144 --json   # a process tree, as JSON\n  kcmp scan --pid 1144 --pid 1145 --include-unshared\n  kcmp scan --tree 1144 --dot | dot -Tsvg > sharing.svg"
    )]
    #[command(allow_negative_numbers = true)]
    Scan(ScanArgs),
    /// Find leaked and dangerous sharing: fds crossing namespaces or exec, pipes that never see EOF, stale epoll registrations, deleted files held.
    #[command(
        after_help = "Exit status: 0 no finding at or above --fail-on (default warning), 1 findings, 2 trouble.\n\nRules: cross-namespace, foreign-mount (critical); exec-leak, pipe-self-hold, epoll-stale (warning); cross-uid-write, deleted-held (info).\n\nExamples:\n  kcmp audit                                  # the whole host\n  kcmp audit --tree 1144 --fail-on critical   # in CI: no fd of the host in my containers\n  kcmp audit --allow 'deleted-held:/var/log/*' --json"
    )]
    #[command(allow_negative_numbers = true)]
    Audit(AuditArgs),
    /// Every (pid, fd) that refers to the same open file description as FD of PID.
    #[command(
        after_help = "Examples:\n  kcmp holders 1144 3\n  kcmp holders 1144 4 --peer     # also the other end of a pipe"
    )]
    #[command(allow_negative_numbers = true)]
    Holders {
        /// The process.
        #[arg(value_parser = parse_pid)]
        pid: i32,
        /// The fd in that process.
        #[arg(value_parser = parse_fd)]
        fd: i32,
        /// On a pipe end, also list the holders of the other end of the same pipe.
        #[arg(long)]
        peer: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Stop the inspected processes while inspecting, then resume them.
        #[arg(long)]
        freeze: bool,
    },
    /// Resolve every registration of an epoll instance to the open file descriptions it watches.
    #[command(after_help = "Example:\n  kcmp epoll-targets 1144 5 --json")]
    #[command(allow_negative_numbers = true)]
    EpollTargets {
        /// The process holding the epoll instance.
        #[arg(value_parser = parse_pid)]
        pid: i32,
        /// The epoll fd.
        #[arg(value_parser = parse_fd)]
        epfd: i32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Stop the inspected processes while inspecting, then resume them.
        #[arg(long)]
        freeze: bool,
    },
    /// Check whether kcmp works here, which fallbacks and freeze methods do, and why not.
    #[command(after_help = "Example:\n  kcmp doctor --json")]
    Doctor {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the man page's example: open a file, fork, compare (same / different / same).
    #[command(after_help = "Example:\n  kcmp demo")]
    Demo,
    /// The child half of `kcmp demo` (internal).
    #[command(hide = true, name = "__demo-child")]
    DemoChild {
        /// The parent's pid.
        parent: i32,
        /// The fd the parent opened (inherited).
        fd: i32,
        /// The file's path.
        path: std::path::PathBuf,
    },
}

/// Options of `kcmp scan`.
#[derive(Debug, Clone, Args)]
pub struct ScanArgs {
    /// Scan exactly this process (repeatable).
    #[arg(long = "pid", value_name = "PID", value_parser = parse_pid)]
    pub pids: Vec<i32>,
    /// Scan this process and all its descendants (repeatable).
    #[arg(long = "tree", value_name = "PID", value_parser = parse_pid)]
    pub trees: Vec<i32>,
    /// Inspect every thread as its own task (pids are tids then).
    #[arg(long)]
    pub threads: bool,
    /// List open file descriptions held by only one (pid, fd) too.
    #[arg(long)]
    pub include_unshared: bool,
    /// Print JSON (schema 1).
    #[arg(long, conflicts_with = "dot")]
    pub json: bool,
    /// Print the sharing graph for Graphviz.
    #[arg(long)]
    pub dot: bool,
    /// Stop the inspected processes while scanning, then resume them exactly as they were.
    #[arg(long)]
    pub freeze: bool,
}

/// Options of `kcmp audit`.
#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    /// Audit exactly this process (repeatable).
    #[arg(long = "pid", value_name = "PID", value_parser = parse_pid)]
    pub pids: Vec<i32>,
    /// Audit this process and all its descendants (repeatable).
    #[arg(long = "tree", value_name = "PID", value_parser = parse_pid)]
    pub trees: Vec<i32>,
    /// Print JSON (schema 1).
    #[arg(long)]
    pub json: bool,
    /// Exit 1 when a finding at or above this severity remains.
    #[arg(long, value_name = "SEVERITY", default_value = "warning", value_parser = parse_severity)]
    pub fail_on: kcmp_map::audit::Severity,
    /// Silence RULE, or RULE only for targets matching the glob PATTERN (repeatable); allowed findings are counted, never failed on.
    #[arg(long, value_name = "RULE[:PATTERN]", value_parser = parse_allow)]
    pub allow: Vec<kcmp_map::audit::Allow>,
    /// Only findings with a holder whose command name matches this glob.
    #[arg(long, value_name = "GLOB")]
    pub comm: Option<String>,
    /// Only findings with a holder of this user (name or uid).
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Only findings about this kind of file: directory, file, pipe, socket, terminal, memfd, anon-inode, unknown, ...
    #[arg(long, value_name = "KIND")]
    pub kind: Option<String>,
    /// Only findings whose target matches this glob.
    #[arg(long, value_name = "GLOB")]
    pub path: Option<String>,
    /// Only findings with at least N holders.
    #[arg(long, value_name = "N")]
    pub min_holders: Option<usize>,
    /// Stop the inspected processes while scanning, then resume them exactly as they were.
    #[arg(long)]
    pub freeze: bool,
}

fn parse_severity(s: &str) -> Result<kcmp_map::audit::Severity, String> {
    s.parse()
}

fn parse_allow(s: &str) -> Result<kcmp_map::audit::Allow, String> {
    s.parse()
}
