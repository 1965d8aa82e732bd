//! Exact grouping with an equality-only test: [`group_by_equality`].

use crate::{Error, Result};

/// The result of [`group_by_equality`].
#[derive(Debug)]
pub struct EqualityGroups<T> {
    /// The groups, in order of their first member; members keep input order.
    pub groups: Vec<Vec<T>>,
    /// Items a comparison failed for, with the error (never guessed into a group).
    pub failed: Vec<(T, Error)>,
    /// How many times `same` was called.
    pub comparisons: u64,
}

/// Groups items exactly with an equality-only test (no order): each item is
/// compared with one representative of every group so far and joins the
/// first that is equal, or starts a new group. Exact for an equivalence
/// relation such as "one open file description"; costs up to n × g
/// comparisons for n items in g groups, counted in
/// [`EqualityGroups::comparisons`].
///
/// An item whose comparison fails is set aside in
/// [`EqualityGroups::failed`] with the error.
///
/// ```
/// use kcmp::fallback::group_by_equality;
/// let g = group_by_equality(vec![1, 11, 2, 21, 3], |a, b| Ok(a % 10 == b % 10));
/// assert_eq!(g.groups, vec![vec![1, 11, 21], vec![2], vec![3]]);
/// ```
pub fn group_by_equality<T>(
    items: Vec<T>,
    mut same: impl FnMut(&T, &T) -> Result<bool>,
) -> EqualityGroups<T> {
    let mut groups: Vec<Vec<T>> = Vec::new();
    let mut failed = Vec::new();
    let mut comparisons = 0u64;
    'items: for item in items {
        for group in groups.iter_mut() {
            comparisons += 1;
            match same(&group[0], &item) {
                Ok(true) => {
                    group.push(item);
                    continue 'items;
                }
                Ok(false) => {}
                Err(e) => {
                    failed.push((item, e));
                    continue 'items;
                }
            }
        }
        groups.push(vec![item]);
    }
    EqualityGroups {
        groups,
        failed,
        comparisons,
    }
}
