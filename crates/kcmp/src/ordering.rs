//! The kernel's answer: an ordering of two kernel objects.
#![forbid(unsafe_code)]

use std::cmp::Ordering;
use std::fmt;

/// The result of a kcmp(2) call.
///
/// The kernel obfuscates both object pointers with per-boot, per-type
/// cookies and compares them, so within one boot and one type the order is
/// stable, antisymmetric and transitive: callers may sort by it and group
/// equal objects with a binary search instead of comparing pairwise.
/// `KCMP_EPOLL_TFD` orders like `KCMP_FILE`.
///
/// ```
/// use kcmp::KcmpOrdering;
/// use std::cmp::Ordering;
/// assert_eq!(KcmpOrdering::from_raw(0), KcmpOrdering::Equal);
/// assert_eq!(KcmpOrdering::from_raw(1).to_ordering(), Some(Ordering::Less));
/// assert!(!KcmpOrdering::from_raw(3).is_equal());
/// assert_eq!(KcmpOrdering::from_raw(3).to_ordering(), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KcmpOrdering {
    /// 0: both refer to the same kernel object.
    Equal,
    /// 1: the first object orders before the second.
    Less,
    /// 2: the first object orders after the second.
    Greater,
    /// 3 (documented as "not equal, but ordering information is unavailable";
    /// returned by no current kernel) or any other positive value, kept raw.
    Unordered(i32),
}

impl KcmpOrdering {
    /// Interprets the syscall's non-negative return value.
    pub fn from_raw(raw: i32) -> Self {
        match raw {
            0 => KcmpOrdering::Equal,
            1 => KcmpOrdering::Less,
            2 => KcmpOrdering::Greater,
            other => KcmpOrdering::Unordered(other),
        }
    }

    /// The syscall's return value.
    ///
    /// ```
    /// assert_eq!(kcmp::KcmpOrdering::Greater.raw(), 2);
    /// ```
    pub fn raw(self) -> i32 {
        match self {
            KcmpOrdering::Equal => 0,
            KcmpOrdering::Less => 1,
            KcmpOrdering::Greater => 2,
            KcmpOrdering::Unordered(r) => r,
        }
    }

    /// True when both sides are the same kernel object.
    pub fn is_equal(self) -> bool {
        self == KcmpOrdering::Equal
    }

    /// The order as [`std::cmp::Ordering`], or `None` when unordered.
    pub fn to_ordering(self) -> Option<Ordering> {
        match self {
            KcmpOrdering::Equal => Some(Ordering::Equal),
            KcmpOrdering::Less => Some(Ordering::Less),
            KcmpOrdering::Greater => Some(Ordering::Greater),
            KcmpOrdering::Unordered(_) => None,
        }
    }

    /// The word used in JSON output: `equal`, `less`, `greater`, `unordered`.
    ///
    /// ```
    /// assert_eq!(kcmp::KcmpOrdering::Less.as_str(), "less");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            KcmpOrdering::Equal => "equal",
            KcmpOrdering::Less => "less",
            KcmpOrdering::Greater => "greater",
            KcmpOrdering::Unordered(_) => "unordered",
        }
    }
}

impl From<Ordering> for KcmpOrdering {
    fn from(o: Ordering) -> Self {
        match o {
            Ordering::Less => KcmpOrdering::Less,
            Ordering::Equal => KcmpOrdering::Equal,
            Ordering::Greater => KcmpOrdering::Greater,
        }
    }
}

impl fmt::Display for KcmpOrdering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
