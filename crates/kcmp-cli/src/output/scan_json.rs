//! `kcmp scan --json` (schema 1, one document) and `--json-lines` (NDJSON:
//! one record per line, each written as soon as it is final).
//!
//! A description is `{"target", "target_bytes"?, "kind", "holder_count",
//! "process_count", "members": [{"pid", "fd", "comm"}], "without_anchor"?}`;
//! `target_bytes` (the name's bytes, an array of numbers) is there only when
//! the name is not valid UTF-8, `target` then has U+FFFD for each invalid
//! byte; `without_anchor: true` only for a description compared through one
//! of its members rather than the engine's own copy (exact only if its
//! holders held still).

use super::scan::View;
use super::sink::Sink;
use kcmp::Pid;
use kcmp_map::scan::OpenFileDescription;
use serde::ser::SerializeSeq;
use serde::Serialize;
use serde_json::{json, Value};

/// One holder in JSON.
#[derive(Serialize)]
struct Member<'a> {
    pid: Pid,
    fd: kcmp::FdNum,
    comm: &'a str,
}

/// One description in JSON.
#[derive(Serialize)]
struct Description<'a> {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    ty: Option<&'static str>,
    target: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_bytes: Option<&'a [u8]>,
    kind: &'static str,
    holder_count: usize,
    process_count: usize,
    members: Vec<Member<'a>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    without_anchor: bool,
}

fn description<'a>(
    view: &'a View<'_>,
    d: &'a OpenFileDescription,
    ty: Option<&'static str>,
) -> Description<'a> {
    // A process's members come together: its comm is looked up once.
    let mut last: Option<(Pid, &str)> = None;
    let members: Vec<Member<'a>> = d
        .members
        .iter()
        .map(|m| {
            let comm = match last {
                Some((p, c)) if p == m.pid => c,
                _ => view.facts.comm(m.pid).unwrap_or("?"),
            };
            last = Some((m.pid, comm));
            Member {
                pid: m.pid,
                fd: m.fd,
                comm,
            }
        })
        .collect();
    Description {
        ty,
        target: &d.target,
        target_bytes: view.name_bytes(d),
        kind: view.facts.kind(d),
        holder_count: members.len(),
        process_count: distinct_pids(&members),
        members,
        without_anchor: d.without_anchor(),
    }
}

/// How many processes the members are of (counted in one pass when they
/// come in pid order, as the map lists them).
fn distinct_pids(members: &[Member<'_>]) -> usize {
    if members.windows(2).all(|w| w[0].pid <= w[1].pid) {
        let changes = members.windows(2).filter(|w| w[0].pid != w[1].pid).count();
        return changes + usize::from(!members.is_empty());
    }
    let mut pids: Vec<Pid> = members.iter().map(|m| m.pid).collect();
    pids.sort_unstable();
    pids.dedup();
    pids.len()
}

struct OpenFiles<'a, 'b>(&'a View<'b>);

impl Serialize for OpenFiles<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.shown.len()))?;
        for d in &self.0.shown {
            seq.serialize_element(&description(self.0, d, None))?;
        }
        seq.end()
    }
}

/// The shown groups by kind: `{"vm": [[P, …], …], …}` (every computed kind).
fn shared(view: &View<'_>) -> Value {
    let mut o = serde_json::Map::new();
    for k in view.map.shared.keys() {
        o.insert(k.clone(), json!([]));
    }
    for (k, g) in &view.groups {
        if let Some(Value::Array(a)) = o.get_mut(*k) {
            a.push(json!(g));
        }
    }
    Value::Object(o)
}

/// The scan's shown epoll instances, with `comm` on holders and
/// `events_names` (the `"epoll"` key).
pub fn epoll_json<'a>(
    view: &'a View<'_>,
    comm: super::epoll_json::CommOf<'a>,
) -> super::epoll_json::InstancesJson<'a> {
    super::epoll_json::InstancesJson {
        list: &view.epolls,
        comm,
    }
}

#[derive(Serialize)]
struct Document<'a, 'b> {
    schema: u32,
    tasks: usize,
    fds: usize,
    skipped: &'a [kcmp_map::scan::Skipped],
    open_files: OpenFiles<'a, 'b>,
    shared: Value,
    unavailable: &'a std::collections::BTreeMap<String, String>,
    stats: &'a kcmp_map::scan::ScanStats,
    #[serde(skip_serializing_if = "Option::is_none")]
    frozen: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_frozen: Option<&'a [kcmp_map::freeze::NotFrozen]>,
    /// With `--freeze`, when the freeze ended early: why (`frozen` is false).
    #[serde(skip_serializing_if = "Option::is_none")]
    freeze_released: Option<kcmp_map::freeze::Release>,
    #[serde(skip_serializing_if = "Option::is_none")]
    epoll: Option<super::epoll_json::InstancesJson<'a>>,
    shared_descriptions: usize,
    shown: usize,
    skipped_fds: &'a [kcmp_map::model::SkippedFd],
    changed_fds: &'a [kcmp_map::scan::FdRef],
    own_fd_tables: &'a [Pid],
}

/// Writes JSON schema 1 (see the README) and a newline; `epoll` adds the
/// `"epoll"` key.
pub fn write_json(view: &View<'_>, epoll: bool, sink: &mut Sink) {
    let map = view.map;
    let comm = |p: Pid| map.comm(p);
    let doc = Document {
        schema: 1,
        tasks: map.tasks.len(),
        fds: map.fd_count(),
        skipped: &map.skipped,
        open_files: OpenFiles(view),
        shared: shared(view),
        unavailable: &map.unavailable,
        stats: &map.stats,
        frozen: froze(map).then_some(map.frozen),
        not_frozen: froze(map).then_some(&map.not_frozen[..]),
        freeze_released: map.freeze_released,
        epoll: epoll.then(|| epoll_json(view, &comm)),
        shared_descriptions: view.shared_count(),
        shown: view.shown.len(),
        skipped_fds: &map.skipped_fds,
        changed_fds: &map.changed_fds,
        own_fd_tables: &map.own_fd_tables,
    };
    sink.json_line(&doc);
    sink.flush();
}

/// Writes NDJSON: one `"type": "description"` record per shown description
/// (the map's order), one `"group"` per process-level group, one `"epoll"`
/// per epoll instance, one `"skipped"` per skipped process, then one
/// `"summary"`. Each record is flushed as soon as it is written.
pub fn write_json_lines(view: &View<'_>, epoll: bool, sink: &mut Sink) {
    let map = view.map;
    for d in &view.shown {
        sink.json_line(&description(view, d, Some("description")));
        sink.flush();
    }
    for (kind, pids) in &view.groups {
        let members: Vec<Value> = pids
            .iter()
            .map(|&p| json!({"pid": p, "comm": view.facts.comm(p).unwrap_or("?")}))
            .collect();
        sink.json_line(&json!({"type": "group", "kind": kind, "pids": pids, "members": members}));
        sink.flush();
    }
    if epoll {
        let comm = |p: Pid| map.comm(p);
        for instance in &view.epolls {
            sink.json_line(&super::epoll_json::InstanceJson {
                instance,
                comm: &comm,
                ty: Some("epoll"),
            });
            sink.flush();
        }
    }
    for s in &map.skipped {
        let mut v = serde_json::to_value(s).unwrap_or(Value::Null);
        v["type"] = json!("skipped");
        sink.json_line(&v);
        sink.flush();
    }
    let mut summary = json!({
        "type": "summary",
        "schema": 1,
        "tasks": map.tasks.len(),
        "fds": map.fd_count(),
        "shared_descriptions": view.shared_count(),
        "shown": view.shown.len(),
        "groups": view.groups.len(),
        "skipped_count": map.skipped.len(),
        "unavailable": map.unavailable,
        "stats": map.stats,
        "skipped_fds": map.skipped_fds,
        "changed_fds": map.changed_fds,
        "own_fd_tables": map.own_fd_tables,
    });
    if froze(map) {
        summary["frozen"] = json!(map.frozen);
        summary["not_frozen"] = json!(map.not_frozen);
    }
    if let Some(why) = map.freeze_released {
        summary["freeze_released"] = json!(why);
    }
    sink.json_line(&summary);
    sink.flush();
}

/// Whether `--freeze` froze the set, for the whole scan or until released.
fn froze(map: &kcmp_map::scan::SharingMap) -> bool {
    map.frozen || map.freeze_released.is_some()
}
