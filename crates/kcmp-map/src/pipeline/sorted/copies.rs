//! Placement through the engine's own copy of an fd (`pidfd_getfd`): a
//! copy cannot change, so a search made with it is over a fixed order, and
//! a new description gets the copy as its anchor ([`super::Rep::Own`]).

use super::{Placed, Probe, Rows, Sorted};
use crate::pipeline::anchor::Rep;
use kcmp::{Error, FdNum, KcmpOrdering};
use rustix::fd::OwnedFd;
use std::ops::Range;

impl<R: Rows> Sorted<'_, R> {
    /// Copy first ([`crate::pipeline::tactics::Tactics::copy_first`]), or
    /// after a miss among the task's own groups (`after_miss`): the fd's
    /// description lies within `range` (all groups, or what a live-fd
    /// comparison with a hint or with the task's own groups left), and the
    /// engine's copy `own` of the fd is searched for there (it cannot
    /// change: the search is over a fixed order). The fd holds what its
    /// copy holds (`pidfd_getfd` hands over the very description): equal to
    /// a group's anchor, it joins that group (an exact chain: fd = copy,
    /// copy = anchor by kcmp); equal to none, the copy founds a new group,
    /// the fd its first member. The copy's own comparisons put it between
    /// its two neighbours, except at an end of `range` drawn by the live
    /// fd's comparisons (the fd may have changed since): only there is the
    /// neighbour compared with the copy; if the copy is out of place, it
    /// is searched for among all groups.
    pub(super) fn place_copy_within(
        &mut self,
        row: u32,
        own: OwnedFd,
        range: Range<usize>,
        after_miss: bool,
    ) -> Placed {
        let mine = FdNum::new(rustix::fd::AsRawFd::as_raw_fd(&own)).expect("open fd");
        let found = match self.search(Probe::Copy(mine), range.clone()) {
            Ok(Err(pos)) => Ok(self.place_anchor(mine, pos, range)),
            Ok(Ok(g)) => Ok(Err(g)),
            Err(e) => Err(e),
        };
        let new = matches!(found, Ok(Ok(_)));
        if found.is_ok() {
            self.tactics.searched(new);
            if after_miss {
                self.tactics.missed_own(new);
            }
        }
        match found {
            Ok(Ok(pos)) => {
                self.insert_group(pos, Rep::Own(own), vec![row]);
                Placed::Joined
            }
            Ok(Err(g)) => {
                self.budget.release(Rep::Own(own));
                self.join(g, row)
            }
            Err(e) => {
                self.budget.release(Rep::Own(own));
                Placed::Failed(e)
            }
        }
    }

    /// Whether a copy of this bucket's fds costs an fdinfo read too (a file
    /// with a path, on a host where closing its copy could wait on a
    /// server): what the copy-first tactics weigh.
    pub(super) fn copies_checked(&self) -> bool {
        self.paths && self.budget.path_copies_checked()
    }

    /// The engine's copy of `row`'s fd, when it may take one: `Ok(None)`
    /// when not (no pidfd, no budget, closing a copy of this path could
    /// block); an error when the fd is closed or its task exited.
    pub(super) fn copy_of(&self, row: u32) -> Result<Option<OwnedFd>, Error> {
        let (pid, fd) = self.rows.locate(row);
        self.budget
            .copy(self.rows.pidfd(row), pid, fd, self.paths)
            .map_err(|e| Error::os(format!("pidfd_getfd({fd})"), e))
    }

    /// `row` matched no description: it starts one at `pos`, anchored when
    /// possible; reported as changed when its copy turns out to be a
    /// description it was not found in.
    pub(super) fn found_new(&mut self, pos: usize, row: u32) -> Placed {
        let own = match self.copy_of(row) {
            Ok(Some(own)) => own,
            Ok(None) => {
                // No anchors here: the member stands in (re-verified on failure).
                self.insert_group(pos, Rep::Member(row), vec![row]);
                return Placed::Joined;
            }
            // Closed (or its task exited) since the search: never a
            // representative.
            Err(e) => return Placed::Failed(e),
        };
        // The copy is of what the fd holds at getfd time: the fd is its
        // first member. If the fd did not change since the search, the copy
        // belongs at `pos`: two comparisons with the neighbours confirm it;
        // otherwise a binary search among the representatives places it.
        let mine = FdNum::new(rustix::fd::AsRawFd::as_raw_fd(&own)).expect("open fd");
        match self.place_anchor(mine, pos, pos..pos) {
            Ok(at) => {
                self.insert_group(at, Rep::Own(own), vec![row]);
                Placed::Joined
            }
            Err(_) => {
                // Its copy equals a description the search did not find
                // the fd in: the fd changed during its placement.
                self.budget.release(Rep::Own(own));
                Placed::Changed
            }
        }
    }

    /// Where a new anchor `mine` goes: `Ok(pos)` when its neighbours agree,
    /// else where a search with the anchor itself puts it (a member
    /// standing in that fails is dropped and the search starts again, never
    /// a place taken on trust); `Err(g)` when it equals group `g`. A search
    /// with the anchor itself over `searched` that ended at `pos` already
    /// compared it with the neighbours inside that range (a binary search
    /// narrows by comparisons with the probe): those are not compared again.
    pub(super) fn place_anchor(
        &mut self,
        mine: FdNum,
        pos: usize,
        searched: Range<usize>,
    ) -> Result<usize, usize> {
        let copy = Probe::Copy(mine);
        let pos = pos.min(self.len());
        let side = |s: &mut Self, g: usize, want: KcmpOrdering| match s.compare_probe(g, copy) {
            Ok(Some(o)) if o == want => Some(true),
            Ok(Some(KcmpOrdering::Unordered(_))) => None, // no order: nothing to check
            _ => Some(false), // out of place, or a stand-in failed (groups moved)
        };
        let left = if pos == 0 || pos > searched.start {
            Some(true)
        } else {
            side(self, pos - 1, KcmpOrdering::Greater)
        };
        let right = match left {
            Some(true) if pos < self.len() && pos >= searched.end => {
                side(self, pos, KcmpOrdering::Less)
            }
            other => other,
        };
        match right {
            Some(true) | None => return Ok(pos.min(self.len())),
            Some(false) => {}
        }
        match self.search(copy, 0..self.len()) {
            Ok(Ok(g)) => Err(g),
            Ok(Err(at)) => Ok(at),
            // Only an anchor can fail here, and an anchor cannot.
            Err(_) => Ok(pos.min(self.len())),
        }
    }
}
