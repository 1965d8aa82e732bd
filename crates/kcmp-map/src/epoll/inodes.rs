//! Bucket keys (link texts) by inode: which keys can hold a registration's
//! description, learnt lazily from fdinfo.

use super::Registration;
use crate::model::FdRef;
use crate::procfs::{self, FdTarget};
use std::collections::{HashMap, HashSet};

fn kernel_dev(sdev: u32) -> (u32, u32) {
    (sdev >> 20, sdev & 0xf_ffff)
}

/// Where candidates for a registration come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Phase {
    /// Pipes and sockets: the inode is in the link text.
    LinkText,
    /// `anon_inode:…`: fdinfo of one holder (few distinct texts).
    Anon,
    /// Paths and the rest: fdinfo of one holder per text.
    Path,
}

/// A bucket key (by index) with this inode, and its device (major, minor)
/// when it was learnt from the holder's mount table.
type KeyInode = (usize, Option<(u32, u32)>);

/// Bucket keys by inode, learnt lazily from fdinfo.
pub(super) struct InoIndex {
    /// (key, its holders (read in turn until one is still open), phase)
    keys: Vec<(String, Vec<FdRef>, Phase)>,
    /// inode -> (key index, device (major, minor) when known)
    by_ino: HashMap<u64, Vec<KeyInode>>,
    statted: HashSet<Phase>,
    mounts: crate::mounts::FdInodes,
}

impl InoIndex {
    pub(super) fn new(keys: Vec<(String, Vec<FdRef>)>) -> Self {
        let mut index = InoIndex {
            keys: Vec::with_capacity(keys.len()),
            by_ino: HashMap::new(),
            statted: HashSet::new(),
            mounts: crate::mounts::FdInodes::default(),
        };
        for (key, samples) in keys {
            let phase = match FdTarget::parse(&key) {
                FdTarget::Pipe(ino) | FdTarget::Socket(ino) => {
                    index
                        .by_ino
                        .entry(ino)
                        .or_default()
                        .push((index.keys.len(), None));
                    Phase::LinkText
                }
                FdTarget::AnonInode(_) => Phase::Anon,
                _ => Phase::Path,
            };
            index.keys.push((key, samples, phase));
        }
        index.keys.shrink_to_fit();
        index
    }

    fn stat_phase(&mut self, phase: Phase) {
        if !self.statted.insert(phase) {
            return;
        }
        for i in 0..self.keys.len() {
            let (key, samples, p) = &self.keys[i];
            if *p != phase {
                continue;
            }
            // The first holder whose fd still shows this key after its
            // fdinfo was read (an fd closed, or reused for another file, is
            // passed over).
            for m in samples {
                let Some((ino, dev)) = self.mounts.inode_of(m.pid, m.fd) else {
                    continue;
                };
                let still = procfs::fd_target(m.pid, m.fd)
                    .is_ok_and(|l| procfs::bucket_key(&l) == key.as_str());
                if still {
                    self.by_ino.entry(ino).or_default().push((i, dev));
                    break;
                }
            }
        }
    }

    /// The keys of `phase` whose inode (and device, when known) is the
    /// registration's.
    pub(super) fn candidates(&mut self, reg: &Registration, phase: Phase) -> Vec<&str> {
        if phase != Phase::LinkText {
            self.stat_phase(phase);
        }
        let dev = kernel_dev(reg.sdev);
        let Some(entries) = self.by_ino.get(&reg.ino) else {
            return Vec::new();
        };
        let mut out: Vec<&str> = entries
            .iter()
            .filter(|(i, d)| self.keys[*i].2 == phase && d.is_none_or(|d| d == dev))
            .map(|(i, _)| self.keys[*i].0.as_str())
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// Bucket keys with their holders, as [`InoIndex::new`] takes them.
type Keys = Vec<(String, Vec<FdRef>)>;

/// An [`InoIndex`] built on first use: a scan whose registrations are all
/// decided through their own fd number never needs one.
pub(super) struct LazyInoIndex<'a> {
    keys: Option<Box<dyn FnOnce() -> Keys + 'a>>,
    built: Option<InoIndex>,
}

impl<'a> LazyInoIndex<'a> {
    /// `keys` is called at the first [`Self::get`].
    pub(super) fn new(keys: impl FnOnce() -> Keys + 'a) -> Self {
        LazyInoIndex {
            keys: Some(Box::new(keys)),
            built: None,
        }
    }

    /// The index, built now if it was not yet.
    pub(super) fn get(&mut self) -> &mut InoIndex {
        let keys = &mut self.keys;
        self.built
            .get_or_insert_with(|| InoIndex::new(keys.take().map(|k| k()).unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_dev_splits_major_minor() {
        assert_eq!(kernel_dev(0x0080_0003), (8, 3));
        assert_eq!(kernel_dev(0xd), (0, 13));
    }
}
