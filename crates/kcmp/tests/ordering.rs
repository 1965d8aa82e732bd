//! The kcmp order over a few dozen fds of real processes: antisymmetric,
//! transitive, consistent with equality groups, usable for sorting.

use kcmp::{compare_files, compare_process, FdNum, KcmpOrdering, Pid, ProcessResource};
use kcmp_testkit::{FdRef, Topology};
use std::cmp::Ordering;

fn ord(a: FdRef, b: FdRef) -> Ordering {
    compare_files(
        Pid::new(a.pid).unwrap(),
        FdNum::new(a.fd).unwrap(),
        Pid::new(b.pid).unwrap(),
        FdNum::new(b.fd).unwrap(),
    )
    .unwrap()
    .to_ordering()
    .expect("current kernels order every pair")
}

fn check_total_order(items: &[FdRef], group: &[usize]) {
    let n = items.len();
    let m: Vec<Vec<Ordering>> = (0..n)
        .map(|i| (0..n).map(|j| ord(items[i], items[j])).collect())
        .collect();
    for i in 0..n {
        assert_eq!(m[i][i], Ordering::Equal);
        for j in 0..n {
            assert_eq!(m[i][j], m[j][i].reverse(), "antisymmetry {i} {j}");
            assert_eq!(
                m[i][j] == Ordering::Equal,
                group[i] == group[j],
                "equality {i} {j}"
            );
            for k in 0..n {
                if m[i][j] != Ordering::Greater && m[j][k] != Ordering::Greater {
                    assert_ne!(m[i][k], Ordering::Greater, "transitivity {i} {j} {k}");
                }
                if m[i][j] == Ordering::Less && m[j][k] != Ordering::Greater {
                    assert_eq!(m[i][k], Ordering::Less, "strict transitivity {i} {j} {k}");
                }
            }
        }
    }
    // Sorting with the kernel's order puts each description's fds together,
    // and the sorted sequence is non-decreasing under the order.
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by(|&a, &b| m[a][b]);
    for w in idx.windows(2) {
        assert_ne!(m[w[0]][w[1]], Ordering::Greater);
    }
    let runs: Vec<usize> = idx
        .iter()
        .map(|&i| group[i])
        .collect::<Vec<_>>()
        .chunk_by(|a, b| a == b)
        .map(|c| c[0])
        .collect();
    let mut distinct = runs.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        runs.len(),
        distinct.len(),
        "a description's fds are contiguous"
    );
}

#[test]
fn forty_fds_of_one_process() {
    let topo = Topology::spawn("general", &["--procs", "2", "--fds", "40", "--seed", "3"]);
    let t = topo.truth();
    let w = t.task_by_label("worker0").unwrap().pid;
    let items: Vec<FdRef> = t
        .fds_of(w)
        .into_iter()
        .map(|fd| FdRef { pid: w, fd })
        .collect();
    assert!(items.len() >= 40, "{} fds", items.len());
    let group: Vec<usize> = items.iter().map(|r| t.file_index(*r).unwrap()).collect();
    let shared = group.len() - {
        let mut g = group.clone();
        g.sort_unstable();
        g.dedup();
        g.len()
    };
    assert!(shared >= 5, "the worker has dup'd fds");
    check_total_order(&items, &group);
}

#[test]
fn a_few_dozen_fds_across_processes() {
    let topo = Topology::spawn("general", &["--procs", "4", "--fds", "12"]);
    let t = topo.truth();
    let items: Vec<FdRef> = t.all_fds().into_iter().step_by(2).take(48).collect();
    assert!(items.len() >= 40);
    let group: Vec<usize> = items.iter().map(|r| t.file_index(*r).unwrap()).collect();
    check_total_order(&items, &group);
}

#[test]
fn process_order_is_antisymmetric_per_type() {
    let topo = Topology::spawn("clone", &[]);
    let t = topo.truth();
    let pids = t.live_pids();
    for res in [
        ProcessResource::Vm,
        ProcessResource::Fs,
        ProcessResource::Sighand,
    ] {
        for &a in &pids {
            for &b in &pids {
                let ab = compare_process(res, Pid::new(a).unwrap(), Pid::new(b).unwrap()).unwrap();
                let ba = compare_process(res, Pid::new(b).unwrap(), Pid::new(a).unwrap()).unwrap();
                assert!(!matches!(ab, KcmpOrdering::Unordered(_)));
                assert_eq!(
                    ab.to_ordering().unwrap(),
                    ba.to_ordering().unwrap().reverse(),
                    "{res} {a} {b}"
                );
            }
        }
    }
}
