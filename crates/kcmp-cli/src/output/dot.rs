//! `kcmp scan --dot`: the sharing graph for Graphviz, drawable at host
//! scale. Descriptions are notes; processes are boxes; an edge says a
//! process holds a description, labelled with the fd numbers; dashed edges
//! are process-level sharing. Processes with the same command that hold
//! exactly the same descriptions under the same fd numbers (and are in the
//! same process-level groups) collapse into one box `nginx ×48`, listing
//! their pids as ranges. Names are escaped as `ls -b` does, then quoted.

use super::escape::escape;
use super::scan::View;
use super::summary::ranges;
use kcmp::Pid;
use std::collections::BTreeMap;
use std::fmt::Write as _;

fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// What a process holds among the shown descriptions and groups; equal
/// signatures (and comm) collapse into one node.
type Signature = (String, Vec<(usize, Vec<i32>)>, Vec<usize>);

/// The DOT text.
pub fn dot(view: &View<'_>) -> String {
    // Per process: its edges (description index, fds) and group indexes.
    let mut edges: BTreeMap<Pid, Vec<(usize, Vec<i32>)>> = BTreeMap::new();
    for (i, d) in view.shown.iter().enumerate() {
        for run in d.members.chunk_by(|a, b| a.pid == b.pid) {
            let fds = run.iter().map(|m| m.fd.get()).collect();
            edges.entry(run[0].pid).or_default().push((i, fds));
        }
    }
    let mut groups_of: BTreeMap<Pid, Vec<usize>> = BTreeMap::new();
    for (g, (_, pids)) in view.groups.iter().enumerate() {
        for &p in *pids {
            groups_of.entry(p).or_default().push(g);
            edges.entry(p).or_default();
        }
    }
    let mut nodes: BTreeMap<Signature, Vec<Pid>> = BTreeMap::new();
    for (pid, e) in edges {
        let comm = view.facts.comm(pid).unwrap_or("?").to_string();
        let g = groups_of.remove(&pid).unwrap_or_default();
        nodes.entry((comm, e, g)).or_default().push(pid);
    }
    let mut out = String::from(
        "digraph kcmp {\n  rankdir=LR;\n  node [fontname=\"monospace\", fontsize=10];\n  edge [fontname=\"monospace\", fontsize=9, color=\"#666666\"];\n",
    );
    let _ = writeln!(
        out,
        "  // {} descriptions, {} process node(s); narrow with --tree PID, --comm NAME, --user USER, --kind KIND, --path PREFIX or --min-holders N",
        view.shown.len(),
        nodes.len()
    );
    let _ = writeln!(
        out,
        "  label=\"{} descriptions, {} process node(s) (narrow with --tree, --comm, --user, --kind, --path, --min-holders)\"; labelloc=b;",
        view.shown.len(),
        nodes.len()
    );
    for (i, d) in view.shown.iter().enumerate() {
        let _ = writeln!(
            out,
            "  d{i} [shape=note, style=filled, fillcolor=\"#fff4d6\", label=\"{}\\n{} holders\"];",
            quote(&view.label(d)),
            d.members.len()
        );
    }
    let mut group_nodes: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (n, ((comm, e, gs), pids)) in nodes.iter().enumerate() {
        let nums: Vec<i32> = pids.iter().map(|p| p.get()).collect();
        let label = if pids.len() == 1 {
            format!("{}\\n{}", nums[0], quote(&escape(comm)))
        } else {
            format!(
                "{} ×{}\\n{}",
                quote(&escape(comm)),
                pids.len(),
                ranges(&nums, 3)
            )
        };
        let _ = writeln!(out, "  p{n} [shape=box, style=rounded, label=\"{label}\"];");
        for (i, fds) in e {
            let fds: Vec<String> = fds.iter().map(i32::to_string).collect();
            let _ = writeln!(out, "  p{n} -> d{i} [label=\"fd {}\"];", fds.join(","));
        }
        for &g in gs {
            group_nodes.entry(g).or_default().push(n);
        }
    }
    for (g, ns) in group_nodes {
        let kind = view.groups[g].0;
        for w in ns.windows(2) {
            let _ = writeln!(
                out,
                "  p{} -> p{} [dir=none, style=dashed, color=\"#3366cc\", label=\"{kind}\"];",
                w[0], w[1]
            );
        }
        if ns.len() == 1 {
            let _ = writeln!(
                out,
                "  p{0} -> p{0} [dir=none, style=dashed, color=\"#3366cc\", label=\"{kind} (among them)\"];",
                ns[0]
            );
        }
    }
    out.push_str("}\n");
    out
}
