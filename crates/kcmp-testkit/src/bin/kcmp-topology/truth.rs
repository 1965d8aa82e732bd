//! The truth the root prints, decided by construction from what every
//! child recorded in its slot: tasks, descriptions and their holders,
//! shared resources, present objects and names.

use crate::ctx::Kind;
use crate::root::Root;
use crate::slots::{Extra, Slot};
use crate::R;
use kcmp_testkit::{
    FdRef, FileTruth, Named, PresentTruth, SharedTruth, TaskTruth, Truth, RESOURCES,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;

/// One recorded fd: (pid, fd, desc, kind).
type Member = (i32, i32, u64, Kind);

/// What the truth is assembled from, filled task by task.
struct Parts {
    tasks: Vec<TaskTruth>,
    named: BTreeMap<String, Named>,
    members: Vec<Member>,
    /// Union-find per resource, over tids (a pid is its leader's tid).
    uf: BTreeMap<&'static str, Uf>,
    present: PresentTruth,
    thread_groups: Vec<Vec<i32>>,
}

impl Parts {
    fn add_name(&mut self, k: &str, v: Named) -> R<()> {
        if k.is_empty() {
            return Ok(());
        }
        if self.named.insert(k.to_string(), v).is_some() {
            return Err(format!("name {k:?} used twice"));
        }
        Ok(())
    }

    fn nums(&mut self, s: &Slot) -> R<()> {
        for n in &s.nums[..s.nnums.load(Ordering::Acquire) as usize] {
            self.add_name(
                &n.name.get(),
                Named::Number(n.value.load(Ordering::Relaxed)),
            )?;
        }
        Ok(())
    }
}

impl Root {
    /// The truth, once every child is ready.
    pub fn truth(&self, scenario: &str) -> R<Truth> {
        let root = std::process::id() as i32;
        let mut p = Parts {
            tasks: vec![TaskTruth {
                pid: root,
                tids: vec![root],
                zombie: false,
                label: "root".into(),
            }],
            named: BTreeMap::new(),
            members: Vec::new(),
            uf: RESOURCES.iter().map(|r| (*r, Uf::default())).collect(),
            present: PresentTruth::default(),
            thread_groups: Vec::new(),
        };
        p.add_name("root", Named::Number(root as i64))?;
        for (fd, en) in &self.ctx.table {
            p.members.push((root, *fd, en.desc, en.kind));
            if let Some(n) = &en.name {
                p.add_name(n, Named::FdNum(FdRef { pid: root, fd: *fd }))?;
            }
        }
        p.nums(&self.ctx.slots[0])?;
        for idx in 1..self.labels.len() {
            self.child_truth(idx, &mut p)?;
        }
        for z in &self.zombies {
            p.tasks.push(TaskTruth {
                pid: z.pid,
                tids: vec![z.pid],
                zombie: true,
                label: z.label.clone(),
            });
            p.add_name(&z.label, Named::Number(z.pid as i64))?;
        }
        let (shared, shared_threads) = shared_truths(&mut p.uf, &p.thread_groups);
        p.present.io.sort_unstable();
        p.present.sysvsem.sort_unstable();
        let files = self.files_truth(p.members)?;
        // The root first, then ascending pids.
        p.tasks.sort_by_key(|t| (t.pid != root, t.pid));
        Ok(Truth {
            root,
            scenario: scenario.into(),
            tasks: p.tasks,
            files,
            shared,
            shared_threads,
            present: p.present,
            named: p.named,
        })
    }

    /// Child `idx`'s task, threads, fds, names and presence, and its twins.
    fn child_truth(&self, idx: usize, p: &mut Parts) -> R<()> {
        let s = &self.ctx.slots[idx];
        let pid = self.pids[idx];
        let label = &self.labels[idx];
        let mut tids = vec![pid];
        let nt = s.ntids.load(Ordering::Acquire) as usize;
        tids.extend(s.tids[1..=nt].iter().map(|t| t.load(Ordering::Relaxed)));
        for (i, t) in tids.iter().enumerate().skip(1) {
            p.add_name(&format!("{label}_thread_{i}"), Named::Number(*t as i64))?;
        }
        if tids.len() > 1 {
            p.thread_groups.push(tids.clone());
        }
        p.tasks.push(TaskTruth {
            pid,
            tids,
            zombie: false,
            label: label.clone(),
        });
        p.add_name(label, Named::Number(pid as i64))?;
        p.nums(s)?;
        if s.has_io.load(Ordering::Acquire) != 0 {
            p.present.io.push(pid);
        }
        if s.has_undo.load(Ordering::Acquire) != 0 {
            p.present.sysvsem.push(pid);
        }
        let nrec = s.nrec.load(Ordering::Acquire) as usize;
        let recs: Vec<(i32, u64, Kind, String)> = s.recs[..nrec]
            .iter()
            .map(|r| {
                Ok((
                    r.fd.load(Ordering::Relaxed),
                    r.desc.load(Ordering::Relaxed),
                    Kind::from_u32(r.kind.load(Ordering::Relaxed))?,
                    r.name.get(),
                ))
            })
            .collect::<R<_>>()?;
        for (fd, desc, kind, name) in &recs {
            p.members.push((pid, *fd, *desc, *kind));
            p.add_name(name, Named::FdNum(FdRef { pid, fd: *fd }))?;
        }
        let nx = s.nextra.load(Ordering::Acquire) as usize;
        for x in &s.extras[..nx] {
            extra_truth(pid, x, &recs, p)?;
        }
        Ok(())
    }

    /// Groups the recorded fds by description, one [`FileTruth`] each.
    fn files_truth(&self, members: Vec<Member>) -> R<Vec<FileTruth>> {
        let mut by_desc: BTreeMap<u64, (Kind, Vec<FdRef>)> = BTreeMap::new();
        let mut seen = BTreeSet::new();
        for (pid, fd, desc, kind) in members {
            if !seen.insert((pid, fd)) {
                return Err(format!("({pid}, {fd}) recorded twice"));
            }
            let ent = by_desc.entry(desc).or_insert((kind, Vec::new()));
            if ent.0 != kind {
                return Err(format!("description {desc:#x} has two kinds"));
            }
            ent.1.push(FdRef { pid, fd });
        }
        let mut files: Vec<FileTruth> = by_desc
            .into_iter()
            .map(|(desc, (kind, mut m))| {
                m.sort_unstable();
                let creator = ((desc >> 32) as usize).saturating_sub(1);
                FileTruth {
                    label: format!(
                        "{}:{}#{}",
                        self.labels.get(creator).map(String::as_str).unwrap_or("?"),
                        kind.name(),
                        desc & 0xffff_ffff
                    ),
                    kind: kind.name().into(),
                    members: m,
                }
            })
            .collect();
        files.sort_by(|a, b| a.members[0].cmp(&b.members[0]));
        Ok(files)
    }
}

/// A twin `x` of the child `pid`: its task, its fds (the parent's table,
/// copied or shared), the resources its clone flags share, its presence.
fn extra_truth(pid: i32, x: &Extra, recs: &[(i32, u64, Kind, String)], p: &mut Parts) -> R<()> {
    let xpid = x.pid.load(Ordering::Relaxed);
    let flags = x.flags.load(Ordering::Relaxed);
    let xlabel = x.name.get();
    p.tasks.push(TaskTruth {
        pid: xpid,
        tids: vec![xpid],
        zombie: false,
        label: xlabel.clone(),
    });
    p.add_name(&xlabel, Named::Number(xpid as i64))?;
    // The twin's fd table is the parent's (copied or shared).
    for (fd, desc, kind, _) in recs {
        p.members.push((xpid, *fd, *desc, *kind));
    }
    for (res, bit) in [
        ("vm", libc::CLONE_VM),
        ("files", libc::CLONE_FILES),
        ("fs", libc::CLONE_FS),
        ("sighand", libc::CLONE_SIGHAND),
        ("io", libc::CLONE_IO),
        ("sysvsem", libc::CLONE_SYSVSEM),
    ] {
        if flags & bit as u64 != 0 {
            p.uf.get_mut(res).expect("resource").union(pid, xpid);
        }
    }
    if x.io.load(Ordering::Relaxed) != 0 {
        p.present.io.push(xpid);
    }
    if x.undo.load(Ordering::Relaxed) != 0 {
        p.present.sysvsem.push(xpid);
    }
    Ok(())
}

/// The resource groups without threads, then with each thread joined to its
/// process: threads share everything but io with their process.
fn shared_truths(
    uf: &mut BTreeMap<&'static str, Uf>,
    thread_groups: &[Vec<i32>],
) -> (SharedTruth, SharedTruth) {
    let mut shared = SharedTruth::default();
    for res in RESOURCES {
        *shared.groups_mut(res) = uf[res].groups();
    }
    // Threads share everything but io with their process (see the module docs).
    for res in ["vm", "files", "fs", "sighand", "sysvsem"] {
        let u = uf.get_mut(res).expect("resource");
        for g in thread_groups {
            for t in &g[1..] {
                u.union(g[0], *t);
            }
        }
    }
    let mut shared_threads = SharedTruth::default();
    for res in RESOURCES {
        *shared_threads.groups_mut(res) = uf[res].groups();
    }
    (shared, shared_threads)
}

#[derive(Default)]
struct Uf {
    parent: BTreeMap<i32, i32>,
}

impl Uf {
    fn find(&mut self, x: i32) -> i32 {
        let p = *self.parent.entry(x).or_insert(x);
        if p == x {
            return x;
        }
        let r = self.find(p);
        self.parent.insert(x, r);
        r
    }
    fn union(&mut self, a: i32, b: i32) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.parent.insert(ra.max(rb), ra.min(rb));
        }
    }
    fn groups(&self) -> Vec<Vec<i32>> {
        let mut me = Uf {
            parent: self.parent.clone(),
        };
        let keys: Vec<i32> = self.parent.keys().copied().collect();
        let mut g: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for k in keys {
            let r = me.find(k);
            g.entry(r).or_default().push(k);
        }
        let mut out: Vec<Vec<i32>> = g
            .into_values()
            .filter(|v| v.len() >= 2)
            .map(|mut v| {
                v.sort_unstable();
                v
            })
            .collect();
        out.sort();
        out
    }
}
