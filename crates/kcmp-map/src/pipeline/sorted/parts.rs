//! A bucket grouped in parts on several workers: [`Sorted::fork`] gives
//! each worker a copy of the groups so far, and [`Sorted::absorb`] merges
//! a part's groups back in kcmp order.

use super::{Group, Placed, Rows, Sorted, GONE};
use crate::pipeline::anchor::Rep;
use kcmp::KcmpOrdering;

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
        copy
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
                if i == self.len() {
                    self.insert_group(i, group.rep, group.rows);
                    i += 1;
                    break;
                }
                let (p, f) = group.rep.locate(self.budget.me(), |r| self.rows.locate(r));
                let (rp, rf) = self
                    .at(i)
                    .rep
                    .locate(self.budget.me(), |r| self.rows.locate(r));
                match (self.cmp)(p, f, rp, rf) {
                    Ok(KcmpOrdering::Greater) => i += 1,
                    Ok(KcmpOrdering::Less) => {
                        self.insert_group(i, group.rep, group.rows);
                        i += 1;
                        break;
                    }
                    Ok(KcmpOrdering::Equal) => {
                        let id = self.order[i];
                        for &r in &group.rows {
                            self.group_of.insert(r, id);
                            self.note_task(r, id);
                        }
                        self.at_mut(i).rows.extend(group.rows);
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
}
