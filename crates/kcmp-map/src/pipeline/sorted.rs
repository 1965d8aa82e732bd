//! One bucket's descriptions in kcmp order, each with its representative
//! ([`Rep`]), and the placement of one fd among them.
//!
//! # Why a placement is exact
//! An fd joins a description only on `kcmp(rep, fd) == 0`. With an anchor
//! as representative that comparison is a proof: the anchor cannot change,
//! so the fd held that description at that moment. Two fds that never
//! changed and hold different descriptions can therefore never meet in one
//! group, and a stable fd always finds its description (the anchors are in
//! a fixed order, so the binary search is over a sorted list). A failed
//! comparison against an anchor can only be the fd's fault; against a
//! member standing in ([`Rep::Member`]) both sides are checked, and only
//! the side that fails is dropped.

use super::anchor::{Budget, Rep};
use super::group::FileComparator;
use kcmp::{Error, FdNum, KcmpOrdering, Pid};
use rustix::fd::BorrowedFd;

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
    /// It changed under every attempt: reported as changed.
    Changed,
    /// A comparison of this fd failed (EBADF: closed; ESRCH: exited; EPERM).
    Failed(Error),
}

/// Where a row lives: its (pid, fd) and its task's pidfd.
pub(crate) trait Rows {
    /// The (pid, fd) of a row.
    fn locate(&self, row: u32) -> (Pid, FdNum);
    /// The pidfd of the row's task, when it has one.
    fn pidfd(&self, row: u32) -> Option<BorrowedFd<'_>>;
    /// The row's task (index).
    fn task(&self, row: u32) -> u32;
}

/// The groups of one bucket, in kcmp order of their descriptions.
pub(crate) struct Sorted<'a, R: Rows> {
    pub groups: Vec<Group>,
    rows: &'a R,
    cmp: &'a FileComparator<'a>,
    budget: &'a Budget,
    /// The bucket's files have paths: copy one only where closing the copy
    /// cannot block ([`Budget::path_copy_is_safe`]).
    paths: bool,
    /// Members that stood in as representative and failed: (row, error).
    pub dropped_reps: Vec<(u32, Error)>,
    /// The group id of each placed row, and the position of each group id.
    group_of: std::collections::HashMap<u32, u32>,
    pos_of: Vec<usize>,
    /// The group ids each task's rows joined (a dup joins its source).
    of_task: std::collections::HashMap<u32, Vec<u32>>,
}

/// The position of a removed group.
const GONE: usize = usize::MAX;

/// How many times a changing fd is placed again before it is reported as
/// changed.
const ATTEMPTS: usize = 3;

impl<'a, R: Rows> Sorted<'a, R> {
    /// Files without a path (pipes, sockets, anonymous inodes): their
    /// copies are taken without a mount check (closing them cannot block).
    pub(crate) fn without_paths(mut self) -> Self {
        self.paths = false;
        self
    }

    pub(crate) fn new(rows: &'a R, cmp: &'a FileComparator<'a>, budget: &'a Budget) -> Self {
        Sorted {
            groups: Vec::new(),
            rows,
            cmp,
            budget,
            paths: true,
            dropped_reps: Vec::new(),
            group_of: std::collections::HashMap::new(),
            pos_of: Vec::new(),
            of_task: std::collections::HashMap::new(),
        }
    }

    /// The position of the group that `row` joined, if it was placed.
    pub(crate) fn group_of(&self, row: u32) -> Option<usize> {
        let pos = self.pos_of[*self.group_of.get(&row)? as usize];
        (pos != GONE).then_some(pos)
    }

    fn insert_group(&mut self, at: usize, rep: Rep, rows: Vec<u32>) {
        let id = self.pos_of.len() as u32;
        self.pos_of.push(at);
        for &r in &rows {
            self.group_of.insert(r, id);
            self.note_task(r, id);
        }
        self.groups.insert(at, Group { rep, rows, id });
        self.renumber(at);
    }

    fn remove_group(&mut self, at: usize) -> Group {
        let g = self.groups.remove(at);
        self.pos_of[g.id as usize] = GONE;
        self.renumber(at);
        g
    }

    fn renumber(&mut self, from: usize) {
        for (p, g) in self.groups.iter().enumerate().skip(from) {
            self.pos_of[g.id as usize] = p;
        }
    }

    /// How `row` orders against group `g`'s representative (the fd compared
    /// with the description: Less means the fd's description sorts first).
    fn compare(&self, g: usize, row: u32) -> Result<KcmpOrdering, Error> {
        let (rp, rf) = self.groups[g].rep.locate(|r| self.rows.locate(r));
        let (p, f) = self.rows.locate(row);
        (self.cmp)(p, f, rp, rf)
    }

    /// Places `row`, trying group `hint` first (an inheritance hint).
    pub(crate) fn place(&mut self, row: u32, hint: Option<usize>) -> Placed {
        for _ in 0..ATTEMPTS {
            if let Some(h) = hint.filter(|&h| h < self.groups.len()) {
                match self.compare_checked(h, row) {
                    Ok(Some(KcmpOrdering::Equal)) => return self.join(h, row),
                    Ok(_) => {}
                    Err(e) => return Placed::Failed(e),
                }
            } else {
                match self.search_own(row) {
                    Ok(Some(g)) => return self.join(g, row),
                    Ok(None) => {}
                    Err(e) => return Placed::Failed(e),
                }
            }
            match self.search(row) {
                Ok(Ok(g)) => return self.join(g, row),
                Ok(Err(pos)) => match self.found_new(pos, row) {
                    Some(p) => return p,
                    None => continue,
                },
                Err(e) => return Placed::Failed(e),
            }
        }
        Placed::Changed
    }

    fn note_task(&mut self, row: u32, id: u32) {
        let ids = self.of_task.entry(self.rows.task(row)).or_default();
        if !ids.contains(&id) {
            ids.push(id);
        }
    }

    /// Binary search among the groups the row's own task already joined (a
    /// subset of a sorted list is sorted): a dup finds its source in
    /// `log2(the task's descriptions)` calls. `None` when not among them.
    fn search_own(&mut self, row: u32) -> Result<Option<usize>, Error> {
        let Some(ids) = self.of_task.get(&self.rows.task(row)) else {
            return Ok(None);
        };
        let mut positions: Vec<usize> = ids
            .iter()
            .map(|&id| self.pos_of[id as usize])
            .filter(|&p| p != GONE)
            .collect();
        positions.sort_unstable();
        let (mut lo, mut hi) = (0, positions.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.compare_checked(positions[mid], row)? {
                None => return Ok(None), // a representative failed: search globally
                Some(KcmpOrdering::Equal) => return Ok(Some(positions[mid])),
                Some(KcmpOrdering::Less) => hi = mid,
                Some(KcmpOrdering::Greater) => lo = mid + 1,
                Some(KcmpOrdering::Unordered(_)) => return Ok(None),
            }
        }
        Ok(None)
    }

    fn join(&mut self, g: usize, row: u32) -> Placed {
        self.groups[g].rows.push(row);
        self.group_of.insert(row, self.groups[g].id);
        self.note_task(row, self.groups[g].id);
        Placed::Joined
    }

    /// `compare`, re-verifying both sides when a member-representative
    /// fails: `Ok(None)` when the representative was at fault (it is
    /// dropped from its group and the caller searches again).
    fn compare_checked(&mut self, g: usize, row: u32) -> Result<Option<KcmpOrdering>, Error> {
        match self.compare(g, row) {
            Ok(o) => Ok(Some(o)),
            Err(e) => {
                let Rep::Member(m) = self.groups[g].rep else {
                    return Err(e); // an anchor cannot fail: the fd did
                };
                let (p, f) = self.rows.locate(row);
                (self.cmp)(p, f, p, f)?; // the fd itself fails: its fault
                self.drop_rep(g, m, e);
                Ok(None)
            }
        }
    }

    /// The representative `m` of group `g` failed: it leaves its group; the
    /// next member (if any) stands in.
    fn drop_rep(&mut self, g: usize, m: u32, e: Error) {
        self.dropped_reps.push((m, e));
        self.group_of.remove(&m);
        let group = &mut self.groups[g];
        group.rows.retain(|&r| r != m);
        match group.rows.first() {
            Some(&next) => group.rep = Rep::Member(next),
            None => {
                self.remove_group(g);
            }
        }
    }

    /// Binary search: `Ok(Ok(g))` found, `Ok(Err(pos))` absent (insert at
    /// pos). Without an order (fallbacks), a linear scan.
    fn search(&mut self, row: u32) -> Result<Result<usize, usize>, Error> {
        let (mut lo, mut hi) = (0, self.groups.len());
        'restart: loop {
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                match self.compare_checked(mid, row)? {
                    None => {
                        (lo, hi) = (0, self.groups.len());
                        continue 'restart;
                    }
                    Some(KcmpOrdering::Equal) => return Ok(Ok(mid)),
                    Some(KcmpOrdering::Less) => hi = mid,
                    Some(KcmpOrdering::Greater) => lo = mid + 1,
                    Some(KcmpOrdering::Unordered(_)) => return self.scan_all(row),
                }
            }
            return Ok(Err(lo));
        }
    }

    fn scan_all(&mut self, row: u32) -> Result<Result<usize, usize>, Error> {
        let mut g = 0;
        while g < self.groups.len() {
            match self.compare_checked(g, row)? {
                None => g = 0,
                Some(o) if o.is_equal() => return Ok(Ok(g)),
                Some(_) => g += 1,
            }
        }
        Ok(Err(self.groups.len()))
    }

    /// `row` matched no description: it starts one at `pos`, anchored when
    /// possible. `None` when it changed meanwhile (the caller retries).
    fn found_new(&mut self, pos: usize, row: u32) -> Option<Placed> {
        let (pid, fd) = self.rows.locate(row);
        let copy = match self.paths {
            false => Ok(true),
            true => self.budget.path_copy_is_safe(pid, fd),
        };
        let pidfd = self.rows.pidfd(row).filter(|_| copy == Ok(true));
        let own = match copy.and_then(|_| self.budget.try_anchor(pidfd, fd)) {
            Ok(Some(own)) => own,
            Ok(None) => {
                // No anchors here: the member stands in (re-verified on failure).
                self.insert_group(pos, Rep::Member(row), vec![row]);
                return Some(Placed::Joined);
            }
            // Closed (or its task exited) since the search: never a
            // representative.
            Err(e) => return Some(Placed::Failed(Error::os(format!("pidfd_getfd({fd})"), e))),
        };
        // The copy is of what the fd held at getfd time. If the fd did not
        // change since the search, the copy belongs at `pos`: two
        // comparisons with the neighbours confirm it; otherwise a binary
        // search among the representatives places it. Then a kcmp of the
        // fd against the copy proves the membership.
        let mine = FdNum::new(rustix::fd::AsRawFd::as_raw_fd(&own)).expect("open fd");
        let at = match self.place_anchor(mine, pos) {
            Some(at) => at,
            None => {
                self.budget.release(Rep::Own(own));
                return None; // it changed to an existing description
            }
        };
        self.insert_group(at, Rep::Own(own), Vec::new());
        match self.compare(at, row) {
            Ok(KcmpOrdering::Equal) => Some(self.join(at, row)),
            Ok(_) => {
                let g = self.remove_group(at);
                self.budget.release(g.rep);
                None
            }
            Err(e) => {
                let g = self.remove_group(at);
                self.budget.release(g.rep);
                Some(Placed::Failed(e))
            }
        }
    }

    /// A copy to place more rows in on another worker: the same groups in
    /// the same order, with copies of the anchors (a `dup` of the engine's
    /// own fd: the same description, no kcmp) and no rows, but knowing
    /// which group each placed row joined (for inheritance hints). Merge it
    /// back with [`absorb`](Self::absorb).
    pub(crate) fn fork(&self) -> Self {
        let mut copy = Sorted::new(self.rows, self.cmp, self.budget);
        copy.paths = self.paths;
        for g in &self.groups {
            let rep = match &g.rep {
                Rep::Own(fd) => match self.budget.dup(fd) {
                    Some(d) => Rep::Own(d),
                    None => match g.rows.first() {
                        Some(&r) => Rep::Member(r),
                        None => continue,
                    },
                },
                Rep::Member(r) => Rep::Member(*r),
            };
            copy.groups.push(Group {
                rep,
                rows: Vec::new(),
                id: g.id,
            });
        }
        copy.pos_of = vec![GONE; self.pos_of.len()];
        copy.renumber(0);
        copy.group_of = self.group_of.clone();
        copy
    }

    /// Where a new anchor `mine` goes: `pos` when its neighbours agree,
    /// else by binary search; `None` when it equals an existing group.
    fn place_anchor(&self, mine: FdNum, pos: usize) -> Option<usize> {
        let me = Pid::this();
        let order = |g: usize| {
            let (rp, rf) = self.groups[g].rep.locate(|r| self.rows.locate(r));
            (self.cmp)(me, mine, rp, rf)
        };
        let pos = pos.min(self.groups.len());
        let left_ok = pos == 0 || matches!(order(pos - 1), Ok(KcmpOrdering::Greater));
        let right_ok = pos == self.groups.len() || matches!(order(pos), Ok(KcmpOrdering::Less));
        if left_ok && right_ok {
            return Some(pos);
        }
        let (mut lo, mut hi) = (0, self.groups.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match order(mid) {
                Ok(KcmpOrdering::Equal) => return None,
                Ok(KcmpOrdering::Less) => hi = mid,
                Ok(KcmpOrdering::Greater) => lo = mid + 1,
                // No order (fallbacks) or a failing member-representative.
                _ => return Some(pos),
            }
        }
        Some(lo)
    }

    /// Takes in the groups of another part of the same bucket (grouped on
    /// another worker), in kcmp order too: one linear merge by
    /// representative (anchors compare exactly among themselves); equal
    /// groups join. A group whose representative cannot be compared has
    /// its rows placed one by one.
    pub(crate) fn absorb(&mut self, other: Vec<Group>) -> Vec<(u32, Placed)> {
        let mut odd = Vec::new();
        let mut i = 0;
        for group in other {
            loop {
                if i == self.groups.len() {
                    self.insert_group(i, group.rep, group.rows);
                    i += 1;
                    break;
                }
                let (p, f) = group.rep.locate(|r| self.rows.locate(r));
                let (rp, rf) = self.groups[i].rep.locate(|r| self.rows.locate(r));
                match (self.cmp)(p, f, rp, rf) {
                    Ok(KcmpOrdering::Greater) => i += 1,
                    Ok(KcmpOrdering::Less) => {
                        self.insert_group(i, group.rep, group.rows);
                        i += 1;
                        break;
                    }
                    Ok(KcmpOrdering::Equal) => {
                        let id = self.groups[i].id;
                        for &r in &group.rows {
                            self.group_of.insert(r, id);
                            self.note_task(r, id);
                        }
                        self.groups[i].rows.extend(group.rows);
                        self.budget.release(group.rep);
                        break;
                    }
                    _ => {
                        self.budget.release(group.rep);
                        for r in group.rows {
                            let placed = self.place(r, None);
                            odd.push((r, placed));
                        }
                        i = 0;
                        break;
                    }
                }
            }
        }
        odd
    }

    /// The groups, in kcmp order (their anchors still open).
    pub(crate) fn into_groups(self) -> Vec<Group> {
        self.groups
    }
}
