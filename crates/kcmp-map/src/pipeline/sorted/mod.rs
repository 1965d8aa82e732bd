//! One bucket's descriptions in kcmp order, each with its representative
//! ([`Rep`]), and the placement of one fd among them.
//!
//! # Why a placement is exact
//! An fd joins a description only on `kcmp(rep, fd) == 0`, or through the
//! engine's own copy of it: `pidfd_getfd` hands over the very description
//! the fd refers to at that moment, so the copy equal (by kcmp) to an
//! anchor puts the fd in that anchor's description (an exact chain), and a
//! copy equal to none founds a new description with the fd as its first
//! member and the copy as its anchor. With an anchor as representative a
//! comparison is a proof: the anchor cannot change, so the fd held that
//! description at that moment. Two fds that never changed and hold
//! different descriptions can therefore never meet in one group, and a
//! stable fd always finds its description (the anchors are in a fixed
//! order, so the binary search is over a sorted list; a new anchor is
//! placed by comparisons of the anchor itself, never of the live fd). A
//! failed comparison against an anchor can only be the fd's fault; against
//! a member standing in ([`Rep::Member`]) both sides are checked, and only
//! the side that fails is dropped.
//!
//! Which way an fd is placed (hint, own groups, copy first or after a miss
//! among its own groups) is chosen from the bucket's record
//! ([`super::tactics`]): it changes the cost, never the answer.

use super::anchor::{Budget, Rep};
use super::group::FileComparator;
use super::tactics::Tactics;
use kcmp::{Error, FdNum, KcmpOrdering, Pid};
use rustix::fd::BorrowedFd;
use std::ops::Range;

mod copies;
mod parts;
#[cfg(test)]
mod tests;

/// One description: its representative and its member rows.
#[derive(Debug)]
pub(crate) struct Group {
    pub rep: Rep,
    pub rows: Vec<u32>,
    id: u32,
}

/// What became of one fd.
#[derive(Debug)]
pub(crate) enum Placed {
    /// It joined a group.
    Joined,
    /// It was seen changing while it was placed: reported as changed.
    Changed,
    /// A comparison of this fd failed (EBADF: closed; ESRCH: exited; EPERM).
    Failed(Error),
}

/// Where a row lives: its (pid, fd) and its task's pidfd (shared by the
/// workers of a merge: [`Sorted::absorb`]).
pub(crate) trait Rows: Sync {
    /// The (pid, fd) of a row.
    fn locate(&self, row: u32) -> (Pid, FdNum);
    /// The pidfd of the row's task, when it has one.
    fn pidfd(&self, row: u32) -> Option<BorrowedFd<'_>>;
    /// The row's task (index).
    fn task(&self, row: u32) -> u32;
}

/// The groups of one bucket, in kcmp order of their descriptions.
pub(crate) struct Sorted<'a, R: Rows> {
    /// The group ids in kcmp order of their descriptions (4 bytes each: an
    /// insert moves the ids after it, not the groups).
    order: Vec<u32>,
    /// Each group by id (`None` once removed, or taken by
    /// [`Self::into_groups`]).
    slots: Vec<Option<Group>>,
    rows: &'a R,
    cmp: &'a FileComparator<'a>,
    budget: &'a Budget,
    /// The bucket's files have paths: copy one only where closing the copy
    /// cannot block ([`Budget::copy`]).
    paths: bool,
    /// Members that stood in as representative and failed: (row, error).
    pub dropped_reps: Vec<(u32, Error)>,
    /// The group id of each placed row.
    group_of: foldhash::HashMap<u32, u32>,
    /// Each group id's label: labels grow with positions in `order`, and
    /// an insert leaves every other label as it is (mostly: see
    /// [`Self::insert_group`]), so that no insert renumbers the groups
    /// after it (a bucket of 12,000 distinct descriptions spent a tenth of
    /// a scan renumbering). [`GONE`] for a removed group.
    label: Vec<u64>,
    /// The group ids each task's rows joined (a dup joins its source).
    of_task: foldhash::HashMap<u32, Vec<u32>>,
    /// (task, group id) pairs of `of_task`, for a constant-time check.
    task_in: foldhash::HashSet<(u32, u32)>,
    /// How to place the next fd, learnt from this bucket.
    tactics: Tactics,
    /// In a copy made by [`Self::fork`]: the groups with a smaller id are
    /// the original's (0 otherwise).
    forked_from: u32,
    /// Rows that joined through their inheritance hint (with those of the
    /// parts absorbed).
    pub(crate) hinted: u64,
}

/// What a search among the task's own groups found.
enum Own {
    /// The group at this position.
    Found(usize),
    /// Not among them: between these positions.
    Between(Range<usize>),
    /// A representative failed (groups moved): search everything.
    Restart,
}

/// What a search compares with the groups: a listed fd, or the engine's
/// own copy of one.
#[derive(Debug, Clone, Copy)]
enum Probe {
    Row(u32),
    Copy(FdNum),
}

/// The label of a removed group.
const GONE: u64 = u64::MAX;

/// How many times a comparison with a member standing in is made again
/// after a failure that neither side shows by itself.
const RETRIES: u32 = 3;

/// The distance between neighbouring labels when they are (re)assigned.
const LABEL_STEP: u64 = 1 << 32;

impl<'a, R: Rows> Sorted<'a, R> {
    /// Files without a path (pipes, sockets, anonymous inodes): their
    /// copies are taken without a mount check (closing them cannot block).
    pub(crate) fn without_paths(mut self) -> Self {
        self.paths = false;
        self
    }

    pub(crate) fn new(rows: &'a R, cmp: &'a FileComparator<'a>, budget: &'a Budget) -> Self {
        Sorted {
            order: Vec::new(),
            slots: Vec::new(),
            rows,
            cmp,
            budget,
            paths: true,
            dropped_reps: Vec::new(),
            group_of: Default::default(),
            label: Vec::new(),
            of_task: Default::default(),
            task_in: Default::default(),
            tactics: Tactics::default(),
            forked_from: 0,
            hinted: 0,
        }
    }

    /// The position of the group that `row` joined, if it was placed.
    pub(crate) fn group_of(&self, row: u32) -> Option<usize> {
        self.position(*self.group_of.get(&row)?)
    }

    /// The position of group `id` in `order` (a binary search by label),
    /// `None` when it was removed.
    fn position(&self, id: u32) -> Option<usize> {
        let l = self.label[id as usize];
        if l == GONE {
            return None;
        }
        let label = &self.label;
        let pos = self.order.partition_point(|&g| label[g as usize] < l);
        debug_assert_eq!(self.order.get(pos).copied(), Some(id));
        Some(pos)
    }

    /// The label of the group at `pos`, or [`GONE`] past the last.
    fn label_at(&self, pos: usize) -> u64 {
        self.order
            .get(pos)
            .map_or(GONE, |&id| self.label[id as usize])
    }

    /// Inserts a group at `at`, labelled between its neighbours (after the
    /// last one: one step on); when no label is free between them, every
    /// group is labelled again, a step apart.
    fn insert_group(&mut self, at: usize, rep: Rep, rows: Vec<u32>) {
        let id = self.label.len() as u32;
        let before = if at == 0 { 0 } else { self.label_at(at - 1) };
        let after = self.label_at(at);
        let label = match after {
            GONE => before.checked_add(LABEL_STEP).filter(|&l| l < GONE),
            _ => (after - before >= 2).then(|| before + (after - before) / 2),
        };
        self.label.push(label.unwrap_or(GONE));
        self.order.insert(at, id);
        if label.is_none() {
            self.relabel();
        }
        for &r in &rows {
            self.group_of.insert(r, id);
            self.note_task(r, id);
        }
        self.slots.push(Some(Group { rep, rows, id }));
    }

    fn remove_group(&mut self, at: usize) -> Group {
        let id = self.order.remove(at);
        let g = self.slots[id as usize].take().expect("a placed group");
        for &r in &g.rows {
            self.forget(self.rows.task(r), g.id);
        }
        self.label[g.id as usize] = GONE;
        g
    }

    /// Labels every group again, a step apart, in their order.
    fn relabel(&mut self) {
        for (p, &id) in self.order.iter().enumerate() {
            self.label[id as usize] = (p as u64 + 1) * LABEL_STEP;
        }
    }

    /// How `row` orders against group `g`'s representative (the fd compared
    /// with the description: Less means the fd's description sorts first).
    fn compare(&self, g: usize, row: u32) -> Result<KcmpOrdering, Error> {
        let (rp, rf) = self
            .at(g)
            .rep
            .locate(self.budget.me(), |r| self.rows.locate(r));
        let (p, f) = self.rows.locate(row);
        (self.cmp)(p, f, rp, rf)
    }

    /// Places `row`, trying group `hint` first (an inheritance hint).
    pub(crate) fn place(&mut self, row: u32, hint: Option<usize>) -> Placed {
        let groups = self.len();
        let hint = hint
            .filter(|&h| h < groups)
            .filter(|_| self.tactics.try_hint(groups));
        // The hint is tried with the live fd: a copy taken first would be
        // wasted on every hit (copying first before the hint wasted 30,000
        // copies on the wide shape, whose children's hints all hit).
        let range = match hint.map(|h| self.hint_range(h, Probe::Row(row))) {
            None => 0..self.len(),
            Some(Ok(Ok(h))) => return self.join(h, row),
            Some(Ok(Err(range))) => range,
            Some(Err(e)) => return Placed::Failed(e),
        };
        if self.tactics.copy_first(self.copies_checked()) {
            match self.copy_of(row) {
                Ok(Some(own)) => return self.place_copy_within(row, own, range, false),
                Ok(None) => self.tactics.copy_refused(), // the live fd's way
                Err(e) => return Placed::Failed(e),
            }
        }
        self.place_by_search(row, range)
    }

    /// Compares `probe` with the hint's group `h`: `Ok(Ok(h))` when equal,
    /// else the range of groups its description lies in (a miss still says
    /// on which side of `h`).
    fn hint_range(&mut self, h: usize, probe: Probe) -> Result<Result<usize, Range<usize>>, Error> {
        let groups = self.len();
        let range = match self.compare_probe(h, probe)? {
            Some(KcmpOrdering::Equal) => {
                self.tactics.hint(true);
                self.hinted += 1;
                return Ok(Ok(h));
            }
            Some(KcmpOrdering::Less) => 0..h,
            Some(KcmpOrdering::Greater) => h + 1..groups,
            // No order (fallbacks), or a member standing in failed (a
            // group may have gone).
            _ => 0..self.len(),
        };
        self.tactics.hint(false);
        Ok(Err(range))
    }

    /// A search with the live fd in `range`, its own task's groups first;
    /// after a miss there, the rest of the search is made with the
    /// engine's copy of the fd when the bucket's record says it pays
    /// ([`Tactics::copy_after_miss`]); else with the live fd, and a new
    /// description gets an anchor placed by [`Self::found_new`].
    fn place_by_search(&mut self, row: u32, range: Range<usize>) -> Placed {
        let range = match self.search_own(row, range) {
            Ok(Own::Found(g)) => {
                self.tactics.searched(false);
                return self.join(g, row);
            }
            Ok(Own::Between(r)) => r,
            Ok(Own::Restart) => 0..self.len(),
            Err(e) => return Placed::Failed(e),
        };
        if self.tactics.copy_after_miss(self.copies_checked()) {
            match self.copy_of(row) {
                Ok(Some(own)) => return self.place_copy_within(row, own, range, true),
                Ok(None) => self.tactics.copy_refused(), // the live fd's way
                Err(e) => return Placed::Failed(e),
            }
        }
        match self.search(Probe::Row(row), range) {
            Ok(Ok(g)) => {
                self.tactics.searched(false);
                self.tactics.missed_own(false);
                self.join(g, row)
            }
            Ok(Err(pos)) => {
                let placed = self.found_new(pos, row);
                self.tactics.searched(matches!(placed, Placed::Joined));
                self.tactics.missed_own(matches!(placed, Placed::Joined));
                placed
            }
            Err(e) => Placed::Failed(e),
        }
    }

    /// Records that `row`'s task holds group `id`; each task's groups are
    /// kept in the order of their positions (which inserts never change).
    fn note_task(&mut self, row: u32, id: u32) {
        let task = self.rows.task(row);
        if self.task_in.insert((task, id)) {
            let label = &self.label;
            let ids = self.of_task.entry(task).or_default();
            let at = ids.partition_point(|&x| label[x as usize] < label[id as usize]);
            ids.insert(at, id);
        }
    }

    /// Group `id` is no longer one of `task`'s.
    fn forget(&mut self, task: u32, id: u32) {
        if self.task_in.remove(&(task, id)) {
            if let Some(ids) = self.of_task.get_mut(&task) {
                ids.retain(|&x| x != id);
            }
        }
    }

    /// Binary search among the groups of `range` that the row's own task
    /// already joined (a subset of a sorted list is sorted): a dup finds its
    /// source in `log2(the task's descriptions)` calls, and a miss still
    /// narrows the range to the gap between two of them, so that the search
    /// costs about what a search of the whole range would.
    fn search_own(&mut self, row: u32, range: Range<usize>) -> Result<Own, Error> {
        let task = self.rows.task(row);
        let Some(ids) = self.of_task.get(&task) else {
            return Ok(Own::Between(range));
        };
        let (start, end) = (self.label_at(range.start), self.label_at(range.end));
        let label = &self.label;
        let (mut lo, mut hi) = (
            ids.partition_point(|&x| label[x as usize] < start),
            ids.partition_point(|&x| label[x as usize] < end),
        );
        let mut between = range;
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let id = self.of_task[&task][mid];
            let Some(g) = self.position(id) else {
                self.forget(task, id);
                return Ok(Own::Restart);
            };
            match self.compare_checked(g, row)? {
                None => return Ok(Own::Restart), // a representative failed
                Some(KcmpOrdering::Equal) => return Ok(Own::Found(g)),
                Some(KcmpOrdering::Less) => (hi, between.end) = (mid, g),
                Some(KcmpOrdering::Greater) => (lo, between.start) = (mid + 1, g + 1),
                Some(KcmpOrdering::Unordered(_)) => return Ok(Own::Restart),
            }
        }
        Ok(Own::Between(between))
    }

    fn join(&mut self, g: usize, row: u32) -> Placed {
        let id = self.order[g];
        self.at_mut(g).rows.push(row);
        self.group_of.insert(row, id);
        self.note_task(row, id);
        Placed::Joined
    }

    /// `compare`, re-verifying both sides when a member-representative
    /// fails: `Ok(None)` when the representative was at fault (it is
    /// dropped from its group and the caller searches again).
    fn compare_checked(&mut self, g: usize, row: u32) -> Result<Option<KcmpOrdering>, Error> {
        let mut retries = 0;
        loop {
            let e = match self.compare(g, row) {
                Ok(o) => return Ok(Some(o)),
                Err(e) => e,
            };
            let Rep::Member(m) = self.at(g).rep else {
                return Err(e); // an anchor cannot fail: the fd did
            };
            let (p, f) = self.rows.locate(row);
            (self.cmp)(p, f, p, f)?; // the fd itself fails: its fault
            if !self.member_fails(g, m, &mut retries) {
                return Err(e); // neither, again and again: the fd's
            }
            if !matches!(self.at_opt(g).map(|x| &x.rep), Some(Rep::Member(r)) if *r == m) {
                return Ok(None); // dropped: search again
            }
        }
    }

    /// After a comparison with group `g`'s member `m` standing in failed,
    /// and the other side compares with itself: `m` is dropped if it fails
    /// by itself; if not (one side changed between the calls: an fd closed
    /// and opened again, a permission that flapped), the comparison is to
    /// be made again, up to [`RETRIES`] times (a stable member was dropped on
    /// the fd's word before). `false` when the retries are spent.
    fn member_fails(&mut self, g: usize, m: u32, retries: &mut u32) -> bool {
        let (mp, mf) = self.rows.locate(m);
        match (self.cmp)(mp, mf, mp, mf) {
            Err(own) => {
                self.drop_rep(g, m, own);
                true
            }
            Ok(_) if *retries < RETRIES => {
                *retries += 1;
                true
            }
            Ok(_) => false,
        }
    }

    /// The representative `m` of group `g` failed: it leaves its group; the
    /// next member (if any) stands in.
    fn drop_rep(&mut self, g: usize, m: u32, e: Error) {
        self.leave(g, m, e);
        let group = self.at_mut(g);
        match group.rows.first() {
            Some(&next) => group.rep = Rep::Member(next),
            None => {
                self.remove_group(g);
            }
        }
    }

    /// Member `m` failed (`e`): it leaves group `g` and is reported with the
    /// dropped representatives; the group keeps its representative.
    fn leave(&mut self, g: usize, m: u32, e: Error) {
        self.dropped_reps.push((m, e));
        self.group_of.remove(&m);
        let task = self.rows.task(m);
        let rows = self.rows;
        let group = self.at_mut(g);
        group.rows.retain(|&r| r != m);
        let id = group.id;
        if !group.rows.iter().any(|&r| rows.task(r) == task) {
            self.forget(task, id);
        }
    }

    /// How `probe` orders against group `g`: `Ok(None)` when a member
    /// standing in as representative failed (it was dropped; search again).
    fn compare_probe(&mut self, g: usize, probe: Probe) -> Result<Option<KcmpOrdering>, Error> {
        let fd = match probe {
            Probe::Row(r) => return self.compare_checked(g, r),
            Probe::Copy(fd) => fd,
        };
        let (rp, rf) = self
            .at(g)
            .rep
            .locate(self.budget.me(), |r| self.rows.locate(r));
        let mut retries = 0;
        loop {
            let e = match (self.cmp)(self.budget.me(), fd, rp, rf) {
                Ok(o) => return Ok(Some(o)),
                Err(e) => e,
            };
            // The copy cannot fail: the member standing in did, or changed.
            let Rep::Member(m) = self.at(g).rep else {
                return Err(e);
            };
            if !self.member_fails(g, m, &mut retries) {
                return Err(e);
            }
            if !matches!(self.at_opt(g).map(|x| &x.rep), Some(Rep::Member(r)) if *r == m) {
                return Ok(None); // dropped: search again
            }
        }
    }

    /// Binary search: `Ok(Ok(g))` found, `Ok(Err(pos))` absent (insert at
    /// pos). Without an order (fallbacks), a linear scan.
    fn search(&mut self, probe: Probe, range: Range<usize>) -> Result<Result<usize, usize>, Error> {
        let (mut lo, mut hi) = (range.start, range.end);
        'restart: loop {
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                match self.compare_probe(mid, probe)? {
                    None => {
                        (lo, hi) = (0, self.len());
                        continue 'restart;
                    }
                    Some(KcmpOrdering::Equal) => return Ok(Ok(mid)),
                    Some(KcmpOrdering::Less) => hi = mid,
                    Some(KcmpOrdering::Greater) => lo = mid + 1,
                    Some(KcmpOrdering::Unordered(_)) => return self.scan_all(probe),
                }
            }
            return Ok(Err(lo));
        }
    }

    fn scan_all(&mut self, probe: Probe) -> Result<Result<usize, usize>, Error> {
        let mut g = 0;
        while g < self.len() {
            match self.compare_probe(g, probe)? {
                None => g = 0,
                Some(o) if o.is_equal() => return Ok(Ok(g)),
                Some(_) => g += 1,
            }
        }
        Ok(Err(self.len()))
    }

    /// The groups, in kcmp order (their anchors still open).
    pub(crate) fn into_groups(mut self) -> Vec<Group> {
        let slots = &mut self.slots;
        self.order
            .iter()
            .map(|&id| slots[id as usize].take().expect("a placed group"))
            .collect()
    }

    /// The number of groups.
    fn len(&self) -> usize {
        self.order.len()
    }

    /// The group at position `g`.
    fn at(&self, g: usize) -> &Group {
        self.slots[self.order[g] as usize]
            .as_ref()
            .expect("a placed group")
    }

    /// The group at position `g`, if there is one.
    fn at_opt(&self, g: usize) -> Option<&Group> {
        self.slots[*self.order.get(g)? as usize].as_ref()
    }

    /// The group at position `g`, to change.
    fn at_mut(&mut self, g: usize) -> &mut Group {
        self.slots[self.order[g] as usize]
            .as_mut()
            .expect("a placed group")
    }
}
