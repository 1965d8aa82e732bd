//! The memory the root shares with its children (one `MAP_SHARED` anonymous
//! mapping, all atomics, zero = empty): each child's report, its slot.

use crate::{sys, R};
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::time::Duration;

pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
pub const MAX_RECS: usize = 320;
pub const MAX_TIDS: usize = 8;
pub const MAX_EXTRA: usize = 4;
pub const MAX_NUMS: usize = 8;

pub const READY: u32 = 1;
pub const FAILED: u32 = 2;

#[repr(C)]
pub struct Str<const N: usize> {
    len: AtomicU32,
    bytes: [AtomicU8; N],
}

impl<const N: usize> Str<N> {
    pub fn set(&self, s: &str) {
        let b = s.as_bytes();
        let n = b.len().min(N);
        for (i, c) in b[..n].iter().enumerate() {
            self.bytes[i].store(*c, Ordering::Relaxed);
        }
        self.len.store(n as u32, Ordering::Release);
    }
    pub fn get(&self) -> String {
        let n = self.len.load(Ordering::Acquire) as usize;
        let v: Vec<u8> = self.bytes[..n.min(N)]
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        String::from_utf8_lossy(&v).into_owned()
    }
}

/// One recorded fd: its number, kind, description id and optional name.
#[repr(C)]
pub struct Rec {
    pub fd: AtomicI32,
    pub kind: AtomicU32,
    pub desc: AtomicU64,
    pub name: Str<40>,
}

/// A process created by a child (a clone twin or a plain fork).
#[repr(C)]
pub struct Extra {
    pub pid: AtomicI32,
    pub flags: AtomicU64,
    pub io: AtomicU32,
    pub undo: AtomicU32,
    pub name: Str<40>,
}

#[repr(C)]
pub struct Num {
    pub value: AtomicI64,
    pub name: Str<40>,
}

/// Everything one child reports. Written only by that child (and its
/// twins/threads, which touch only `extra_ready` and `tids`).
#[repr(C)]
pub struct Slot {
    pub state: AtomicU32,
    pub extra_ready: AtomicU32,
    pub has_io: AtomicU32,
    pub has_undo: AtomicU32,
    pub ntids: AtomicU32,
    pub tids: [AtomicI32; MAX_TIDS],
    pub nextra: AtomicU32,
    pub extras: [Extra; MAX_EXTRA],
    pub nnums: AtomicU32,
    pub nums: [Num; MAX_NUMS],
    pub nrec: AtomicU32,
    pub recs: [Rec; MAX_RECS],
    pub err: Str<400>,
}

pub fn shared_slots(n: usize) -> R<&'static [Slot]> {
    let len = n * std::mem::size_of::<Slot>();
    let p = sys::shared_zeroed(len).map_err(|e| format!("mmap shared: {e}"))?;
    // SAFETY: `p` is a fresh, page-aligned (so suitably aligned for `Slot`)
    // zero-filled mapping of n * size_of::<Slot>() bytes that is never
    // unmapped. `Slot` consists only of atomics, for which all-zero bytes are
    // a valid value, and all access goes through atomics, so sharing it (also
    // with other processes through MAP_SHARED) is sound.
    Ok(unsafe { std::slice::from_raw_parts(p as *const Slot, n) })
}
