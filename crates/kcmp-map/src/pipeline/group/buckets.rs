//! The grouping's buckets: rows by bucket key, parents' rows first.

use super::FdRow;
use crate::pipeline::list::Family;
use crate::procfs;

/// Buckets of rows by key, largest first; within a bucket, parents' rows
/// before their children's (so that hints find their group placed), by
/// depth, then row. A row with a hint has its parent's row's key: it goes
/// to that row's bucket without hashing its name (most rows of a forked
/// server's children).
pub(super) fn buckets<'r>(rows: &'r [FdRow], family: &Family) -> Vec<(&'r str, Vec<u32>)> {
    // Rows by (depth, row): each level's tasks in order, each task's rows
    // contiguous (flatten) — found here by binary search of the task.
    let starts = task_starts(rows, family.parent.len());
    let mut bucket_of: Vec<u32> = vec![u32::MAX; rows.len()];
    let mut by_key: foldhash::HashMap<&str, u32> = Default::default();
    let mut out: Vec<(&str, Vec<u32>)> = Vec::new();
    for level in &family.levels {
        let mut level = level.clone();
        level.sort_unstable();
        for t in level {
            for i in starts[t as usize]..starts[t as usize + 1] {
                let row = &rows[i];
                let b = match row.hint.map(|h| bucket_of[h as usize]) {
                    Some(b) if b != u32::MAX => b,
                    _ => {
                        let key = procfs::bucket_key(&row.target);
                        *by_key.entry(key).or_insert_with(|| {
                            out.push((key, Vec::new()));
                            (out.len() - 1) as u32
                        })
                    }
                };
                bucket_of[i] = b;
                out[b as usize].1.push(i as u32);
            }
        }
    }
    out.sort_unstable_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(b.0)));
    out
}

/// Where each task's rows begin in `rows` (grouped by task, in task
/// order), and one past the last: `tasks + 1` entries.
fn task_starts(rows: &[FdRow], tasks: usize) -> Vec<usize> {
    let mut starts = Vec::with_capacity(tasks + 1);
    for t in 0..=tasks as u32 {
        starts.push(rows.partition_point(|r| r.task < t));
    }
    starts
}

#[cfg(test)]
mod tests {
    use super::*;
    use kcmp::FdNum;

    fn row(task: u32, fd: i32, target: &str, hint: Option<u32>) -> FdRow {
        FdRow {
            task,
            fd: FdNum::new(fd).unwrap(),
            target: target.into(),
            raw: None,
            hint,
        }
    }

    /// Every row lands in its key's bucket once, by (depth, row): through
    /// its hint when the hint's row was bucketed first, by its key when not
    /// (here a hint into a task of the same level, processed later, as a
    /// family whose parent links had a cycle can have).
    #[test]
    fn rows_land_once_in_their_keys_bucket_by_depth_then_row() {
        // Tasks 0 and 2 are roots, 1 is 2's child; row order is task order.
        let family = Family {
            parent: vec![None, Some(2), None],
            levels: vec![vec![2, 0], vec![1]],
        };
        let rows = [
            row(0, 3, "/a", Some(5)), // a hint into a row not bucketed yet
            row(0, 4, "/b (deleted)", None),
            row(1, 3, "/a", Some(5)),
            row(1, 4, "pipe:[7]", None),
            row(1, 5, "/b", Some(1)),
            row(2, 3, "/a", None),
        ];
        let got = buckets(&rows, &family);
        let got: Vec<(&str, Vec<u32>)> = got.into_iter().collect();
        assert_eq!(
            got,
            [
                ("/a", vec![0, 5, 2]),
                ("/b", vec![1, 4]),
                ("pipe:[7]", vec![3])
            ]
        );
    }
}
