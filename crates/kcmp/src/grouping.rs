//! Grouping by kcmp's ordering: sorted representatives and binary search.
//!
//! kcmp(2) orders kernel objects (stable, antisymmetric, transitive within a
//! boot), so n items fall into groups of equal objects with about
//! `n · log2(groups)` comparisons instead of `n²/2`: each group keeps one
//! representative, the representatives stay sorted, and a new item is placed
//! by binary search. A bucket that is one object costs one comparison per
//! item after the first.
//!
//! When a comparator cannot order (kcmp answered "unordered", or a fallback
//! that only knows equality), the grouping switches to comparing against
//! every representative: still exact, with more comparisons.
#![forbid(unsafe_code)]

use crate::{Error, KcmpOrdering};

/// Groups of equal items, kept in the comparator's order.
///
/// ```
/// use kcmp::grouping::OrderedGroups;
/// use kcmp::KcmpOrdering;
/// // Group numbers by value, with an ordinary ordering as the comparator.
/// let mut groups = OrderedGroups::new();
/// let mut calls = 0;
/// for x in [5, 3, 5, 9, 3, 5] {
///     groups.insert(x, &mut |a: i32, b: i32| { calls += 1; Ok(KcmpOrdering::from(a.cmp(&b))) }).unwrap();
/// }
/// let g: Vec<Vec<i32>> = groups.into_groups();
/// assert_eq!(g, vec![vec![3, 3], vec![5, 5, 5], vec![9]]);
/// assert!(calls <= 10);
/// ```
#[derive(Debug, Clone)]
pub struct OrderedGroups<T> {
    groups: Vec<Vec<T>>,
    ordered: bool,
    dropped: Vec<(T, Error)>,
    comparisons: u64,
}

/// How many times [`OrderedGroups::insert`] compares an item with a
/// representative again after a failure that neither shows by itself.
const RETRIES: u32 = 3;

impl<T> Default for OrderedGroups<T> {
    fn default() -> Self {
        OrderedGroups {
            groups: Vec::new(),
            ordered: true,
            dropped: Vec::new(),
            comparisons: 0,
        }
    }
}

/// Why an item could not be placed: the comparator failed on the item
/// itself (its fd closed, its task exited).
///
/// ```
/// use kcmp::grouping::OrderedGroups;
/// use kcmp::{Error, KcmpOrdering};
/// let mut g = OrderedGroups::new();
/// let mut cmp = |_: i32, _: i32| -> kcmp::Result<KcmpOrdering> { Err(Error::Vanished { pid: 7 }) };
/// let err = g.insert(7, &mut cmp).unwrap_err();
/// assert_eq!(err.to_string(), "item 7 could not be placed: process 7 vanished during the inspection (it exited, or its pid was reused)");
/// let as_kcmp: Error = err.into(); // `?` in a function returning kcmp::Result
/// assert!(as_kcmp.is_gone());
/// ```
#[derive(Debug)]
pub struct InsertError<T> {
    /// The item.
    pub item: T,
    /// The comparator's error when comparing the item with itself.
    pub error: Error,
}

impl<T: std::fmt::Debug> std::fmt::Display for InsertError<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "item {:?} could not be placed: {}",
            self.item, self.error
        )
    }
}

impl<T: std::fmt::Debug> std::error::Error for InsertError<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl<T> From<InsertError<T>> for Error {
    /// The comparator's error (the item is dropped).
    fn from(e: InsertError<T>) -> Error {
        e.error
    }
}

impl<T: Copy> OrderedGroups<T> {
    /// No groups yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts from groups already in the comparator's order — for example a
    /// subsequence of another grouping's groups, which stays sorted because
    /// the order is total. Nothing is compared; a wrong order only costs
    /// later searches their precision, and
    /// [`check_and_repair`](Self::check_and_repair) detects it.
    ///
    /// ```
    /// use kcmp::grouping::OrderedGroups;
    /// use kcmp::KcmpOrdering;
    /// let mut cmp = |a: i32, b: i32| Ok(KcmpOrdering::from(a.cmp(&b)));
    /// let mut g = OrderedGroups::from_sorted(vec![vec![1], vec![5, 5]]);
    /// g.insert(5, &mut cmp).unwrap();
    /// assert_eq!(g.groups(), &[vec![1], vec![5, 5, 5]]);
    /// ```
    pub fn from_sorted(groups: Vec<Vec<T>>) -> Self {
        OrderedGroups {
            groups: groups.into_iter().filter(|g| !g.is_empty()).collect(),
            ..Self::default()
        }
    }

    /// Whether the comparator has ordered every comparison so far.
    pub fn is_ordered(&self) -> bool {
        self.ordered
    }

    /// Places `item` in the group of its equal, or in a new group.
    ///
    /// `cmp(a, b)` answers how `a`'s object orders against `b`'s. When it
    /// fails, each side is compared with itself to learn which one failed:
    /// if the item itself fails, it is returned as an [`InsertError`]; if
    /// the representative fails by itself (its fd closed, its task exited),
    /// it is dropped (see [`dropped`](Self::dropped)), the next member of
    /// its group takes its place, and the search goes on; if neither does
    /// (one changed between the calls), the comparison is made again, a
    /// few times, and then the item is returned as an [`InsertError`].
    ///
    /// ```
    /// use kcmp::grouping::OrderedGroups;
    /// use kcmp::{Error, KcmpOrdering};
    /// // 5 against 3 fails once, and neither fails by itself: 3 stays.
    /// let mut failed_once = false;
    /// let mut cmp = |a: i32, b: i32| {
    ///     if (a, b) == (5, 3) && !failed_once {
    ///         failed_once = true;
    ///         return Err(Error::Vanished { pid: 5 });
    ///     }
    ///     Ok(KcmpOrdering::from(a.cmp(&b)))
    /// };
    /// let mut g = OrderedGroups::new();
    /// for x in [3, 5, 3] { g.insert(x, &mut cmp).unwrap(); }
    /// assert!(g.dropped().is_empty());
    /// assert_eq!(g.into_groups(), vec![vec![3, 3], vec![5]]);
    /// ```
    pub fn insert<F>(&mut self, item: T, cmp: &mut F) -> Result<usize, InsertError<T>>
    where
        F: FnMut(T, T) -> crate::Result<KcmpOrdering>,
    {
        let mut calls = 0u64;
        let mut counted = |a: T, b: T| {
            calls += 1;
            cmp(a, b)
        };
        let result = self.insert_counted(item, &mut counted);
        self.comparisons += calls;
        result
    }

    fn insert_counted<F>(&mut self, item: T, cmp: &mut F) -> Result<usize, InsertError<T>>
    where
        F: FnMut(T, T) -> crate::Result<KcmpOrdering>,
    {
        if self.groups.is_empty() {
            // Make sure the first representative is valid.
            if let Err(error) = cmp(item, item) {
                return Err(InsertError { item, error });
            }
            self.groups.push(vec![item]);
            return Ok(0);
        }
        let mut retries = 0;
        'search: loop {
            if self.ordered {
                let (mut lo, mut hi) = (0usize, self.groups.len());
                while lo < hi {
                    let mid = lo + (hi - lo) / 2;
                    match cmp(item, self.groups[mid][0]) {
                        Ok(KcmpOrdering::Equal) => {
                            self.groups[mid].push(item);
                            return Ok(mid);
                        }
                        Ok(KcmpOrdering::Less) => hi = mid,
                        Ok(KcmpOrdering::Greater) => lo = mid + 1,
                        Ok(KcmpOrdering::Unordered(_)) => {
                            self.ordered = false;
                            continue 'search;
                        }
                        Err(e) => {
                            self.handle_failure(item, mid, e, cmp, &mut retries)?;
                            continue 'search;
                        }
                    }
                }
                self.groups.insert(lo, vec![item]);
                return Ok(lo);
            } else {
                let mut i = 0;
                while i < self.groups.len() {
                    match cmp(item, self.groups[i][0]) {
                        Ok(KcmpOrdering::Equal) => {
                            self.groups[i].push(item);
                            return Ok(i);
                        }
                        Ok(_) => i += 1,
                        Err(e) => {
                            self.handle_failure(item, i, e, cmp, &mut retries)?;
                            continue 'search;
                        }
                    }
                }
                self.groups.push(vec![item]);
                return Ok(self.groups.len() - 1);
            }
        }
    }

    /// Merges another grouping made with the same comparator: a linear merge
    /// of the two sorted representative lists (one comparison per group of
    /// either side), so two halves grouped on two cores cost little to join.
    /// Falls back to inserting `other`'s groups one by one when either side
    /// is unordered or a comparison fails.
    ///
    /// ```
    /// use kcmp::grouping::OrderedGroups;
    /// use kcmp::KcmpOrdering;
    /// let mut cmp = |a: i32, b: i32| Ok(KcmpOrdering::from(a.cmp(&b)));
    /// let mut left = OrderedGroups::new();
    /// let mut right = OrderedGroups::new();
    /// for x in [1, 5, 5, 9] { left.insert(x, &mut cmp).unwrap(); }
    /// for x in [5, 2, 9] { right.insert(x, &mut cmp).unwrap(); }
    /// let merged = left.merge(right, &mut cmp);
    /// assert_eq!(merged.into_groups(), vec![vec![1], vec![2], vec![5, 5, 5], vec![9, 9]]);
    /// ```
    pub fn merge<F>(mut self, other: OrderedGroups<T>, cmp: &mut F) -> Self
    where
        F: FnMut(T, T) -> crate::Result<KcmpOrdering>,
    {
        self.dropped.extend(other.dropped);
        self.comparisons += other.comparisons;
        if !self.ordered || !other.ordered {
            return self.absorb(other.groups, cmp);
        }
        let mut out: Vec<Vec<T>> = Vec::with_capacity(self.groups.len() + other.groups.len());
        let mut a = std::mem::take(&mut self.groups).into_iter().peekable();
        let mut b = other.groups.into_iter().peekable();
        loop {
            let verdict = match (a.peek(), b.peek()) {
                (Some(ga), Some(gb)) => {
                    self.comparisons += 1;
                    cmp(ga[0], gb[0])
                }
                (Some(_), None) => {
                    out.extend(a.by_ref());
                    break;
                }
                (None, Some(_)) => {
                    out.extend(b.by_ref());
                    break;
                }
                (None, None) => break,
            };
            match verdict {
                Ok(KcmpOrdering::Equal) => {
                    let mut ga = a.next().expect("peeked");
                    ga.extend(b.next().expect("peeked"));
                    out.push(ga);
                }
                Ok(KcmpOrdering::Less) => out.push(a.next().expect("peeked")),
                Ok(KcmpOrdering::Greater) => out.push(b.next().expect("peeked")),
                Ok(KcmpOrdering::Unordered(_)) | Err(_) => {
                    out.extend(a);
                    self.groups = out;
                    return self.absorb(b.collect(), cmp);
                }
            }
        }
        self.groups = out;
        self
    }

    /// Checks the sorted representatives against each other and repairs the
    /// grouping if they are no longer consistent; returns how many rebuilds
    /// that took (0 when it was consistent).
    ///
    /// Binary search assumes the objects do not change while the grouping
    /// is built. On a running system a representative may change under it
    /// (a task execs or exits and gets another mm, an fd is closed and its
    /// number reused), and a later search may then miss a group and split
    /// one object into two groups. In a consistent sorted list every
    /// representative orders strictly before the next, and a split always
    /// shows as an adjacent pair that does not (by transitivity), so one
    /// pass of `groups - 1` comparisons detects it; the groups are then
    /// re-placed (merging equal ones) and checked again, at most `rounds`
    /// times. Answers about running processes can still be stale; stop them
    /// (`--freeze`) for a consistent picture.
    ///
    /// ```
    /// use kcmp::grouping::OrderedGroups;
    /// use kcmp::KcmpOrdering;
    /// let mut cmp = |a: i32, b: i32| Ok(KcmpOrdering::from(a.cmp(&b)));
    /// let mut g = OrderedGroups::new();
    /// for x in [3, 1, 2] { g.insert(x, &mut cmp).unwrap(); }
    /// assert_eq!(g.check_and_repair(&mut cmp, 3), 0);
    /// ```
    pub fn check_and_repair<F>(&mut self, cmp: &mut F, rounds: u32) -> u32
    where
        F: FnMut(T, T) -> crate::Result<KcmpOrdering>,
    {
        if !self.ordered {
            return 0; // every item was compared with every representative
        }
        for round in 0..rounds {
            let mut consistent = true;
            for i in 1..self.groups.len() {
                self.comparisons += 1;
                if !matches!(
                    cmp(self.groups[i - 1][0], self.groups[i][0]),
                    Ok(KcmpOrdering::Less)
                ) {
                    consistent = false;
                    break;
                }
            }
            if consistent {
                return round;
            }
            self.rebuild(cmp);
            if !self.ordered {
                return round + 1;
            }
        }
        rounds
    }

    /// Whether the representatives `range` (indices of adjacent pairs
    /// `(i - 1, i)`) are in strictly increasing order: one part of
    /// [`check_and_repair`](Self::check_and_repair)'s check, for callers
    /// that split it across threads. `cmp` must not need `&mut`.
    pub fn ordered_within<F>(&self, range: std::ops::Range<usize>, cmp: &F) -> bool
    where
        F: Fn(T, T) -> crate::Result<KcmpOrdering>,
    {
        range.filter(|&i| i >= 1 && i < self.groups.len()).all(|i| {
            matches!(
                cmp(self.groups[i - 1][0], self.groups[i][0]),
                Ok(KcmpOrdering::Less)
            )
        })
    }

    /// Rebuilds the grouping after an inconsistency was found by
    /// [`ordered_within`](Self::ordered_within), then checks and repairs
    /// as [`check_and_repair`](Self::check_and_repair) does; returns the
    /// number of rebuilds (at least 1).
    pub fn rebuild_and_repair<F>(&mut self, cmp: &mut F, rounds: u32) -> u32
    where
        F: FnMut(T, T) -> crate::Result<KcmpOrdering>,
    {
        self.rebuild(cmp);
        1 + self.check_and_repair(cmp, rounds.saturating_sub(1))
    }

    /// Re-places every group (merging equal ones), keeping the dropped
    /// representatives and the comparison count.
    fn rebuild<F>(&mut self, cmp: &mut F)
    where
        F: FnMut(T, T) -> crate::Result<KcmpOrdering>,
    {
        let groups = std::mem::take(&mut self.groups);
        let dropped = std::mem::take(&mut self.dropped);
        let comparisons = self.comparisons;
        let mut rebuilt = OrderedGroups::new().absorb(groups, cmp);
        rebuilt.dropped.splice(0..0, dropped);
        rebuilt.comparisons += comparisons;
        *self = rebuilt;
    }

    /// Inserts whole groups (their first valid member places the group).
    fn absorb<F>(mut self, groups: Vec<Vec<T>>, cmp: &mut F) -> Self
    where
        F: FnMut(T, T) -> crate::Result<KcmpOrdering>,
    {
        for group in groups {
            let mut members = group.into_iter();
            while let Some(rep) = members.next() {
                match self.insert(rep, cmp) {
                    Ok(at) => {
                        self.groups[at].extend(members);
                        break;
                    }
                    Err(e) => self.dropped.push((e.item, e.error)),
                }
            }
        }
        self
    }

    /// A comparison of `item` with group `group`'s representative failed
    /// (`error`): the item fails if it fails by itself; the representative
    /// is dropped if it fails by itself (the next member of its group takes
    /// its place). When both compare with themselves, one of them changed
    /// between the calls (a permission that flapped, an fd closed and
    /// opened again): the caller compares again, up to [`RETRIES`] times,
    /// and then the item fails. (A representative was dropped on the item's
    /// word before: a stable task left its group.)
    fn handle_failure<F>(
        &mut self,
        item: T,
        group: usize,
        error: Error,
        cmp: &mut F,
        retries: &mut u32,
    ) -> Result<(), InsertError<T>>
    where
        F: FnMut(T, T) -> crate::Result<KcmpOrdering>,
    {
        if let Err(own) = cmp(item, item) {
            return Err(InsertError { item, error: own });
        }
        let rep = self.groups[group][0];
        match cmp(rep, rep) {
            Err(own) => {
                // The representative fails by itself: drop it.
                self.groups[group].remove(0);
                self.dropped.push((rep, own));
                if self.groups[group].is_empty() {
                    self.groups.remove(group);
                }
                Ok(())
            }
            Ok(_) if *retries < RETRIES => {
                *retries += 1;
                Ok(())
            }
            Ok(_) => Err(InsertError { item, error }),
        }
    }

    /// How many times the comparator was called by this grouping.
    pub fn comparisons(&self) -> u64 {
        self.comparisons
    }

    /// Representatives dropped because comparing with them failed, with the
    /// error that showed it.
    pub fn dropped(&self) -> &[(T, Error)] {
        &self.dropped
    }

    /// The number of groups.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// No groups.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The groups, in the comparator's order when it ordered, members in
    /// insertion order.
    pub fn groups(&self) -> &[Vec<T>] {
        &self.groups
    }

    /// Finds the group equal to `probe` by the same search, without
    /// inserting. Errors from the comparator are returned as they are.
    pub fn find<P: Copy, F>(&self, probe: P, cmp: &mut F) -> crate::Result<Option<usize>>
    where
        F: FnMut(P, T) -> crate::Result<KcmpOrdering>,
    {
        if self.ordered {
            let (mut lo, mut hi) = (0usize, self.groups.len());
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                match cmp(probe, self.groups[mid][0])? {
                    KcmpOrdering::Equal => return Ok(Some(mid)),
                    KcmpOrdering::Less => hi = mid,
                    KcmpOrdering::Greater => lo = mid + 1,
                    KcmpOrdering::Unordered(_) => return self.find_linear(probe, cmp),
                }
            }
            Ok(None)
        } else {
            self.find_linear(probe, cmp)
        }
    }

    fn find_linear<P: Copy, F>(&self, probe: P, cmp: &mut F) -> crate::Result<Option<usize>>
    where
        F: FnMut(P, T) -> crate::Result<KcmpOrdering>,
    {
        for (i, g) in self.groups.iter().enumerate() {
            if cmp(probe, g[0])?.is_equal() {
                return Ok(Some(i));
            }
        }
        Ok(None)
    }

    /// The groups, consumed.
    pub fn into_groups(self) -> Vec<Vec<T>> {
        self.groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ord(a: i32, b: i32) -> crate::Result<KcmpOrdering> {
        Ok(KcmpOrdering::from(a.cmp(&b)))
    }

    #[test]
    fn one_object_costs_one_comparison_per_item() {
        let mut g = OrderedGroups::new();
        let mut calls = 0;
        for _ in 0..100 {
            g.insert(7, &mut |a, b| {
                calls += 1;
                ord(a, b)
            })
            .unwrap();
        }
        // The first item is checked against itself once.
        assert_eq!(calls, 100);
        assert_eq!(g.len(), 1);
    }

    #[test]
    fn equality_only_comparator_still_groups_exactly() {
        let mut g = OrderedGroups::new();
        let mut eq = |a: i32, b: i32| {
            Ok(if a == b {
                KcmpOrdering::Equal
            } else {
                KcmpOrdering::Unordered(3)
            })
        };
        for x in [4, 1, 4, 2, 1, 9] {
            g.insert(x, &mut eq).unwrap();
        }
        assert!(!g.is_ordered());
        let mut groups = g.into_groups();
        groups.sort();
        assert_eq!(groups, vec![vec![1, 1], vec![2], vec![4, 4], vec![9]]);
    }

    #[test]
    fn a_representative_that_changes_splits_a_group_and_the_check_repairs_it() {
        use std::cell::RefCell;
        // Items are ids; their "kernel object" is keys[id], which may change
        // (a task exec'ing, an fd number reused) while the grouping is built.
        let keys = RefCell::new(vec![10, 20, 30, 40, 50, 20]);
        let mut cmp = |a: usize, b: usize| {
            let k = keys.borrow();
            Ok(KcmpOrdering::from(k[a].cmp(&k[b])))
        };
        let mut g = OrderedGroups::new();
        for id in 0..5 {
            g.insert(id, &mut cmp).unwrap();
        }
        keys.borrow_mut()[2] = 5; // the middle representative changes
        g.insert(5, &mut cmp).unwrap(); // equal to id 1, but the search goes astray
        assert_eq!(
            g.len(),
            6,
            "the search missed the group of id 1 (the failure mode)"
        );
        // The parallel form of the check sees it too, in one of two halves.
        let shared = |a: usize, b: usize| {
            let k = keys.borrow();
            Ok(KcmpOrdering::from(k[a].cmp(&k[b])))
        };
        assert!(!(g.ordered_within(1..3, &shared) && g.ordered_within(3..6, &shared)));
        assert!(g.check_and_repair(&mut cmp, 3) >= 1);
        assert!(g.ordered_within(1..g.len(), &shared));
        let mut groups: Vec<Vec<usize>> = g
            .into_groups()
            .into_iter()
            .map(|mut v| {
                v.sort();
                v
            })
            .collect();
        groups.sort();
        assert_eq!(groups, vec![vec![0], vec![1, 5], vec![2], vec![3], vec![4]]);
    }

    #[test]
    fn failing_representative_is_replaced() {
        // Item 100 "vanishes" after it became a representative.
        let mut g = OrderedGroups::new();
        let mut gone = false;
        let mut cmp = |a: i32, b: i32| {
            if gone && (a == 100 || b == 100) {
                Err(Error::Vanished { pid: 100 })
            } else {
                ord(a % 10, b % 10)
            }
        };
        g.insert(100, &mut cmp).unwrap();
        g.insert(10, &mut cmp).unwrap();
        gone = true;
        let mut cmp = |a: i32, b: i32| {
            if gone && (a == 100 || b == 100) {
                Err(Error::Vanished { pid: 100 })
            } else {
                ord(a % 10, b % 10)
            }
        };
        g.insert(20, &mut cmp).unwrap();
        assert_eq!(g.dropped().len(), 1);
        assert_eq!(g.groups(), &[vec![10, 20]]);
        assert!(g.insert(100, &mut cmp).is_err());
    }
}
