#!/usr/bin/env bash
# The benchmark suite of issue 11: for each workload, side by side in one
# run, the bare walk (one thread: list /proc/PID/fd, readlink every entry),
# `kcmp scan --json` (release build), `lsof -n -P` and the CRIU-style
# grouper (bench/grouper.c). Prints markdown tables ready for BENCHMARKS.md,
# with each workload's floor: the least time an exact tool could take there
# (the walk's work and the information bound's comparisons at the cost
# bench/kcmp-cost.c measures, over every core).
#
#   bench/run-suite.sh [--quick] [--runs N] [--only NAME,NAME] [--no-series] [--check-every-copy] [--out DIR]
#
#   --quick       3 runs per tool (default 7) and a shorter scaling series
#   --only        run only these workloads: host-small, topo-bench, reuse, opens,
#                 wide, many, servers, host, series-fds, series-procs
#   --no-series   leave out both scaling series
#   --check-every-copy  run kcmp as on a host with a FUSE or network
#                 filesystem: every copy's mount checked
#                 (KCMP_CHECK_EVERY_COPY=1). By default kcmp counts FUSE
#                 connections on fusectl (mounted by systemd, or its own
#                 mount attached nowhere) and, with none, skips those checks.
#                 (--no-fusectl is the old name.)
#   --out DIR     keep the raw results there (default: a temporary directory)
#
# Must run as root (it installs Debian packages, starts servers as their own
# users, raises RLIMIT_NOFILE). Installs what is missing (apt-get update once;
# lsof, hyperfine, GNU time, postgresql, nginx, apache2, gcc) with a
# policy-rc.d that exits 101, so no package starts its service. Every server
# listens on 127.0.0.1 only, with its own port and data directory, and is
# stopped and removed on exit, as is every fixture (trap on EXIT).
set -eEuo pipefail
cd "$(dirname "$0")/.."
ROOT_DIR=$PWD
ARGS_GIVEN="$*"

QUICK=0 RUNS= ONLY= SERIES=1 OUT= CHECK_EVERY_COPY=
while [ $# -gt 0 ]; do
  case $1 in
  --quick) QUICK=1 ;;
  --runs) RUNS=${2:?--runs needs a number}; shift ;;
  --only) ONLY=${2:?--only needs workload names}; shift ;;
  --no-series) SERIES=0 ;;
  --check-every-copy | --no-fusectl) CHECK_EVERY_COPY=1 ;;
  --out) OUT=${2:?--out needs a directory}; shift ;;
  -h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "run-suite: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ -z $RUNS || $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "run-suite: --runs $RUNS: not a positive number" >&2; exit 2; }
RUNS=${RUNS:-$([ $QUICK = 1 ] && echo 3 || echo 7)}
[ "$(id -u)" = 0 ] || { echo "run-suite: must run as root (installs packages, starts servers)" >&2; exit 2; }

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
want() { [ -z "$ONLY" ] || [[ ",$ONLY," == *",$1,"* ]]; }

# --- cleanup ---------------------------------------------------------------
POLICY=/usr/sbin/policy-rc.d
POLICY_SAVED= POLICY_OURS=
FIX_PID= FIX_FD= WL_PID=
PID_MAX_SAVED=
source bench/servers.sh
cleanup() {
  set +e
  trap - ERR
  if [ -n "$WL_PID" ]; then kill -TERM "$WL_PID" 2>/dev/null; wait "$WL_PID"; fi
  stop_fixture
  stop_servers
  if [ -n "$POLICY_SAVED" ]; then mv -f "$POLICY_SAVED" "$POLICY"; POLICY_SAVED=;
  elif [ -n "$POLICY_OURS" ]; then rm -f "$POLICY"; fi
  if [ -n "$PID_MAX_SAVED" ]; then echo "$PID_MAX_SAVED" >/proc/sys/kernel/pid_max; fi
  [ -n "${TMP_OUT:-}" ] && rm -rf "$TMP_OUT"
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'log "failed (exit $?) at line $LINENO: $BASH_COMMAND"' ERR

# --- install ---------------------------------------------------------------
install_missing() {
  local need=()
  [ -x /usr/bin/lsof ] || need+=(lsof)
  [ -x /usr/bin/hyperfine ] || need+=(hyperfine)
  [ -x /usr/bin/time ] || need+=(time)
  [ -x /usr/sbin/nginx ] || need+=(nginx)
  [ -x /usr/sbin/apache2 ] || need+=(apache2)
  compgen -G '/usr/lib/postgresql/*/bin/pgbench' >/dev/null || need+=(postgresql)
  [ -x /usr/bin/python3 ] || need+=(python3)
  [ -x /usr/bin/cc ] || need+=(gcc libc6-dev)
  [ ${#need[@]} = 0 ] && return 0
  log "installing ${need[*]}"
  # No package may start its service: policy-rc.d exits 101 during the install.
  if [ -e "$POLICY" ]; then POLICY_SAVED=$POLICY.kcmp-bench-saved; cp -p "$POLICY" "$POLICY_SAVED"; fi
  POLICY_OURS=1
  printf '#!/bin/sh\nexit 101\n' >"$POLICY"
  chmod 755 "$POLICY"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  if [ -n "$POLICY_SAVED" ]; then mv -f "$POLICY_SAVED" "$POLICY"; POLICY_SAVED=; else rm -f "$POLICY"; fi
  POLICY_OURS=
}
install_missing
PY=/usr/bin/python3

# How kcmp treats its copies: on a host without FUSE connections or network
# filesystem types it skips the per-copy mount checks (it counts FUSE
# connections on fusectl: systemd's mount, or its own attached nowhere);
# --check-every-copy makes it check every copy, as on a host with FUSE.
fusectl_state() {
  if grep -q ' /sys/fs/fuse/connections .* - fusectl ' /proc/self/mountinfo; then echo mounted
  elif grep -qw fusectl /proc/filesystems; then echo "not mounted (kcmp mounts its own, attached nowhere)"
  else echo "not in this kernel"; fi
}
FUSECTL_BEFORE=$(fusectl_state)
if [ -n "$CHECK_EVERY_COPY" ]; then export KCMP_CHECK_EVERY_COPY=1; fi

# --- build -----------------------------------------------------------------
log "building (release)"
cargo build --release --quiet -p kcmp-cli -p kcmp-testkit
cargo build --release --quiet -p kcmp-map --example bare_walk
BIN=${CARGO_TARGET_DIR:-$ROOT_DIR/target}/release
KCMP=$BIN/kcmp WALK=$BIN/examples/bare_walk TOPO=$BIN/kcmp-topology
GROUPER=$BIN/kcmp-grouper
/usr/bin/cc -O2 -Wall -o "$GROUPER" bench/grouper.c -lm
COST=$BIN/kcmp-cost
/usr/bin/cc -O2 -Wall -pthread -o "$COST" bench/kcmp-cost.c

# --- limits ----------------------------------------------------------------
# RLIMIT_NOFILE: the fixtures need more than 15k fds per process (a container
# may forbid raising the hard limit: then the soft one goes up to it).
ulimit -Hn 1048576 2>/dev/null || true
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -gt 15100 ] || log "RLIMIT_NOFILE $(ulimit -n): the 15k-fd workload will fail"
# 5,000 fixture processes next to the host's own: pid_max of at least 16384.
if [ "$(cat /proc/sys/kernel/pid_max)" -lt 16384 ]; then
  saved=$(cat /proc/sys/kernel/pid_max)
  if echo 16384 2>/dev/null >/proc/sys/kernel/pid_max; then PID_MAX_SAVED=$saved; else log "pid_max $saved could not be raised"; fi
fi

if [ -n "$OUT" ]; then mkdir -p "$OUT"; RESULTS=$(cd "$OUT" && pwd); else TMP_OUT=$(mktemp -d /tmp/kcmp-bench-results.XXXXXX); RESULTS=$TMP_OUT; fi
SEQ=0

# What one kcmp costs here, before any workload runs (the floors' unit).
log "kcmp call cost"
"$COST" 400000 "$(nproc)" >"$RESULTS/cost.json" || log "kcmp-cost failed: no floors"

# --- fixtures --------------------------------------------------------------
TRUTH=
start_fixture() { # ARGS of kcmp-topology
  local fifo
  fifo=$(mktemp -u /tmp/kcmp-bench-fifo.XXXXXX)
  mkfifo "$fifo"
  TRUTH=$RESULTS/truth.json
  : >"$TRUTH"
  "$TOPO" "$@" <"$fifo" >"$TRUTH" 2>"$RESULTS/fixture.log" &
  FIX_PID=$!
  exec {FIX_FD}>"$fifo" # holds the fixture's stdin open until stop_fixture
  rm -f "$fifo"
  local i
  for ((i = 0; i < 3000; i++)); do
    [ -s "$TRUTH" ] && return 0
    kill -0 "$FIX_PID" 2>/dev/null || break
    sleep 0.1
  done
  log "kcmp-topology $* did not start:"
  cat "$RESULTS/fixture.log" >&2
  return 1
}
stop_fixture() {
  [ -n "$FIX_FD" ] && exec {FIX_FD}>&- && FIX_FD=
  [ -n "$FIX_PID" ] && { wait "$FIX_PID" 2>/dev/null || true; FIX_PID=; }
  return 0
}
fixture_pids() {
  $PY -c 'import json,sys; d=json.load(open(sys.argv[1]))
print(" ".join(map(str, d["pids"])) if "pids" in d else d["root"])' "$TRUTH"
}
mem_ok() { # enough memory for $1 more processes (1 MiB each) plus 2 GiB?
  local avail
  avail=$(awk '/MemAvailable/ {print int($2 / 1024)}' /proc/meminfo)
  [ "$avail" -gt $(($1 + 2048)) ] || { log "skipped: ${avail} MiB available, want $(($1 + 2048))"; return 1; }
}

# --- measurement -----------------------------------------------------------
# Peak RSS in KiB of one run of a command (its exit status is not ours: lsof
# exits 1 when a listed pid is a zombie).
peak_rss() {
  /usr/bin/time -f %M -o "$RESULTS/rss.tmp" "$@" >/dev/null 2>&1 || true
  tail -1 "$RESULTS/rss.tmp"
}
# measure NAME LABEL SERIES LSOF(0/1) — tasks in PIDS, the scan's selection in
# SCAN_SEL (empty: the whole host), LSOF_SEL (empty: the whole host), TRUTH.
measure() {
  local name=$1 label=$2 series=$3 with_lsof=$4
  MSEQ=$((MSEQ + 1))
  local d
  d=$RESULTS/$(printf %02d-%d "$SEQ" "$MSEQ")-$name
  mkdir -p "$d"
  log "$name: $label ($(wc -w <<<"$PIDS") tasks)"
  # shellcheck disable=SC2086
  {
    "$KCMP" scan $SCAN_SEL --json >"$d/scan.json" || true
    "$GROUPER" $PIDS >"$d/grouper.json"
    "$WALK" $PIDS >"$d/walk.txt"
    local rss_walk rss_scan rss_grouper rss_lsof=null
    rss_walk=$(peak_rss "$WALK" $PIDS)
    rss_scan=$(peak_rss "$KCMP" scan $SCAN_SEL --json)
    rss_grouper=$(peak_rss "$GROUPER" $PIDS)
    local lsof_cmd=()
    if [ "$with_lsof" = 1 ]; then
      rss_lsof=$(peak_rss /usr/bin/lsof -n -P $LSOF_SEL)
      lsof_cmd=(-n lsof "/usr/bin/lsof -n -P $LSOF_SEL")
    fi
    echo "{\"walk\": $rss_walk, \"scan\": $rss_scan, \"grouper\": $rss_grouper, \"lsof\": $rss_lsof}" >"$d/rss.json"
    /usr/bin/hyperfine -N --style basic --warmup 1 --runs "$RUNS" --ignore-failure \
      --export-json "$d/hyperfine.json" \
      -n "bare walk" "$WALK $PIDS" \
      -n "kcmp scan" "$KCMP scan $SCAN_SEL --json" \
      -n grouper "$GROUPER $PIDS" \
      "${lsof_cmd[@]}" >"$d/hyperfine.log" 2>&1
  }
  local truth=null
  [ -n "$TRUTH" ] && [ -s "$TRUTH" ] && truth=$($PY -c 'import json,sys; d=json.load(open(sys.argv[1]))
print(json.dumps({"fds": d["fds"], "descriptions": d["descriptions"]}) if "descriptions" in d else "null")' "$TRUTH")
  $PY -c 'import json,sys; json.dump({"name": sys.argv[1], "label": sys.argv[2], "series": sys.argv[3] or None,
  "truth": json.loads(sys.argv[4]), "runs": int(sys.argv[5])}, open(sys.argv[6], "w"))' \
    "$name" "$label" "$series" "$truth" "$RUNS" "$d/meta.json"
  $PY - "$d" <<'PY' >&2
import json, sys
d = sys.argv[1]
hf = json.load(open(f"{d}/hyperfine.json"))
print("   " + ", ".join(f'{r["command"]} {r["median"]*1e3:.1f} ms' for r in hf["results"]))
PY
}

# A kcmp-topology workload: NAME LABEL SERIES LSOF ARGS...
topology() {
  local name=$1 label=$2 series=$3 with_lsof=$4
  shift 4
  start_fixture "$@" || return 1
  PIDS=$(fixture_pids)
  if [[ $(wc -w <<<"$PIDS") = 1 ]]; then PIDS=$($PY bench/report.py --pids "$PIDS"); fi
  local root
  root=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["root"])' "$TRUTH")
  SCAN_SEL="--tree $root"
  LSOF_SEL="-p $(tr ' ' ',' <<<"$PIDS")"
  measure "$name" "$label" "$series" "$with_lsof"
  stop_fixture
  TRUTH=
}

# Runs one workload in a subshell of its own with errexit on: a failure is
# logged, its fixture or servers are stopped, and the suite goes on.
workload() {
  SEQ=$((SEQ + 1))
  (
    MSEQ=0
    trap 'stop_fixture; stop_servers' EXIT
    trap 'exit 143' TERM INT
    "$@"
  ) &
  WL_PID=$!
  wait "$WL_PID" || log "workload failed: $*"
  WL_PID=
}

host_pids() { ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\n' ' '; }
whole_host() { # NAME LABEL
  PIDS=$(host_pids) SCAN_SEL= LSOF_SEL= TRUTH=
  measure "$1" "$2" "" 1
}

log "results in $RESULTS; $RUNS runs per tool"
want host-small && workload whole_host host-small "whole host before the workloads"
want topo-bench && workload topology topo-bench "kcmp-topology bench 500 × 100" "" 1 bench --procs 500 --fds 100
want reuse && workload topology reuse "shape 500 × 100, children reuse the parent's fd numbers (depth 3)" "" 1 \
  shape --procs 500 --fds 100 --inherit 80 --reuse 100 --opens 10 --depth 3
want opens && workload topology opens "shape 200 × 100, 60 separate open()s of one path each" "" 1 \
  shape --procs 200 --fds 100 --inherit 20 --opens 60
want wide && workload topology wide "shape 4 × 15k fds (and the root's 15k)" "" 1 shape --procs 4 --fds 15000
want many && mem_ok 5000 && workload topology many "shape 5,000 × 10 fds" "" 1 shape --procs 5000 --fds 10
servers_and_host() {
  start_servers
  if want servers; then
    PIDS=$($PY bench/report.py --pids "${SRV_ROOTS[@]}")
    SCAN_SEL=$(printf -- '--tree %s ' "${SRV_ROOTS[@]}")
    LSOF_SEL="-p $(tr ' ' ',' <<<"$PIDS")"
    TRUTH=
    measure servers "postgres + $PG_CLIENTS pgbench clients, nginx $NGINX_WORKERS workers, apache2 prefork $APACHE_CHILDREN children" "" 1
  fi
  if want host; then whole_host host "whole host with the servers running"; fi
  stop_servers
}
if want servers || want host; then workload servers_and_host; fi
if [ "$SERIES" = 1 ]; then
  if [ "$QUICK" = 1 ]; then fds_series=(50 500 2000); procs_series=("100 500" "1000 50" "5000 10"); else
    fds_series=(50 200 500 1000 2000); procs_series=("100 500" "500 100" "1000 50" "2000 25" "5000 10"); fi
  if want series-fds; then
    for p in "${fds_series[@]}"; do
      if mem_ok "$p"; then workload topology "fds-$((p * 100))" "shape $p × 100" fds 0 shape --procs "$p" --fds 100; fi
    done
  fi
  if want series-procs; then
    for pm in "${procs_series[@]}"; do
      read -r p m <<<"$pm"
      if mem_ok "$p"; then workload topology "procs-$p" "shape $p × $m" processes 0 shape --procs "$p" --fds "$m"; fi
    done
  fi
fi

log "done"
cat <<EOF

Command: bench/run-suite.sh $ARGS_GIVEN (runs per tool: $RUNS)
fusectl: $FUSECTL_BEFORE; copies: $([ -n "$CHECK_EVERY_COPY" ] && echo "every one checked (KCMP_CHECK_EVERY_COPY=1)" || echo "checked unless the host is server-free")
Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r), $(. /etc/os-release && echo "$PRETTY_NAME"), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)
Tools: $("$KCMP" --version 2>/dev/null || echo kcmp), $(/usr/bin/lsof -v 2>&1 | grep -m1 -o 'revision: [0-9.]*' || true), $(/usr/bin/hyperfine --version)

EOF
$PY bench/report.py "$RESULTS"
