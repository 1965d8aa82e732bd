//! The namespace rules: `cross-namespace` and `foreign-mount`.

use super::facts::{DescFacts, Facts};
use super::kind::{is_opath, writable, FileKind};
use super::{Finding, Holder, Rule, Severity};
use crate::procfs::FdTarget;
use crate::scan::{FdRef, OpenFileDescription, SharingMap};

const WHY_CROSS_CRITICAL: &str = "a directory, O_PATH fd or file open for writing shared across \
    mount or user namespaces lets the inner side reach or change files outside its namespace \
    (the runc CVE-2024-21626 class)";
const WHY_CROSS_INFO: &str = "shared across mount or user namespaces; pipes, sockets, terminals, \
    read-only files and stdio cross namespaces by design (a container's stdio with its runtime)";
const WHY_FOREIGN: &str = "a directory or O_PATH fd on a mount outside its holder's own mount \
    namespace is a path outside its root, reachable from inside (the state runc's \
    CVE-2024-21626 left behind)";

/// A finding about description `d`, with `holders` and the description's facts.
pub(super) fn finding(
    rule: Rule,
    severity: Severity,
    d: &OpenFileDescription,
    facts: &DescFacts,
    holders: Vec<Holder>,
    why: &str,
) -> Finding {
    Finding {
        rule,
        severity,
        target: d.target.clone(),
        target_raw: facts.raw.clone(),
        kind: facts.kind.name().to_string(),
        access: Some(super::kind::access_name(facts.flags)),
        holders,
        why: why.to_string(),
        size: None,
        registration: None,
        inode: None,
    }
}

/// The members of `d` whose fd still names what the scan saw.
pub(super) fn live_members(facts: &mut Facts, d: &OpenFileDescription) -> Vec<FdRef> {
    d.members
        .iter()
        .copied()
        .filter(|&m| facts.fd(m, &d.target).is_some())
        .collect()
}

fn namespaces(facts: &mut Facts, members: &[FdRef]) -> (usize, usize) {
    let mut mnt: Vec<&str> = Vec::new();
    let mut user: Vec<&str> = Vec::new();
    let mut last = None;
    for m in members {
        // Members are sorted by pid: read each process once.
        if last == Some(m.pid) {
            continue;
        }
        last = Some(m.pid);
        facts.task(m.pid);
    }
    for m in members {
        let t = facts.task_cached(m.pid);
        if let Some(ns) = t.and_then(|t| t.mnt_ns.as_deref()) {
            if !mnt.contains(&ns) {
                mnt.push(ns);
            }
        }
        if let Some(ns) = t.and_then(|t| t.user_ns.as_deref()) {
            if !user.contains(&ns) {
                user.push(ns);
            }
        }
    }
    (mnt.len(), user.len())
}

fn crosses(facts: &mut Facts, members: &[FdRef]) -> bool {
    let (mnt, user) = namespaces(facts, members);
    mnt >= 2 || user >= 2
}

/// `cross-namespace`: one description held in different mount or user
/// namespaces. Critical for directories, O_PATH fds and files open for
/// writing (a file whose type cannot be read counts as a file); info for
/// the rest, and whenever a holder has it as fd 0–2.
pub(super) fn cross_namespace(map: &SharingMap, facts: &mut Facts, out: &mut Vec<Finding>) {
    for d in map.open_files.iter().filter(|d| d.members.len() >= 2) {
        if !crosses(facts, &d.members) {
            continue;
        }
        let live = live_members(facts, d);
        if !crosses(facts, &live) {
            continue;
        }
        let Some(df) = facts.desc(d) else { continue };
        let stdio = live.iter().any(|m| m.fd.get() <= 2);
        let dangerous = df.kind == FileKind::Directory
            || is_opath(df.flags)
            || (matches!(df.kind, FileKind::File | FileKind::Unknown) && writable(df.flags));
        let (severity, why) = if dangerous && !stdio {
            (Severity::Critical, WHY_CROSS_CRITICAL)
        } else {
            (Severity::Info, WHY_CROSS_INFO)
        };
        let holders = live.iter().map(|&m| facts.holder(m, &d.target)).collect();
        out.push(finding(
            Rule::CrossNamespace,
            severity,
            d,
            &df,
            holders,
            why,
        ));
    }
}

/// `foreign-mount`: a directory or O_PATH fd whose `mnt_id` is not among
/// the mounts of its holder's own mount namespace (as seen from the
/// holder's root). One finding per description, with the holders it is
/// foreign to.
pub(super) fn foreign_mount(map: &SharingMap, facts: &mut Facts, out: &mut Vec<Finding>) {
    for d in &map.open_files {
        if !matches!(FdTarget::parse(&d.target), FdTarget::Path(_)) {
            continue;
        }
        // mnt_id belongs to the description: read it from one member; only
        // holders whose table lacks it are checked further (still naming
        // what the scan saw, the mount id read again), and only then is the
        // file stat-ed (for its type).
        let Some(mnt_id) = d.members.iter().find_map(|&m| facts.mnt_id_unchecked(m)) else {
            continue;
        };
        if mnt_id == 0 {
            continue;
        }
        let mut foreign = Vec::new();
        for &m in &d.members {
            if facts.table(m.pid).is_some_and(|t| !t.contains(mnt_id))
                && facts
                    .fd(m, &d.target)
                    .is_some_and(|f| f.info.mnt_id == mnt_id)
            {
                foreign.push(m);
            }
        }
        if foreign.is_empty() {
            continue;
        }
        let Some(df) = facts.desc(d) else { continue };
        if !(df.kind == FileKind::Directory || is_opath(df.flags)) {
            continue;
        }
        let holders = foreign
            .iter()
            .map(|&m| facts.holder(m, &d.target))
            .collect();
        out.push(finding(
            Rule::ForeignMount,
            Severity::Critical,
            d,
            &df,
            holders,
            WHY_FOREIGN,
        ));
    }
}
