//! The freezer process: a fork of kcmp, in its own process group, that is
//! the tracer of a frozen set and releases it whenever kcmp stops making
//! progress.
//!
//! kcmp and the freezer share a socket pair. kcmp's heartbeat thread sends
//! a beat every 100 ms: `h` (alive, and progressing when the set releases
//! on a stall) or `i` (alive, no progress since the last beat; see
//! `beat.rs`); `s` asks for an early release (SIGTSTP); `r` asks for the
//! thaw and its outcome. The freezer thaws on its own when:
//! - kcmp is gone (EOF, or the freezer's parent changed);
//! - no beat came for 500 ms and kcmp is not running or sleeping
//!   (stopped by SIGSTOP or a debugger, or stuck in uninterruptible
//!   sleep), or for 2 s whatever its state;
//! - with `release_when_stalled`, once the set is frozen: no `h` came for
//!   700 ms (kcmp made no progress: `stalled`);
//! - the frozen window (`--freeze-timeout`) is over.
//!
//! Then it stays to tell kcmp why (`end stopped`, `end timeout`) and exits
//! on EOF. Lines from the freezer: the report (`F pid`, `N pid kind errno
//! reason`, `T threads`, `E`), then `end CODE [error]`.

use super::tracer::{Report, Tracer};
use super::{NotFrozen, NotFrozenKind, Release};
use crate::sys::process as sys;
use kcmp::Pid;
use rustix::io::Errno;
use std::time::{Duration, Instant};

/// Heartbeat silence after which a kcmp that is not running counts as stopped.
const SILENCE: Duration = Duration::from_millis(500);
/// Heartbeat silence after which kcmp counts as stopped whatever its state.
const LONG_SILENCE: Duration = Duration::from_secs(2);
/// Time without progress after which a stalling set is released: with the
/// beat's 100 ms and the freezer's 50 ms checks, within 1 s of the last step.
const STALL: Duration = Duration::from_millis(700);

/// What the freezer was asked to do.
pub(crate) struct Job<'a> {
    pub pids: &'a [Pid],
    pub me: i32,
    pub stop_timeout: Duration,
    pub window: Duration,
    /// Release when kcmp makes no progress (`release_when_stalled`).
    pub stalls: bool,
}

struct Monitor {
    sock: i32,
    me: i32,
    last_beat: Instant,
    /// The last `h`, once progress is watched (after the report).
    last_progress: Option<Instant>,
    deadline: Instant,
    early: Option<Release>,
    asked: bool,
    gone: bool,
}

impl Monitor {
    /// Reads what kcmp sent, waiting at most `wait` for it.
    fn pump(&mut self, wait: Duration) {
        let mut buf = [0u8; 256];
        match sys::read_within(self.sock, wait, &mut buf) {
            Ok(None) => {}
            Ok(Some(0)) | Err(_) => self.gone = true,
            Ok(Some(n)) => {
                for &b in &buf[..n] {
                    match b {
                        b'h' => {
                            self.last_beat = Instant::now();
                            if let Some(p) = &mut self.last_progress {
                                *p = self.last_beat;
                            }
                        }
                        b'i' => self.last_beat = Instant::now(),
                        b's' => {
                            self.early.get_or_insert(Release::Stopped);
                        }
                        b'r' => self.asked = true,
                        _ => {}
                    }
                }
            }
        }
    }

    /// Whether to release now; records why.
    fn should_release(&mut self) -> bool {
        self.pump(Duration::ZERO);
        if self.gone || rustix::process::getppid().map(|p| p.as_raw_pid()) != Some(self.me) {
            self.gone = true;
            return true;
        }
        if self.early.is_some() {
            return true;
        }
        // Past the deadline is a timeout even when the thaw request is
        // read in the same breath (never "frozen" for a longer window).
        if Instant::now() >= self.deadline {
            self.early = Some(Release::Timeout);
            return true;
        }
        if self.asked {
            return true;
        }
        let silent = self.last_beat.elapsed();
        let running = Pid::new(self.me)
            .ok()
            .and_then(|p| crate::procfs::read_stat(p).ok())
            .is_some_and(|s| matches!(s.state, 'R' | 'S'));
        if (silent >= SILENCE && !running) || silent >= LONG_SILENCE {
            self.early = Some(Release::Stopped);
            return true;
        }
        if self.last_progress.is_some_and(|p| p.elapsed() >= STALL) {
            self.early = Some(Release::Stalled);
            return true;
        }
        false
    }
}

fn write_all(fd: i32, text: &str) {
    let _ = sys::send_all(fd, text.as_bytes());
}

fn one_line(s: &str) -> String {
    s.replace('\n', " ")
}

/// The report as lines.
fn encode(report: &Report) -> String {
    let mut out = String::new();
    for p in &report.frozen {
        out.push_str(&format!("F {p}\n"));
    }
    for n in &report.not_frozen {
        let errno = n.errno.map_or(-1, |e| e.raw_os_error());
        let reason = one_line(&n.reason);
        out.push_str(&format!("N {} {} {errno} {reason}\n", n.pid, n.kind.code()));
    }
    out.push_str(&format!("T {}\nE\n", report.threads));
    out
}

/// Parses the report lines (without the final `E`).
pub(crate) fn decode(lines: &[String]) -> Option<Report> {
    let mut report = Report {
        frozen: Vec::new(),
        not_frozen: Vec::new(),
        threads: 0,
    };
    for line in lines {
        let (tag, rest) = line.split_once(' ')?;
        match tag {
            "F" => report.frozen.push(Pid::new(rest.parse().ok()?).ok()?),
            "T" => report.threads = rest.parse().ok()?,
            "N" => {
                let mut f = rest.splitn(4, ' ');
                let pid = Pid::new(f.next()?.parse().ok()?).ok()?;
                let kind = NotFrozenKind::from_code(f.next()?)?;
                let errno: i32 = f.next()?.parse().ok()?;
                let reason = f.next().unwrap_or("").to_string();
                report.not_frozen.push(NotFrozen {
                    pid,
                    kind,
                    reason,
                    errno: (errno >= 0).then(|| Errno::from_raw_os_error(errno)),
                });
            }
            _ => return None,
        }
    }
    Some(report)
}

/// The freezer's life, in the forked child: fd 0 is the socket to kcmp,
/// fd 1 the host lock (or a copy of fd 0), fd 2 the socket on which it
/// acknowledges an early thaw. Never returns.
pub(crate) fn run(job: &Job<'_>) -> ! {
    let started = Instant::now();
    let mut monitor = Monitor {
        sock: 0,
        me: job.me,
        last_beat: started,
        last_progress: None,
        deadline: started + job.window,
        early: None,
        asked: false,
        gone: false,
    };
    let mut tracer = Tracer::default();
    let report = tracer.freeze_all(job.pids, job.me, job.stop_timeout, &mut || {
        monitor.should_release()
    });
    write_all(0, &encode(&report));
    if job.stalls {
        monitor.last_progress = Some(Instant::now());
    }
    while !monitor.should_release() {
        tracer.release_late();
        // Wake at the deadline at the latest, so that a window that ends
        // before kcmp asks for the thaw is over on time and reported.
        let left = monitor.deadline.saturating_duration_since(Instant::now());
        monitor.pump(Duration::from_millis(50).min(left));
    }
    let thawed = tracer.thaw();
    if matches!(monitor.early, Some(Release::Stopped | Release::Stalled)) {
        // kcmp's SIGTSTP handler waits for this before it stops (after a
        // stall too: the set is thawed already).
        sys::send_byte(2, b'a');
    }
    // The lock: the next run may freeze now.
    sys::close(1);
    if monitor.gone {
        sys::exit_now(0);
    }
    while !monitor.asked && !monitor.gone {
        monitor.pump(Duration::from_millis(200));
        if rustix::process::getppid().map(|p| p.as_raw_pid()) != Some(job.me) {
            break;
        }
    }
    let code = monitor.early.map_or("thawed", Release::code);
    let line = match thawed {
        Ok(()) => format!("end {code}\n"),
        Err(e) => format!("end {code} {}\n", one_line(&e)),
    };
    write_all(0, &line);
    sys::exit_now(0)
}
