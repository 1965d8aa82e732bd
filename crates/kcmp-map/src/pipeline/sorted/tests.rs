//! [`Sorted`] on this process's own fds, compared by kcmp(2): separate
//! opens of /dev/null (distinct descriptions) and dups of some of them,
//! placed in kcmp order, in reverse kcmp order (every group inserted at
//! the front: labels run out and are assigned again) and interleaved.

use super::{Placed, Rows, Sorted};
use crate::parallel::CallCounter;
use crate::pipeline::anchor::{Budget, OwnLocks};
use crate::pipeline::group::file_comparator;
use kcmp::{FdNum, KcmpOrdering, Pid};
use rustix::fd::{AsRawFd, BorrowedFd, OwnedFd};

/// Rows are fds of this process; five "tasks" (by fd number) so that the
/// search among a task's own groups is used too.
struct OwnFds(Vec<FdNum>);

impl Rows for OwnFds {
    fn locate(&self, row: u32) -> (Pid, FdNum) {
        (Pid::this(), self.0[row as usize])
    }
    fn pidfd(&self, _: u32) -> Option<BorrowedFd<'_>> {
        None // no copies: members stand in
    }
    fn task(&self, row: u32) -> u32 {
        self.0[row as usize].get() as u32 % 5
    }
}

const DISTINCT: usize = 300;
const DUPS: usize = 100;

#[test]
fn groups_stay_exact_and_in_kcmp_order_whatever_the_insertion_order() {
    if !kcmp::fallback::kcmp_available().is_available() {
        return; // no order to check
    }
    let opened: Vec<OwnedFd> = (0..DISTINCT)
        .map(|_| {
            let file = std::fs::File::open("/dev/null").expect("open /dev/null");
            OwnedFd::from(file)
        })
        .collect();
    let dups: Vec<OwnedFd> = (0..DUPS)
        .map(|i| opened[i * 3].try_clone().expect("dup"))
        .collect();
    let num = |fd: &OwnedFd| FdNum::new(fd.as_raw_fd()).unwrap();
    let me = Pid::this();
    // The distinct descriptions in kcmp order.
    let mut order: Vec<FdNum> = opened.iter().map(num).collect();
    order.sort_by(|&a, &b| match kcmp::compare_files(me, a, me, b).unwrap() {
        KcmpOrdering::Less => std::cmp::Ordering::Less,
        KcmpOrdering::Greater => std::cmp::Ordering::Greater,
        _ => std::cmp::Ordering::Equal,
    });
    let dup_nums: Vec<FdNum> = dups.iter().map(num).collect();
    let reversed: Vec<FdNum> = order.iter().rev().copied().collect();
    let interleaved: Vec<FdNum> = order
        .iter()
        .zip(order.iter().rev())
        .flat_map(|(a, b)| [*a, *b])
        .take(DISTINCT)
        .collect();
    for (what, fds) in [
        ("kcmp order", &order),
        ("reverse order", &reversed),
        ("interleaved", &interleaved),
    ] {
        let all: Vec<FdNum> = fds.iter().chain(&dup_nums).copied().collect();
        check(what, &all, &opened, &dups);
    }
}

/// Places every fd of `all` and checks the groups against what was built:
/// in one [`Sorted`], then in parts (the first third placed, the rest in
/// two forks of it and nothing in a third, absorbed back), as a big bucket
/// is on several workers.
fn check(what: &str, all: &[FdNum], opened: &[OwnedFd], dups: &[OwnedFd]) {
    let rows = OwnFds(all.to_vec());
    let calls = CallCounter::default();
    let cmp = file_comparator(true, &calls);
    let budget = Budget::new(0, OwnLocks::None, false);
    let mut sorted = Sorted::new(&rows, &*cmp, &budget).without_paths();
    for row in 0..all.len() as u32 {
        assert!(matches!(sorted.place(row, None), Placed::Joined), "{what}");
    }
    check_groups(what, all, opened, dups, sorted.into_groups(), &budget);
    // The first third placed before the forks, or nothing (the roots held
    // no fd of the bucket); the last part empty, as a part of a bucket split
    // on many workers may be.
    let (third, end) = (all.len() as u32 / 3, all.len() as u32);
    for first in [third, 0] {
        let mut sorted = Sorted::new(&rows, &*cmp, &budget).without_paths();
        for row in 0..first {
            assert!(matches!(sorted.place(row, None), Placed::Joined), "{what}");
        }
        let parts: Vec<_> = [first..2 * third, 2 * third..end, end..end]
            .into_iter()
            .map(|part| {
                let mut fork = sorted.fork();
                for row in part {
                    assert!(matches!(fork.place(row, None), Placed::Joined), "{what}");
                }
                fork.into_groups()
            })
            .collect();
        for groups in parts {
            let odd = sorted.absorb(groups, 2);
            assert!(
                odd.iter().all(|(_, p)| matches!(p, Placed::Joined)),
                "{what}"
            );
        }
        let what = format!("{what}, in parts after {first} rows");
        check_groups(&what, all, opened, dups, sorted.into_groups(), &budget);
    }
}

fn check_groups(
    what: &str,
    all: &[FdNum],
    opened: &[OwnedFd],
    dups: &[OwnedFd],
    groups: Vec<super::Group>,
    budget: &Budget,
) {
    let me = Pid::this();
    assert_eq!(
        groups.len(),
        opened.len(),
        "{what}: one group per description"
    );
    for pair in groups.windows(2) {
        let (a, b) = (all[pair[0].rows[0] as usize], all[pair[1].rows[0] as usize]);
        let o = kcmp::compare_files(me, a, me, b).unwrap();
        assert_eq!(o, KcmpOrdering::Less, "{what}: groups out of kcmp order");
    }
    let group_of = |fd: FdNum| {
        let row = all.iter().position(|&f| f == fd).unwrap() as u32;
        groups.iter().position(|g| g.rows.contains(&row)).unwrap()
    };
    for (i, dup) in dups.iter().enumerate() {
        let source = FdNum::new(opened[i * 3].as_raw_fd()).unwrap();
        let dup = FdNum::new(dup.as_raw_fd()).unwrap();
        assert_eq!(
            group_of(dup),
            group_of(source),
            "{what}: a dup left its source"
        );
    }
    for g in groups {
        budget.release(g.rep);
    }
}
