//! Which way to place the next fd of a bucket, learnt from the bucket's
//! own placements so far ([`super::sorted::Sorted::place`]).
//!
//! Every way ends in the same kind of proof (a kcmp of the fd, or of the
//! engine's copy of it, against a group's anchor; or that copy founding a
//! group of its own), so the choice changes the cost, never the answer:
//! * **inheritance hint**: one kcmp against the group the parent's fd of
//!   the same number joined. Worth it while hints succeed often enough to
//!   repay the failed ones (children that reuse their parent's fd numbers
//!   for other files make them fail).
//!   A miss is not wasted when the search goes on with the live fd: it
//!   says on which side of that group the fd's description lies.
//! * **copy first**: when most fds reaching the search turn out to be
//!   new descriptions (many separate `open()`s of one path), take the
//!   engine's copy of the fd first and search with that stable copy:
//!   `log2(D)` kcmp calls for a new description instead of `log2(D) + 2`
//!   (a search with the live fd must re-check the copy's place against
//!   both neighbours: the fd may have changed meanwhile), at the price of
//!   one wasted copy (about two kcmp's time; for paths on a host where
//!   closing a copy could wait on a server, also an fdinfo read, about
//!   five) for each fd that joins an existing description.
//!
//! * **copy after a miss**: the same trade, for the fds that missed among
//!   their own task's groups (dups are found there with the live fd): the
//!   rest of the search is made with the copy, so a new description needs
//!   no neighbour checks.
//!
//! (A search among the task's own groups first, for dups, needs no
//! tactic: a miss narrows the search to the gap between two of them.)

/// The bucket's record so far.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Tactics {
    hint_tries: u32,
    hint_hits: u32,
    /// Fds that reached the global search, and how many of them were new
    /// descriptions.
    searched: u32,
    new: u32,
    /// Fds that missed among their own task's groups, and how many of them
    /// were new descriptions.
    missed: u32,
    missed_new: u32,
    /// Hints passed over since the last try (see [`explore`]).
    hint_skips: u32,
    /// A copy was refused here (no pidfd, no budget, a path whose copy
    /// could block on close): copying first would only add fdinfo reads.
    no_copies: bool,
}

/// A shortcut judged not worth it is still tried once in [`EXPLORE`]
/// times: the fds of a bucket are placed in an order (parents first, by fd
/// number) in which the first ones may not be like the rest, and a
/// shortcut never tried again would never be learnt again.
fn explore(skips: &mut u32) -> bool {
    *skips += 1;
    if *skips >= EXPLORE {
        *skips = 0;
        return true;
    }
    false
}

/// See [`explore`].
const EXPLORE: u32 = 8;

/// The time of one copy of an fd, in kcmp calls: `pidfd_getfd`, the lock
/// check (`F_OFD_GETLK`), the server check (an `fstat` of fusectl's root)
/// and the `close`: 2.0–2.2 µs against 1.10–1.13 µs a kcmp
/// (`bench/kcmp-cost.c`, `copy_ns` and `one_thread_ns`; AMD EPYC, Linux
/// 6.18).
const COPY: f64 = 1.9;

/// The time of one fdinfo read, in kcmp calls: 5.75 µs there
/// (`fdinfo_ns`: a path walk and a ptrace check).
const FDINFO: f64 = 5.2;

/// The rate of new descriptions above which copying first pays: a copy
/// (and, when `checked`, an fdinfo read) wasted on each fd that joins,
/// two neighbour checks saved on each new one: 0.49 when no check is
/// needed, 0.78 with one (it was 0.35 and 0.75, from a copy priced at
/// one kcmp).
fn copy_pays_above(checked: bool) -> f64 {
    let waste = COPY + if checked { FDINFO } else { 0.0 };
    waste / (waste + 2.0)
}

/// `log2(n + 1)`: the kcmp calls of a binary search among `n` groups.
fn search_cost(n: usize) -> f64 {
    ((n + 1) as f64).log2()
}

/// A success rate with an optimistic prior (two successes in two tries): a
/// bucket starts by trying, and only failures seen end it (a shortcut never
/// tried is never learnt).
fn optimistic(hits: u32, tries: u32) -> f64 {
    (hits as f64 + 2.0) / (tries as f64 + 2.0)
}

/// A rate with a neutral prior (one in two).
fn neutral(hits: u32, tries: u32) -> f64 {
    (hits as f64 + 1.0) / (tries as f64 + 2.0)
}

impl Tactics {
    /// Whether to try the inheritance hint (one call) before a search among
    /// `groups` descriptions.
    pub(crate) fn try_hint(&mut self, groups: usize) -> bool {
        let pays = optimistic(self.hint_hits, self.hint_tries) * search_cost(groups) >= 1.0;
        pays || explore(&mut self.hint_skips)
    }

    /// Records a hint's outcome.
    pub(crate) fn hint(&mut self, hit: bool) {
        self.hint_tries += 1;
        self.hint_hits += hit as u32;
    }

    /// Whether to copy the fd before the search: when new descriptions are
    /// frequent enough to repay the wasted copies. With `c` the time of a
    /// kcmp, `g` of a copy and `f` of an fdinfo read (`checked`: a path
    /// whose copy must first be shown safe to close), copying first pays
    /// when the rate of new descriptions `p` exceeds `(g + f) / (g + f +
    /// 2c)` ([`copy_pays_above`]).
    pub(crate) fn copy_first(&self, checked: bool) -> bool {
        let p = neutral(self.new, self.searched);
        !self.no_copies && p > copy_pays_above(checked)
    }

    /// Whether to copy the fd after it missed among its task's own groups
    /// and search for the rest with the copy: the same trade as
    /// [`Self::copy_first`] (a copy wasted on each fd that joins a
    /// description, two neighbour checks saved on each new one), judged on
    /// the fds it applies to. Dups found among their task's own groups,
    /// the bulk of a bucket's joins, no longer count against it.
    pub(crate) fn copy_after_miss(&self, checked: bool) -> bool {
        let p = neutral(self.missed_new, self.missed);
        !self.no_copies && p > copy_pays_above(checked)
    }

    /// Records the outcome of a search after a miss among the task's own
    /// groups.
    pub(crate) fn missed_own(&mut self, new: bool) {
        self.missed += 1;
        self.missed_new += new as u32;
    }

    /// Records that a copy was refused: no more copying first here (a
    /// bucket on FUSE, NFS or overlayfs would read fdinfo twice per fd).
    pub(crate) fn copy_refused(&mut self) {
        self.no_copies = true;
    }

    /// Records the outcome of a global search.
    pub(crate) fn searched(&mut self, new: bool) {
        self.searched += 1;
        self.new += new as u32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_stop_when_they_keep_failing() {
        let mut t = Tactics::default();
        assert!(t.try_hint(1000) && t.try_hint(1));
        for _ in 0..40 {
            t.hint(false);
        }
        // Passed over, but tried again once in EXPLORE times.
        let tried = (0..EXPLORE * 4).filter(|_| t.try_hint(1000)).count();
        assert_eq!(tried, 4);
        let mut t = Tactics::default();
        for _ in 0..20 {
            t.hint(true);
        }
        assert!(t.try_hint(2));
    }

    #[test]
    fn copy_first_follows_the_rate_of_new_descriptions() {
        let mut t = Tactics::default();
        assert!(t.copy_first(false) && !t.copy_first(true));
        for _ in 0..10 {
            t.searched(true);
        }
        assert!(t.copy_first(false) && t.copy_first(true));
        for _ in 0..30 {
            t.searched(false);
        }
        assert!(!t.copy_first(false) && !t.copy_first(true));
        let mut t = Tactics::default();
        assert!(t.copy_first(false));
        t.copy_refused();
        assert!(!t.copy_first(false));
    }

    #[test]
    fn copy_after_miss_follows_the_rate_among_misses_only() {
        // Two dups found among their own groups for each new description:
        // copying first does not pay, copying after a miss does.
        let mut t = Tactics::default();
        for _ in 0..30 {
            t.searched(true);
            t.missed_own(true);
            t.searched(false);
            t.searched(false);
        }
        assert!(!t.copy_first(true) && t.copy_after_miss(true));
        // Misses that join descriptions of other tasks end it.
        for _ in 0..80 {
            t.searched(false);
            t.missed_own(false);
        }
        assert!(!t.copy_after_miss(true) && !t.copy_after_miss(false));
        let mut t = Tactics::default();
        t.copy_refused();
        assert!(!t.copy_after_miss(false));
    }
}
