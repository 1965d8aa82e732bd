//! The command-line definition (clap derive). Also used by `cargo xtask`
//! to generate man pages and shell completions.

use clap::{Args, Parser, Subcommand};

/// Parses a decimal number: digits only (no sign, no spaces, no `0x`);
/// anything larger than `max` is "out of range", 2^64 and beyond too.
fn parse_decimal(what: &str, s: &str, min: u64, max: u64) -> Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{what} {s:?} is not a decimal number (digits only, no sign)"
        ));
    }
    match s.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("{what} {s} is out of range ({min}..={max})")),
    }
}

/// A pid argument: a decimal number in 1..=2^31-1.
///
/// ```
/// use kcmp_cli::cli::parse_pid;
/// assert_eq!(parse_pid("42"), Ok(42));
/// assert!(parse_pid("+5").unwrap_err().contains("not a decimal number"));
/// assert!(parse_pid("18446744073709551616").unwrap_err().contains("out of range"));
/// assert!(parse_pid("0").unwrap_err().contains("out of range"));
/// ```
pub fn parse_pid(s: &str) -> Result<i32, String> {
    parse_decimal("pid", s, 1, i32::MAX as u64).map(|n| n as i32)
}

/// An fd argument: a decimal number in 0..=2^31-1.
pub fn parse_fd(s: &str) -> Result<i32, String> {
    parse_decimal("fd", s, 0, i32::MAX as u64).map(|n| n as i32)
}

fn parse_toff(s: &str) -> Result<u32, String> {
    parse_decimal("toff", s, 0, u32::MAX as u64).map(|n| n as u32)
}

fn parse_count(s: &str) -> Result<usize, String> {
    parse_decimal("count", s, 0, u32::MAX as u64).map(|n| n as usize)
}

/// One line for a usage error: clap's message with the names it lists (the
/// missing arguments, the bad value), and where to read more:
/// `kcmp: usage error: the following required arguments were not provided:
/// <FD2> (see kcmp file --help)`.
pub fn usage_error_message(err: &clap::Error) -> String {
    let text = err.render().to_string();
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("invalid arguments");
    let mut msg = first.strip_prefix("error: ").unwrap_or(first).to_string();
    for l in lines.by_ref() {
        if l.starts_with("  ") && !l.trim().is_empty() {
            msg.push(' ');
            msg.push_str(l.trim());
        } else {
            break;
        }
    }
    let sub = text
        .lines()
        .find_map(|l| l.strip_prefix("Usage: kcmp "))
        .and_then(|u| u.split_whitespace().next())
        .filter(|w| !w.starts_with(['[', '<', '-']));
    let sub = sub.map(str::to_string).or_else(|| {
        // args_os: a non-UTF-8 argument must not panic here.
        let first = std::env::args_os().nth(1)?;
        crate::command()
            .find_subcommand(first.to_str()?)
            .map(|c| c.get_name().to_string())
    });
    let help = match sub {
        Some(s) => format!("kcmp {s} --help"),
        None => "kcmp --help".to_string(),
    };
    format!("kcmp: usage error: {msg} (see {help})")
}

/// kcmp: do these processes share this kernel resource?
#[derive(Debug, Parser)]
#[command(
    name = "kcmp",
    version,
    disable_help_subcommand = true,
    about = "Compare kernel resources of processes with kcmp(2), and map what they share",
    long_about = "Compare kernel resources of processes with kcmp(2), and map what they share.\n\n\
        Compare commands print `same` or `different` and exit like cmp(1): 0 same, 1 different, 2 trouble.",
    after_help = "Examples:\n  kcmp file 1144 3 1145 3        # one open file description?\n  kcmp vm 1144 1145              # one address space?\n  kcmp scan --tree 1144          # everything a process tree shares\n  kcmp holders 1144 4 --peer     # who keeps my pipe open?\n  kcmp doctor                    # does kcmp work here?\n  kcmp help scan                 # one command's help\n\n\
        Exit status: compare commands 0 same, 1 different, 2 trouble; other commands 0 success, 2 trouble. \
        A write error on stdout is trouble (2, named on stderr); a closed stdout ends any command quietly with 141."
)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
    /// With --freeze: the longest the processes stay stopped (e.g. `10s`,
    /// `500ms`; default 10s). Past it kcmp resumes them, finishes unfrozen
    /// and says so (JSON: "frozen": false, "freeze_released": "timeout").
    #[arg(
        long,
        global = true,
        value_name = "DURATION",
        value_parser = parse_duration,
        allow_hyphen_values = true
    )]
    pub freeze_timeout: Option<std::time::Duration>,
}

/// A duration: a decimal number and a unit, `ms`, `s` or `m` (`500ms`,
/// `10s`, `1.5s`), more than zero.
///
/// ```
/// use kcmp_cli::cli::parse_duration;
/// assert_eq!(parse_duration("500ms").unwrap().as_millis(), 500);
/// assert_eq!(parse_duration("1.5s").unwrap().as_millis(), 1500);
/// assert!(parse_duration("10").is_err() && parse_duration("0s").is_err());
/// ```
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'));
    let (num, unit) = s.split_at(split.unwrap_or(s.len()));
    let scale = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        _ => return Err(format!("{s:?} is not a duration (e.g. 10s, 500ms)")),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 10s, 500ms)"))?;
    let secs = n * scale;
    if !(secs > 0.0 && secs < 1e9) {
        return Err(format!("duration {s:?} is out of range (more than 0)"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// Output switches shared by the compare commands.
#[derive(Debug, Clone, Args)]
pub struct CompareOptions {
    /// Print JSON instead of text (keys: see the README).
    #[arg(long)]
    pub json: bool,
    /// Stop the inspected processes while inspecting (PTRACE_SEIZE + PTRACE_INTERRUPT), then resume them exactly as they were.
    #[arg(long)]
    pub freeze: bool,
}

/// Two pids for a process-level comparison.
#[derive(Debug, Clone, Args)]
pub struct ProcessPair {
    /// The first process (or thread).
    #[arg(value_name = "PID1", value_parser = parse_pid)]
    pub pid1: i32,
    /// The second process (or thread).
    #[arg(value_name = "PID2", value_parser = parse_pid)]
    pub pid2: i32,
    /// --json and --freeze.
    #[command(flatten)]
    pub options: CompareOptions,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Do FD1 of PID1 and FD2 of PID2 refer to one open file description? (KCMP_FILE)
    #[command(
        after_help = "Examples:\n  kcmp file 1144 3 1145 3\n  kcmp file --json $$ 0 $$ 1\n\nExit status: 0 same, 1 different, 2 trouble (bad arguments or an errno, named on one line of stderr)."
    )]
    #[command(allow_negative_numbers = true)]
    File {
        /// The first process.
        #[arg(value_name = "PID1", value_parser = parse_pid)]
        pid1: i32,
        /// An fd of the first process.
        #[arg(value_name = "FD1", value_parser = parse_fd)]
        fd1: i32,
        /// The second process.
        #[arg(value_name = "PID2", value_parser = parse_pid)]
        pid2: i32,
        /// An fd of the second process.
        #[arg(value_name = "FD2", value_parser = parse_fd)]
        fd2: i32,
        /// --json and --freeze.
        #[command(flatten)]
        options: CompareOptions,
    },
    /// Do two tasks share one address space? (KCMP_VM)
    #[command(
        after_help = "Examples:\n  kcmp vm 1144 1145\n\nExit status: 0 same, 1 different, 2 trouble (bad arguments or an errno, named on one line of stderr)."
    )]
    #[command(allow_negative_numbers = true)]
    Vm(ProcessPair),
    /// Do two tasks share one fd table? (KCMP_FILES)
    #[command(
        after_help = "Examples:\n  kcmp files 1144 1145\n\nExit status: 0 same, 1 different, 2 trouble (bad arguments or an errno, named on one line of stderr)."
    )]
    #[command(allow_negative_numbers = true)]
    Files(ProcessPair),
    /// Do two tasks share cwd, root and umask? (KCMP_FS)
    #[command(
        after_help = "Examples:\n  kcmp fs 1144 1145\n\nExit status: 0 same, 1 different, 2 trouble (bad arguments or an errno, named on one line of stderr)."
    )]
    #[command(allow_negative_numbers = true)]
    Fs(ProcessPair),
    /// Do two tasks share signal handlers? (KCMP_SIGHAND)
    #[command(
        after_help = "Examples:\n  kcmp sighand 1144 1145\n\nExit status: 0 same, 1 different, 2 trouble (bad arguments or an errno, named on one line of stderr)."
    )]
    #[command(allow_negative_numbers = true)]
    Sighand(ProcessPair),
    /// Do two tasks share an I/O context? (KCMP_IO; when neither has one: `different`, noted on stderr)
    #[command(
        after_help = "Examples:\n  kcmp io 1144 1145\n\nExit status: 0 same, 1 different, 2 trouble (bad arguments or an errno, named on one line of stderr)."
    )]
    #[command(allow_negative_numbers = true)]
    Io(ProcessPair),
    /// Do two tasks share a SysV semaphore undo list? (KCMP_SYSVSEM; when neither has one: `different`, noted on stderr)
    #[command(
        after_help = "Examples:\n  kcmp sysvsem 1144 1145\n\nExit status: 0 same, 1 different, 2 trouble (bad arguments or an errno, named on one line of stderr)."
    )]
    #[command(allow_negative_numbers = true)]
    Sysvsem(ProcessPair),
    /// Is FD1 of PID1 the file registered as TFD in epoll EPFD of PID2? (KCMP_EPOLL_TFD)
    #[command(
        after_help = "Examples:\n  kcmp epoll-tfd 1144 5 1145 7 5 --toff 0\n\nExit status: 0 same, 1 different, 2 trouble (bad arguments or an errno, named on one line of stderr)."
    )]
    #[command(allow_negative_numbers = true)]
    EpollTfd {
        /// The process holding the fd to test.
        #[arg(value_name = "PID1", value_parser = parse_pid)]
        pid1: i32,
        /// The fd to test, in PID1.
        #[arg(value_name = "FD1", value_parser = parse_fd)]
        fd1: i32,
        /// The process holding the epoll instance.
        #[arg(value_name = "PID2", value_parser = parse_pid)]
        pid2: i32,
        /// The epoll fd, in PID2.
        #[arg(value_name = "EPFD", value_parser = parse_fd)]
        epfd: i32,
        /// The fd number the target was registered under.
        #[arg(value_name = "TFD", value_parser = parse_fd)]
        tfd: i32,
        /// Which registration under TFD, counted from 0 in the kernel's order.
        #[arg(long, value_name = "N", default_value_t = 0, value_parser = parse_toff)]
        toff: u32,
        /// --json and --freeze.
        #[command(flatten)]
        options: CompareOptions,
    },
    /// Map what processes share: open file descriptions and process-level resources.
    #[command(long_about = SCAN_ABOUT, after_help = SCAN_AFTER)]
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
        long_about = "Every (pid, fd) that refers to the same open file description as FD of PID.\n\n\
            Output: one line per holder, `PID (COMM) fd N TARGET`; with --peer, the holders of the other \
            end of a pipe or FIFO under `other end (read|write|read-write):` (a FIFO's other side: the openers of \
            the same device and inode with the opposite access mode; an O_RDWR opener is on both sides), or of a \
            connected unix socket's peer under `other end (peer):` (from sock_diag). \
            Notes (skipped processes, not frozen ones) go to stderr.",
        after_help = "Examples:\n  kcmp holders 1144 3\n  kcmp holders 1144 4 --peer     # also the other end of a pipe or FIFO\n\n\
            Exit status: 0 an answer, 2 trouble (bad arguments or an errno, named on one line of stderr)."
    )]
    #[command(allow_negative_numbers = true)]
    Holders {
        /// The process.
        #[arg(value_name = "PID", value_parser = parse_pid)]
        pid: i32,
        /// An fd of that process.
        #[arg(value_name = "FD", value_parser = parse_fd)]
        fd: i32,
        /// On a pipe, FIFO or connected unix socket, also list the holders of the other end.
        #[arg(long)]
        peer: bool,
        /// Print JSON instead of text (keys: see the README).
        #[arg(long)]
        json: bool,
        /// Stop the inspected processes while inspecting (PTRACE_SEIZE + PTRACE_INTERRUPT), then resume them exactly as they were.
        #[arg(long)]
        freeze: bool,
    },
    /// Resolve every registration of an epoll instance to the open file descriptions it watches.
    #[command(long_about = EPOLL_ABOUT, after_help = EPOLL_AFTER)]
    #[command(allow_negative_numbers = true)]
    EpollTargets {
        /// The process holding the epoll instance.
        #[arg(value_name = "PID", value_parser = parse_pid)]
        pid: i32,
        /// The epoll fd, in PID.
        #[arg(value_name = "EPFD", value_parser = parse_fd)]
        epfd: i32,
        /// Print JSON instead of text (keys: see the README).
        #[arg(long)]
        json: bool,
        /// Stop the inspected processes while inspecting (PTRACE_SEIZE + PTRACE_INTERRUPT), then resume them exactly as they were.
        #[arg(long)]
        freeze: bool,
    },
    /// Check whether kcmp works here, which fallbacks and freeze methods do, and why not.
    #[command(
        after_help = "Examples:\n  kcmp doctor --json\n\nExit status: 0 when kcmp or an exact fallback works, 2 when neither does or on trouble."
    )]
    Doctor {
        /// Print JSON instead of text (keys: see the README).
        #[arg(long)]
        json: bool,
    },
    /// Run the man page's example: open a file, fork, compare (same / different / same).
    #[command(
        after_help = "Examples:\n  kcmp demo\n\nExit status: 0 when the kernel answered same / different / same, 1 when it did not, 2 trouble."
    )]
    Demo,
    /// Print the help of kcmp or of one command.
    #[command(
        after_help = "Examples:\n  kcmp help scan\n\nExit status: 0, or 2 for an unknown command."
    )]
    Help {
        /// The command (none: kcmp's own help).
        #[arg(value_name = "COMMAND")]
        command: Option<String>,
    },
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

const SCAN_ABOUT: &str = "Map what processes share: open file descriptions and process-level resources.

Output (human): one line per open file description held by two or more (pid, fd) pairs, most \
shared first (more holders, then more processes, then by name):

  socket:[1656253]  socket  49 holders in 49 processes  nginx ×49 (1166–1214) fd 6

the name (control characters and invalid UTF-8 escaped as `ls -b` does: \\x1b, \\n), the kind \
(file, dir, fifo, chardev, blockdev, symlink, pipe, socket, anon_inode, memfd, other; `path` when the \
file is on a filesystem kcmp does not stat, e.g. FUSE or NFS), how many (pid, fd) pairs hold it in \
how many processes, and the holders grouped by command: `×N` processes, their pids as ranges, the \
fd numbers (at most 4 commands, then `+N more commands`). --long lists every holder under its \
line as `PID (COMM) fd N`. Then the process-level sharing groups (vm, files, fs, sighand, io, \
sysvsem; `none` when no two tasks share one), the epoll findings (stale registrations), and one \
summary line. Notes (skipped processes, processes not frozen) go to stderr.

Filters choose what is shown, not what is scanned (--pid and --tree choose that): a description \
is shown when one of its holders matches --comm and --user, its kind is one of --kind, its name \
begins with --path and it has at least --min-holders holders; a process-level group when one of \
its tasks matches --comm and --user. They apply to the text, JSON, NDJSON and DOT output alike.";

const SCAN_AFTER: &str = "Examples:
  kcmp scan                              # the whole host
  kcmp scan --comm nginx --kind socket   # what nginx shares, sockets only
  kcmp scan --tree 1144 --json           # a process tree, as JSON
  kcmp scan --json-lines | jq -c 'select(.type == \"description\")'
  kcmp scan --pid 1144 --pid 1145 --include-unshared --long
  kcmp scan --tree 1144 --dot | dot -Tsvg > sharing.svg

Exit status: 0 success (processes that could not be inspected are listed as skipped), 2 trouble \
(nothing could be scanned, bad arguments, a write error).";

const EPOLL_ABOUT: &str =
    "Resolve every registration of an epoll instance to the open file descriptions it watches.

Output: a heading, then one row per registration:
  TFD     the fd number it was registered under (EPOLL_CTL_ADD)
  TOFF    which registration under that number, from 0 in the kernel's order
  EVENTS  the event mask as flag names (EPOLLIN|EPOLLOUT|EPOLLET, …; unnamed bits as 0x…)
  DATA    the user data, in hex
  STALE   no: TFD still refers to the watched description; closed: TFD is closed now;
          reused (TARGET): TFD now refers to another file — the registration outlived its fd
  TARGET  what the registration watches
  HOLDERS every visible fd holding it, as PID (COMM) fd N; `(no visible fd)` when none does
In JSON, `events` stays the hex string and `events_names` lists the flags.";

const EPOLL_AFTER: &str = "Examples:
  kcmp epoll-targets 1144 5 --json

Exit status: 0 an answer, 2 trouble (bad arguments, not an epoll fd, or an errno, named on one line of stderr).";

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
    /// List every holder under its description, as `PID (COMM) fd N`.
    #[arg(short = 'l', long)]
    pub long: bool,
    /// Filters: which descriptions to show.
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Print JSON instead of text (keys: see the README).
    #[arg(long, conflicts_with_all = ["dot", "json_lines"])]
    pub json: bool,
    /// Print NDJSON: one record per line (description, group, epoll, skipped, summary), each written when final.
    #[arg(long, conflicts_with = "dot")]
    pub json_lines: bool,
    /// Print the sharing graph for Graphviz (processes identical by command collapse into one node).
    #[arg(long)]
    pub dot: bool,
    /// Stop the inspected processes while inspecting (PTRACE_SEIZE + PTRACE_INTERRUPT), then resume them exactly as they were.
    #[arg(long)]
    pub freeze: bool,
}

/// The filters of `scan` and `audit`: they select descriptions (a
/// description is shown when one of its holders matches `--comm`/`--user`),
/// never what is scanned.
#[derive(Debug, Clone, Default, Args)]
pub struct FilterArgs {
    /// Show descriptions one of whose holders runs this command (comm, exact; repeatable).
    #[arg(long = "comm", value_name = "NAME")]
    pub comms: Vec<String>,
    /// Show descriptions one of whose holders has this real uid, by name or number (repeatable).
    #[arg(long = "user", value_name = "USER", value_parser = crate::output::filter::parse_user)]
    pub users: Vec<u32>,
    /// Show descriptions of this kind (file, dir, fifo, chardev, blockdev, symlink, path, pipe, socket, anon_inode, memfd, other; repeatable).
    #[arg(long = "kind", value_name = "KIND", value_parser = crate::output::filter::parse_kind)]
    pub kinds: Vec<String>,
    /// Show descriptions whose name begins with PREFIX (`/var/log/`, `socket:`).
    #[arg(long, value_name = "PREFIX")]
    pub path: Option<String>,
    /// Show descriptions held by at least N (pid, fd) pairs.
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub min_holders: Option<usize>,
}

impl FilterArgs {
    /// The filters these options select.
    pub fn filters(&self) -> crate::output::filter::Filters {
        crate::output::filter::Filters {
            comms: self.comms.clone(),
            uids: self.users.clone(),
            kinds: self.kinds.clone(),
            path: self.path.clone(),
            min_holders: self.min_holders.unwrap_or(0),
        }
    }
}

impl ScanArgs {
    /// The filters these options select.
    pub fn filters(&self) -> crate::output::filter::Filters {
        self.filter.filters()
    }
}

/// Options of `kcmp audit`.
#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    /// Scan exactly this process (repeatable).
    #[arg(long = "pid", value_name = "PID", value_parser = parse_pid)]
    pub pids: Vec<i32>,
    /// Scan this process and all its descendants (repeatable).
    #[arg(long = "tree", value_name = "PID", value_parser = parse_pid)]
    pub trees: Vec<i32>,
    /// Print JSON instead of text (keys: see the README).
    #[arg(long)]
    pub json: bool,
    /// Exit 1 when a finding at or above this severity remains.
    #[arg(long, value_name = "SEVERITY", default_value = "warning", value_parser = parse_severity)]
    pub fail_on: kcmp_map::audit::Severity,
    /// Silence RULE, or RULE only for targets matching the glob PATTERN (repeatable); allowed findings are counted, never failed on.
    #[arg(long, value_name = "RULE[:PATTERN]", value_parser = parse_allow)]
    pub allow: Vec<kcmp_map::audit::Allow>,
    /// Filters: the findings about the descriptions they select.
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Stop the inspected processes while inspecting (PTRACE_SEIZE + PTRACE_INTERRUPT), then resume them exactly as they were.
    #[arg(long)]
    pub freeze: bool,
}

fn parse_severity(s: &str) -> Result<kcmp_map::audit::Severity, String> {
    s.parse()
}

fn parse_allow(s: &str) -> Result<kcmp_map::audit::Allow, String> {
    s.parse()
}
