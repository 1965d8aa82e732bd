//! Reading the JSON of `kcmp scan --json` (and `kcmp holders --json`) as
//! plain [`serde_json::Value`]s, restricted to some processes, for exact
//! comparison with a [`Truth`].
//!
//! ```no_run
//! use kcmp_testkit::{scan_json, Topology};
//! # let scan: serde_json::Value = serde_json::Value::Null;
//! let topo = Topology::spawn("general", &[]);
//! // scan = the JSON of `kcmp scan --tree ROOT --json --include-unshared`
//! scan_json::assert_exact(&scan, topo.truth(), "tree scan");
//! ```

use crate::{FdRef, Truth, RESOURCES};
use serde_json::Value;
use std::collections::{BTreeSet, HashSet};

/// A `{"pid": P, "fd": F, ...}` object as an [`FdRef`]. Panics when either
/// field is missing or not an integer.
pub fn fd_ref(v: &Value) -> FdRef {
    FdRef {
        pid: v["pid"].as_i64().unwrap() as i32,
        fd: v["fd"].as_i64().unwrap() as i32,
    }
}

/// A JSON array of `{"pid", "fd"}` objects (e.g. `holders` of `kcmp
/// holders --json`) as a set, keeping only the members of `pids`.
pub fn refs_among(v: &Value, pids: &HashSet<i32>) -> BTreeSet<FdRef> {
    v.as_array()
        .unwrap()
        .iter()
        .map(fd_ref)
        .filter(|r| pids.contains(&r.pid))
        .collect()
}

/// The scan's open file descriptions (`open_files[].members`) restricted to
/// `pids`, as sorted member lists; descriptions with no member left are
/// dropped.
pub fn partition(scan: &Value, pids: &HashSet<i32>) -> BTreeSet<Vec<FdRef>> {
    scan["open_files"]
        .as_array()
        .expect("open_files")
        .iter()
        .map(|d| {
            let mut m: Vec<FdRef> = d["members"]
                .as_array()
                .unwrap()
                .iter()
                .map(fd_ref)
                .filter(|m| pids.contains(&m.pid))
                .collect();
            m.sort_unstable();
            m
        })
        .filter(|m| !m.is_empty())
        .collect()
}

/// The scan's process-level groups of one resource (`shared.<kind>`)
/// restricted to `pids`, keeping groups with at least two members left.
/// Panics (showing `unavailable`) when the kind is missing.
pub fn groups(scan: &Value, kind: &str, pids: &HashSet<i32>) -> BTreeSet<Vec<i32>> {
    scan["shared"][kind]
        .as_array()
        .unwrap_or_else(|| panic!("kind {kind} missing from shared: {}", scan["unavailable"]))
        .iter()
        .map(|g| {
            g.as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_i64().unwrap() as i32)
                .filter(|p| pids.contains(p))
                .collect::<Vec<i32>>()
        })
        .filter(|g| g.len() >= 2)
        .collect()
}

/// Truth groups (e.g. [`crate::SharedTruth::groups`]) as a set of sorted
/// lists, comparable with [`groups`].
pub fn sorted_groups(g: &[Vec<i32>]) -> BTreeSet<Vec<i32>> {
    g.iter()
        .map(|v| {
            let mut v = v.clone();
            v.sort_unstable();
            v
        })
        .collect()
}

/// Asserts that the scan, restricted to the truth's processes, has exactly
/// the truth's open file descriptions (listing the differences otherwise)
/// and exactly its process-level groups of all six [`RESOURCES`]. `what`
/// names the scan in failure messages.
pub fn assert_exact(scan: &Value, truth: &Truth, what: &str) {
    let pids: HashSet<i32> = truth.pids().into_iter().collect();
    let got = partition(scan, &pids);
    let want = truth.partition();
    if got != want {
        let extra: Vec<_> = got.difference(&want).collect();
        let missing: Vec<_> = want.difference(&got).collect();
        panic!("{what}: open file descriptions differ from the truth\n  scan has, truth not: {extra:?}\n  truth has, scan not: {missing:?}");
    }
    for kind in RESOURCES {
        let got = groups(scan, kind, &pids);
        let want = sorted_groups(truth.shared.groups(kind));
        assert_eq!(
            got, want,
            "{what}: process-level kind {kind} differs from the truth"
        );
    }
}
