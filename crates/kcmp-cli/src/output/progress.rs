//! A progress bar on stderr, only on a terminal and only for scans that run
//! longer than about half a second.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kcmp_map::scan::ScanProgress;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Shows progress once the work has run for `delay`.
pub struct DelayedProgress {
    started: Instant,
    delay: Duration,
    enabled: bool,
    bar: Mutex<Option<(u8, ProgressBar)>>,
}

impl DelayedProgress {
    /// A progress reporter for stderr (silent when stderr is not a terminal).
    pub fn stderr() -> Self {
        DelayedProgress {
            started: Instant::now(),
            delay: Duration::from_millis(500),
            enabled: std::io::stderr().is_terminal(),
            bar: Mutex::new(None),
        }
    }

    /// Reports one update.
    pub fn update(&self, p: ScanProgress) {
        if !self.enabled || self.started.elapsed() < self.delay {
            return;
        }
        let mut slot = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        let phase_name = match p.phase {
            0 => "listing fds",
            1 => "grouping descriptions",
            _ => "process-level kinds",
        };
        let needs_new = !matches!(&*slot, Some((phase, _)) if *phase == p.phase);
        if needs_new {
            if let Some((_, old)) = slot.take() {
                old.finish_and_clear();
            }
            let bar = ProgressBar::with_draw_target(Some(p.total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{msg:>22} [{bar:30}] {pos}/{len}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_message(phase_name);
            *slot = Some((p.phase, bar));
        }
        if let Some((_, bar)) = &*slot {
            bar.set_position(p.done);
        }
    }

    /// Clears the bar.
    pub fn finish(&self) {
        if let Some((_, bar)) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).take() {
            bar.finish_and_clear();
        }
    }
}
