#!/usr/bin/env python3
"""Turns the result directories of bench/run-suite.sh into markdown tables.

    report.py RESULTS_DIR            prints the tables (BENCHMARKS.md-ready)
    report.py --pids ROOT...         prints the pids of the trees under ROOTs

Each RESULTS_DIR/NN-name/ holds meta.json, hyperfine.json, scan.json,
grouper.json, rss.json (peak RSS in KiB per tool) and walk.txt;
RESULTS_DIR/cost.json what one kcmp call costs here (bench/kcmp-cost.c).
"""
import json
import math
import os
import sys

TOOLS = ["bare walk", "kcmp scan", "lsof", "grouper"]


def tree_pids(roots):
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    out, stack = set(), list(roots)
    while stack:
        p = stack.pop()
        if p in out:
            continue
        out.add(p)
        stack.extend(kids.get(p, []))
    return sorted(out)


def load(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def timing(hf, name):
    for r in hf.get("results", []) if hf else []:
        if r["command"] == name:
            return r
    return None


def ms(r):
    if r is None:
        return "–"
    return f"{r['median'] * 1e3:.1f} ms ({r['min'] * 1e3:.0f}–{r['max'] * 1e3:.0f})"


def ratio(a, b):
    if a is None or b is None or b["median"] == 0:
        return "–"
    return f"{a['median'] / b['median']:.2f}×"


def kib(v):
    return "–" if v is None else f"{v / 1024:.1f} MiB"


def workload(d):
    w = {
        "meta": load(os.path.join(d, "meta.json"), {}),
        "hf": load(os.path.join(d, "hyperfine.json"), {}),
        "scan": load(os.path.join(d, "scan.json"), {}),
        "grouper": load(os.path.join(d, "grouper.json"), {}),
        "rss": load(os.path.join(d, "rss.json"), {}),
    }
    w["t"] = {name: timing(w["hf"], name) for name in TOOLS}
    return w


def check(w):
    """Compares the grouper's and the scan's counts with the fixture's truth."""
    truth = w["meta"].get("truth")
    g, s = w["grouper"], w["scan"]
    if not truth:
        return "–"
    bad = []
    if g.get("fds") != truth["fds"] or g.get("descriptions") != truth["descriptions"]:
        bad.append(f"grouper {g.get('fds')}/{g.get('descriptions')}")
    if s.get("fds") != truth["fds"]:
        bad.append(f"scan fds {s.get('fds')}")
    return "ok" if not bad else "MISMATCH " + ", ".join(bad) + f" vs {truth['fds']}/{truth['descriptions']}"


def main_table(ws):
    print("| workload | tasks | fds | bare walk | kcmp scan | scan / walk | lsof | lsof / scan "
          "| CRIU-style grouper | peak RSS: scan / walk / lsof / grouper | truth |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for w in ws:
        t, r, s = w["t"], w["rss"], w["scan"]
        rss = " / ".join(kib(r.get(k)) for k in ["scan", "walk", "lsof", "grouper"])
        print(f"| {w['meta']['label']} | {s.get('tasks', '–')} | {s.get('fds', '–')} "
              f"| {ms(t['bare walk'])} | {ms(t['kcmp scan'])} | {ratio(t['kcmp scan'], t['bare walk'])} "
              f"| {ms(t['lsof'])} | {ratio(t['lsof'], t['kcmp scan'])} | {ms(t['grouper'])} | {rss} "
              f"| {check(w)} |")


def calls_table(ws):
    print("| workload | buckets | descriptions | information bound | grouper kcmp calls "
          "| scan kcmp calls | scan by phase | scan / grouper | scan calls per fd "
          "| copies taken (per description) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for w in ws:
        g, s = w["grouper"], w["scan"]
        st = s.get("stats", {})
        calls = st.get("kcmp_calls")
        phases = st.get("kcmp_calls_by_phase")
        by = ", ".join(f"{k} {v}" for k, v in phases.items()) if phases else "not reported"
        gc = g.get("kcmp_calls")
        # The goal compares the open-file grouping with the grouper: the files
        # phase when the scan reports it, its total otherwise.
        files = phases.get("files") if phases else None
        mine = files if files is not None else calls
        rel = f"{mine / gc:.2f}×" if mine is not None and gc else "–"
        if files is not None and rel != "–":
            rel += " (files)"
        per = f"{calls / s['fds']:.2f}" if calls is not None and s.get("fds") else "–"
        copies = st.get("copies_taken")
        desc = g.get("descriptions")
        taken = "not reported" if copies is None else str(copies)
        if copies is not None and desc:
            taken += f" ({copies / desc:.2f})"
        bound = f"{g.get('bound', '–')}"
        if "bound_no_sockets" in g:
            bound += f" ({g['bound_no_sockets']} without sockets)"
        print(f"| {w['meta']['label']} | {g.get('buckets', '–')} | {g.get('descriptions', '–')} "
              f"| {bound} | {gc if gc is not None else '–'} | {calls if calls is not None else '–'} "
              f"| {by} | {rel} | {per} | {taken} |")


def phase_table(ws):
    print("| workload | scan elapsed (one run) | process kinds | epoll | kinds + epoll share | all phases (ms) |")
    print("|---|---|---|---|---|---|")
    for w in ws:
        st = w["scan"].get("stats", {})
        ph = st.get("phase_ms", {})
        el = st.get("elapsed_ms")
        if not el:
            continue
        kinds = sum(v for k, v in ph.items() if "kind" in k)
        epoll = sum(v for k, v in ph.items() if "epoll" in k)
        allp = ", ".join(f"{k} {v:.1f}" for k, v in ph.items())
        print(f"| {w['meta']['label']} | {el:.1f} ms | {kinds:.1f} ms ({kinds / el:.0%}) "
              f"| {epoll:.1f} ms ({epoll / el:.0%}) | {(kinds + epoll) / el:.0%} | {allp} |")


def series_table(ws, series, cost=None):
    rows = [w for w in ws if w["meta"].get("series") == series]
    if not rows:
        return
    print(f"\nScaling by {series}:\n")
    print("| workload | tasks | fds | bare walk | kcmp scan | scan / walk | scan µs per fd "
          "| floor µs per fd | scan kcmp calls per fd | grouper | scan peak RSS |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for w in rows:
        t, s = w["t"], w["scan"]
        fds = s.get("fds") or 0
        us = f"{t['kcmp scan']['median'] * 1e6 / fds:.2f}" if t["kcmp scan"] and fds else "–"
        calls = s.get("stats", {}).get("kcmp_calls")
        per = f"{calls / fds:.2f}" if calls is not None and fds else "–"
        floor = floor_ms(w, cost, os.cpu_count() or 1)
        floor_us = f"{floor * 1e3 / fds:.2f}" if floor is not None and fds else "–"
        print(f"| {w['meta']['label']} | {s.get('tasks', '–')} | {fds} | {ms(t['bare walk'])} "
              f"| {ms(t['kcmp scan'])} | {ratio(t['kcmp scan'], t['bare walk'])} | {us} | {floor_us} | {per} "
              f"| {ms(t['grouper'])} | {kib(w['rss'].get('scan'))} |")


def kinds_bound(scan):
    """The information bound of the address-space, fd-table and fs groupings
    (the kinds every exact map must tell apart; sighand follows the address
    space), over the processes that hold an fd: per kind, log2(D!) + (M − D)
    for M processes in D groups (kcmp orders them: telling all apart needs
    their order)."""
    pids = {m["pid"] for d in scan.get("open_files", []) for m in d.get("members", [])}
    total = 0.0
    for kind in ("vm", "files", "fs"):
        merged = 0
        for group in scan.get("shared", {}).get(kind, []):
            members = group.get("members", group) if isinstance(group, dict) else group
            inside = {m["pid"] if isinstance(m, dict) else m for m in members} & pids
            merged += max(len(inside) - 1, 0)
        distinct = len(pids) - merged
        total += math.lgamma(distinct + 1) / math.log(2) + merged
    return int(total)


def floor_ms(w, cost, cores):
    """See floor_table; None without the walk's time or the grouper's bound."""
    walk, bound = w["t"]["bare walk"], w["grouper"].get("bound_no_sockets")
    if not walk or bound is None or not cost:
        return None
    calls_ns = bound * cost["one_thread_ns"] + kinds_bound(w["scan"]) * cost.get("vm_one_thread_ns", 0)
    return ((walk["user"] + walk["system"]) * 1e3 + calls_ns / 1e6) / cores


def floor_table(ws, cost, cores):
    """The least time any exact tool could take on each workload: list every
    fd as the bare walk does (its CPU time), plus the information bounds of
    the open-file grouping (sockets left out) and of the process kinds, each
    comparison at one uncontended kcmp's cost, all of it spread perfectly
    over every core. The epoll section is left out: a floor, not an
    estimate."""
    print("| workload | walk CPU | bound: files (no sockets) + kinds | floor | ≤ 1.5× walk: target | "
          "≥ 4× lsof: target | kcmp scan | scan / floor | reachable by the floor |")
    print("|---|---|---|---|---|---|---|---|---|")
    for w in ws:
        t, g = w["t"], w["grouper"]
        walk, scan, lsof = t["bare walk"], t["kcmp scan"], t["lsof"]
        bound = g.get("bound_no_sockets")
        if not walk or not scan or bound is None:
            continue
        kinds = kinds_bound(w["scan"])
        walk_cpu = (walk["user"] + walk["system"]) * 1e3
        floor = floor_ms(w, cost, cores)
        walk_target = 1.5 * walk["median"] * 1e3
        lsof_target = lsof["median"] * 1e3 / 4 if lsof else None
        verdict = ["1.5× walk: " + ("yes" if floor <= walk_target else "**no**")]
        if lsof_target is not None:
            verdict.append("4× lsof: " + ("yes" if floor <= lsof_target else "**no**"))
        lt = f"{lsof_target:.1f} ms" if lsof_target is not None else "–"
        print(f"| {w['meta']['label']} | {walk_cpu:.1f} ms | {bound} + {kinds} | {floor:.1f} ms "
              f"| {walk_target:.1f} ms | {lt} | {scan['median'] * 1e3:.1f} ms "
              f"| {scan['median'] * 1e3 / floor:.2f}× | {', '.join(verdict)} |")


def report(results):
    dirs = sorted(os.path.join(results, d) for d in os.listdir(results)
                  if os.path.isfile(os.path.join(results, d, "meta.json")))
    ws = [workload(d) for d in dirs]
    main = [w for w in ws if not w["meta"].get("series")]
    print("Times: median of the runs (min–max). Peak RSS: one run each (`/usr/bin/time -f %M`).\n")
    main_table(main)
    print("\nkcmp calls (one run each; the information bound: per (dev, ino) bucket of M fds and D "
          "descriptions, log2(D!) + (M − D)):\n")
    calls_table(ws)
    print("\nWhere the scan's time goes (`stats.phase_ms` of the scan's own run):\n")
    phase_table(ws)
    cost = load(os.path.join(results, "cost.json"))
    if cost:
        cores = os.cpu_count() or 1
        print(f"\nFloors: one kcmp here costs {cost['one_thread_ns']:.0f} ns on one thread, "
              f"{cost['per_thread_ns']:.0f} ns per thread with {cost['threads']} comparing at once, "
              f"KCMP_VM {cost.get('vm_one_thread_ns', 0):.0f} ns (`bench/kcmp-cost.c`); floor = "
              f"(walk CPU + files bound × KCMP_FILE + kinds bound × KCMP_VM) / {cores} cores, "
              f"epoll left out:\n")
        floor_table(main, cost, cores)
    series_table(ws, "fds", cost)
    series_table(ws, "processes", cost)


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--pids":
        print(" ".join(map(str, tree_pids(int(p) for p in sys.argv[2:]))))
    elif len(sys.argv) == 2:
        report(sys.argv[1])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
