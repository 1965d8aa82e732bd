//! Open file descriptions searchable by kcmp order: candidates of the whole
//! host ([`HostIndex`], for [`super::epoll_targets`]) or a scan's
//! descriptions ([`ScanIndex`], for [`super::resolve_scan`]).

use crate::model::{FdRef, SharingMap};
use crate::procfs::{self, FdTarget};
use kcmp::compare_files;
use kcmp::grouping::OrderedGroups;
use kcmp::{KcmpOrdering, Result};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

/// Descriptions of one bucket key in kcmp order, and whether the order held.
type Grouped = (Vec<Vec<FdRef>>, bool);

/// A set of open file descriptions that can be searched by kcmp order.
pub(super) trait Descriptions {
    /// Finds the description whose members order equal to the probe;
    /// `cmp(member)` says how the probe orders against the member. Returns
    /// its link text and members.
    fn find(
        &self,
        key: &str,
        cmp: &mut dyn FnMut(&FdRef) -> Result<KcmpOrdering>,
    ) -> Result<Option<(String, Vec<FdRef>)>>;

    /// The description `fd` was listed in (its link text and members),
    /// when the set knows it without a search.
    fn listed_at(&self, fd: FdRef) -> Option<(&str, &[FdRef])> {
        let _ = fd;
        None
    }
}

/// Binary search over groups in kcmp order; a group whose every member
/// fails to compare (closed meanwhile) is skipped by a linear search.
fn search_groups(
    groups: &[Vec<FdRef>],
    ordered: bool,
    cmp: &mut dyn FnMut(&FdRef) -> Result<KcmpOrdering>,
) -> Option<usize> {
    let mut probe = |g: &[FdRef]| -> Option<KcmpOrdering> { g.iter().find_map(|m| cmp(m).ok()) };
    if ordered {
        let (mut lo, mut hi) = (0usize, groups.len());
        let mut clean = true;
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match probe(&groups[mid]) {
                Some(KcmpOrdering::Equal) => return Some(mid),
                Some(KcmpOrdering::Less) => hi = mid,
                Some(KcmpOrdering::Greater) => lo = mid + 1,
                _ => {
                    clean = false;
                    break;
                }
            }
        }
        if clean {
            return None;
        }
    }
    (0..groups.len()).find(|&i| probe(&groups[i]) == Some(KcmpOrdering::Equal))
}

/// Candidate fds of the whole host, grouped into descriptions on demand.
pub(super) struct HostIndex<'a> {
    rows: HashMap<String, Vec<(FdRef, String)>>,
    groups: RefCell<HashMap<String, Grouped>>,
    calls: &'a Cell<u64>,
}

impl<'a> HostIndex<'a> {
    /// Candidates by bucket key: each fd with its link text. kcmp calls
    /// are counted in `calls`.
    pub(super) fn new(rows: HashMap<String, Vec<(FdRef, String)>>, calls: &'a Cell<u64>) -> Self {
        HostIndex {
            rows,
            groups: RefCell::new(HashMap::new()),
            calls,
        }
    }
}

impl HostIndex<'_> {
    fn grouped(&self, key: &str) -> Grouped {
        if let Some(g) = self.groups.borrow().get(key) {
            return g.clone();
        }
        let rows = self.rows.get(key).map(Vec::as_slice).unwrap_or_default();
        let result = if rows.is_empty() {
            (Vec::new(), true)
        } else if matches!(FdTarget::parse(key), FdTarget::Socket(_)) || rows.len() <= 1 {
            // A socket inode has exactly one description.
            let members: Vec<FdRef> = rows.iter().map(|r| r.0).collect();
            (vec![members], true)
        } else {
            let mut groups = OrderedGroups::new();
            let mut cmp = |a: FdRef, b: FdRef| {
                self.calls.set(self.calls.get() + 1);
                compare_files(a.pid, a.fd, b.pid, b.fd)
            };
            for r in rows {
                // An fd closed meanwhile is left out.
                let _ = groups.insert(r.0, &mut cmp);
            }
            let ordered = groups.is_ordered();
            (groups.into_groups(), ordered)
        };
        self.groups
            .borrow_mut()
            .insert(key.to_string(), result.clone());
        result
    }
}

impl Descriptions for HostIndex<'_> {
    fn find(
        &self,
        key: &str,
        cmp: &mut dyn FnMut(&FdRef) -> Result<KcmpOrdering>,
    ) -> Result<Option<(String, Vec<FdRef>)>> {
        let (groups, ordered) = self.grouped(key);
        Ok(search_groups(&groups, ordered, cmp).map(|i| {
            let mut members = groups[i].clone();
            members.sort_unstable();
            let target = self.rows[key]
                .iter()
                .find(|r| r.0 == members[0])
                .map(|r| r.1.clone())
                .unwrap_or_else(|| key.to_string());
            (target, members)
        }))
    }
}

/// A scan's descriptions, by bucket key.
pub(super) struct ScanIndex<'m> {
    map: &'m SharingMap,
    by_key: HashMap<&'m str, Vec<usize>>,
    /// Every listed (pid, fd) -> its description.
    by_fd: HashMap<FdRef, usize>,
}

impl<'m> ScanIndex<'m> {
    pub(super) fn new(map: &'m SharingMap) -> Self {
        let mut by_key: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut by_fd = HashMap::with_capacity(map.fd_count());
        for (i, d) in map.open_files.iter().enumerate() {
            by_key
                .entry(procfs::bucket_key(&d.target))
                .or_default()
                .push(i);
            by_fd.extend(d.members.iter().map(|&m| (m, i)));
        }
        ScanIndex { map, by_key, by_fd }
    }

    /// Every bucket key with the members of its descriptions, sorted by key.
    pub(super) fn keys(&self) -> Vec<(String, Vec<FdRef>)> {
        let mut keys: Vec<(String, Vec<FdRef>)> = self
            .by_key
            .iter()
            .map(|(k, ds)| {
                let samples = ds
                    .iter()
                    .flat_map(|&d| self.map.open_files[d].members.iter())
                    .copied()
                    .collect();
                (k.to_string(), samples)
            })
            .collect();
        keys.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        keys
    }
}

impl Descriptions for ScanIndex<'_> {
    fn find(
        &self,
        key: &str,
        cmp: &mut dyn FnMut(&FdRef) -> Result<KcmpOrdering>,
    ) -> Result<Option<(String, Vec<FdRef>)>> {
        let found = match self.map.find_description(key, &mut *cmp) {
            Ok(d) => d,
            Err(_) => {
                // A description whose holders all closed their fds: search
                // linearly, passing over it.
                let ds = self.by_key.get(key).map(Vec::as_slice).unwrap_or_default();
                let groups: Vec<Vec<FdRef>> = ds
                    .iter()
                    .map(|&d| self.map.open_files[d].members.clone())
                    .collect();
                search_groups(&groups, false, cmp).map(|i| &self.map.open_files[ds[i]])
            }
        };
        Ok(found.map(|d| (d.target.clone(), d.members.clone())))
    }

    fn listed_at(&self, fd: FdRef) -> Option<(&str, &[FdRef])> {
        let d = &self.map.open_files[*self.by_fd.get(&fd)?];
        Some((&d.target, &d.members))
    }
}
