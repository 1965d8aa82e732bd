//! Work on all cores: [`parallel_map`] and a contention-free call counter.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The number of worker threads for a request (0: one per CPU).
pub(crate) fn workers(requested: usize) -> usize {
    if requested > 0 {
        requested
    } else {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    }
}

/// Runs `work(i)` for every i in 0..n on `workers` threads; results in order.
pub(crate) fn parallel_map<R: Send>(
    n: usize,
    workers: usize,
    work: impl Fn(usize) -> R + Sync,
) -> Vec<R> {
    run_all(n, workers, Duration::ZERO, work)
}

/// [`parallel_map`] for many small items: the calling thread starts alone
/// and starts the other workers only once the work has run [`ALONE`] with
/// items left, so that a small host's scan does not pay for threads it does
/// not need (each costs about 0.1 ms to start and stop) while a big one
/// gets all cores after a moment.
pub(crate) fn parallel_map_lazy<R: Send>(
    n: usize,
    workers: usize,
    work: impl Fn(usize) -> R + Sync,
) -> Vec<R> {
    run_all(n, workers, ALONE, work)
}

fn run_all<R: Send>(
    n: usize,
    workers: usize,
    alone: Duration,
    work: impl Fn(usize) -> R + Sync,
) -> Vec<R> {
    if n <= 1 || workers <= 1 {
        // Nothing to share: no thread to start.
        return (0..n).map(work).collect();
    }
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<R>>> = (0..n).map(|_| Mutex::new(None)).collect();
    let run_next = || loop {
        let i = next.fetch_add(1, AtomicOrdering::Relaxed);
        if i >= n {
            break;
        }
        let r = work(i);
        *slots[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
    };
    let started = Instant::now();
    std::thread::scope(|s| {
        let mut helpers = false;
        loop {
            if !helpers && started.elapsed() >= alone {
                helpers = true;
                for _ in 1..workers.min(n) {
                    s.spawn(run_next);
                }
            }
            let i = next.fetch_add(1, AtomicOrdering::Relaxed);
            if i >= n {
                break;
            }
            let r = work(i);
            *slots[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
        }
    });
    slots
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .expect("every slot filled")
        })
        .collect()
}

/// How long [`parallel_map_lazy`] works alone before it starts helpers.
const ALONE: Duration = Duration::from_millis(1);

/// A call counter that threads can bump without sharing a cache line: each
/// thread adds to its own padded slot, and [`CallCounter::total`] sums them.
#[derive(Default)]
pub(crate) struct CallCounter {
    slots: [PaddedCounter; COUNTER_SLOTS],
}

const COUNTER_SLOTS: usize = 16;

#[derive(Default)]
#[repr(align(128))]
struct PaddedCounter(AtomicU64);

thread_local! {
    static COUNTER_SLOT: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, AtomicOrdering::Relaxed) % COUNTER_SLOTS
    };
}

impl CallCounter {
    /// Counts one call.
    pub(crate) fn add(&self) {
        let slot = COUNTER_SLOT.with(|s| *s);
        self.slots[slot].0.fetch_add(1, AtomicOrdering::Relaxed);
        crate::freeze::step();
    }

    /// All calls counted so far.
    pub(crate) fn total(&self) -> u64 {
        self.slots
            .iter()
            .map(|s| s.0.load(AtomicOrdering::Relaxed))
            .sum()
    }
}
