//! A bucket grouped in parts on several workers: [`Sorted::fork`] gives
//! each worker a copy of the groups so far, and [`Sorted::absorb`] merges
//! a part's groups back in kcmp order.

use super::{Group, Placed, Rows, Sorted, GONE};
use crate::pipeline::anchor::Rep;
use kcmp::{Error, KcmpOrdering};

/// What a copy made by [`Sorted::fork`] placed, to take back with
/// [`Sorted::absorb`].
pub(crate) struct Part {
    /// Its groups in kcmp order: the original's it joined rows to, and new
    /// ones.
    groups: Vec<Group>,
    /// Groups with a smaller id are the original's.
    forked_from: u32,
    /// Members that stood in as representative and failed there: (row,
    /// error). Some may be members of the original's groups.
    dropped: Vec<(u32, Error)>,
    /// Rows that joined through their inheritance hint there.
    hinted: u64,
}

impl<'a, R: Rows> Sorted<'a, R> {
    /// A copy to place more rows in on another worker: the same groups in
    /// the same order, with copies of the anchors (a `dup` of the engine's
    /// own fd: the same description, no kcmp) and no rows, but knowing
    /// which group each placed row joined (for inheritance hints). Merge it
    /// back with [`absorb`](Self::absorb).
    pub(crate) fn fork(&self) -> Self {
        let mut copy = Sorted::new(self.rows, self.cmp, self.budget);
        copy.paths = self.paths;
        copy.tactics = self.tactics;
        copy.slots = (0..self.slots.len()).map(|_| None).collect();
        copy.label = vec![GONE; self.label.len()];
        for &id in &self.order {
            let g = self.slots[id as usize].as_ref().expect("a placed group");
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
            copy.slots[id as usize] = Some(Group {
                rep,
                rows: Vec::new(),
                id,
            });
            copy.order.push(id);
            copy.label[id as usize] = self.label[id as usize];
        }
        copy.group_of = self.group_of.clone();
        copy.forked_from = self.slots.len() as u32;
        copy
    }

    /// What this copy placed ([`Self::fork`]), to take back with
    /// [`Self::absorb`].
    pub(crate) fn into_part(mut self) -> Part {
        let dropped = std::mem::take(&mut self.dropped_reps);
        let (forked_from, hinted) = (self.forked_from, self.hinted);
        Part {
            groups: self.into_groups(),
            forked_from,
            dropped,
            hinted,
        }
    }

    /// A member `m` that failed in a part: it leaves its group here too
    /// (if it had one: a row placed before the fork), and is reported with
    /// this grouping's dropped representatives.
    fn drop_member(&mut self, m: u32, e: Error) {
        let Some(g) = self.group_of(m) else {
            self.dropped_reps.push((m, e));
            return;
        };
        if matches!(self.at(g).rep, Rep::Member(r) if r == m) {
            return self.drop_rep(g, m, e); // the next member stands in
        }
        self.leave(g, m, e);
        if self.at(g).rows.is_empty() {
            let gone = self.remove_group(g);
            self.budget.release(gone.rep);
        }
    }

    /// Takes in the groups of another part of the same bucket (grouped on
    /// another worker), in kcmp order too: a merge by representative
    /// (anchors compare exactly among themselves), planned on `workers`
    /// ([`Self::merge_plan`]), then applied: new groups take their place in
    /// one new order, labelled once; equal groups join. A group whose
    /// representative cannot be compared has its rows placed one by one.
    ///
    /// A group the part had from this grouping (its id, from the fork)
    /// takes the part's rows without a comparison: the part compared them
    /// with a copy of this group's representative. Members that failed in
    /// the part are dropped here too ([`Self::drop_member`]).
    pub(crate) fn absorb(&mut self, part: Part, workers: usize) -> Vec<(u32, Placed)> {
        self.hinted += part.hinted;
        for (m, e) in part.dropped {
            self.drop_member(m, e);
        }
        let mut other = Vec::with_capacity(part.groups.len());
        for group in part.groups {
            let id = group.id;
            match self.slots.get_mut(id as usize) {
                Some(Some(mine)) if id < part.forked_from => {
                    mine.rows.extend_from_slice(&group.rows);
                    self.budget.release(group.rep);
                    for r in group.rows {
                        self.group_of.insert(r, id);
                        self.note_task(r, id);
                    }
                }
                _ => other.push(group),
            }
        }
        let old = std::mem::take(&mut self.order);
        let plan = self.merge_plan(&old, &other, workers);
        let mut merged: Vec<u32> = Vec::with_capacity(old.len() + other.len());
        let mut joined: Vec<(u32, Vec<u32>)> = Vec::with_capacity(other.len());
        let mut odd_rows: Vec<u32> = Vec::new();
        let mut next = 0; // old groups up to here are in `merged`
        for (group, step) in other.into_iter().zip(plan) {
            match step {
                Merge::Join(at) => {
                    let id = old[at];
                    let g = self.slots[id as usize].as_mut().expect("a placed group");
                    g.rows.extend_from_slice(&group.rows);
                    self.budget.release(group.rep);
                    joined.push((id, group.rows));
                }
                Merge::Before(at) => {
                    merged.extend_from_slice(&old[next..at]);
                    next = at;
                    let id = self.slots.len() as u32;
                    self.label.push(GONE); // labelled below
                    merged.push(id);
                    joined.push((id, group.rows.clone()));
                    self.slots.push(Some(Group {
                        rep: group.rep,
                        rows: group.rows,
                        id,
                    }));
                }
                Merge::OneByOne => {
                    self.budget.release(group.rep);
                    odd_rows.extend(group.rows);
                }
            }
        }
        merged.extend_from_slice(&old[next..]);
        self.order = merged;
        self.relabel();
        for (id, rows) in joined {
            for r in rows {
                self.group_of.insert(r, id);
                self.note_task(r, id);
            }
        }
        odd_rows
            .into_iter()
            .map(|r| (r, self.place(r, None)))
            .collect()
    }

    /// Where each of `other`'s groups goes among the groups `old` (ids, in
    /// kcmp order): one linear merge, or, when big and `workers` allow, two
    /// at once: the middle group of `other` is searched for in `old`, and
    /// the groups before it and after it are merged with the old groups on
    /// their side of it (every group before it sorts before it, and so
    /// before every old group from that point on).
    fn merge_plan(&self, old: &[u32], other: &[Group], workers: usize) -> Vec<Merge> {
        let mid = other.len() / 2;
        if workers < 2 || other.len() < 2 || old.len() + other.len() < PARALLEL_MERGE {
            return self.merge_linear(old, 0, other);
        }
        let (mut lo, mut hi) = (0, old.len());
        while lo < hi {
            let m = lo + (hi - lo) / 2;
            match self.compare_reps(&other[mid].rep, old[m]) {
                Ok(KcmpOrdering::Greater) => lo = m + 1,
                Ok(KcmpOrdering::Less | KcmpOrdering::Equal) => hi = m,
                _ => return self.merge_linear(old, 0, other),
            }
        }
        let halves = [
            (&old[..lo], 0, &other[..mid]),
            (&old[lo..], lo, &other[mid..]),
        ];
        crate::parallel::parallel_map(2, 2, |h| {
            let (old, offset, other) = halves[h];
            self.merge_linear(old, offset, other)
        })
        .into_iter()
        .flatten()
        .collect()
    }

    /// [`Self::merge_plan`] in one pass: `old` starts at position `offset`
    /// of the whole order.
    fn merge_linear(&self, old: &[u32], offset: usize, other: &[Group]) -> Vec<Merge> {
        let mut i = 0;
        other
            .iter()
            .map(|group| loop {
                let Some(&id) = old.get(i) else {
                    return Merge::Before(offset + i);
                };
                match self.compare_reps(&group.rep, id) {
                    Ok(KcmpOrdering::Greater) => i += 1,
                    Ok(KcmpOrdering::Less) => return Merge::Before(offset + i),
                    Ok(KcmpOrdering::Equal) => return Merge::Join(offset + i),
                    _ => return Merge::OneByOne,
                }
            })
            .collect()
    }

    /// kcmp of representative `rep` against group `id`'s.
    fn compare_reps(&self, rep: &Rep, id: u32) -> kcmp::Result<KcmpOrdering> {
        let (p, f) = rep.locate(self.budget.me(), |r| self.rows.locate(r));
        let group = self.slots[id as usize].as_ref().expect("a placed group");
        let (rp, rf) = group.rep.locate(self.budget.me(), |r| self.rows.locate(r));
        (self.cmp)(p, f, rp, rf)
    }
}

/// Groups from which [`Sorted::absorb`] merges on two workers (fewer in
/// unit tests, which place a few hundred fds).
const PARALLEL_MERGE: usize = if cfg!(test) { 64 } else { 2048 };

/// Where [`Sorted::absorb`] puts a group of the other part.
enum Merge {
    /// Into the group at this position of the old order (the same
    /// description).
    Join(usize),
    /// As a new group, before the one at this position of the old order
    /// (at the end when past it).
    Before(usize),
    /// Its rows one by one (its representative could not be compared).
    OneByOne,
}
