#!/usr/bin/env bash
# Two kcmp builds side by side on the suite's synthetic shapes: with every
# copy's mount checked (KCMP_CHECK_EVERY_COPY=1, as on a host with FUSE or a
# network filesystem; builds before it ignore it and check where fusectl is
# not mounted), with fusectl not mounted (builds since 87a4f5c count FUSE
# connections on a detached fusectl of their own), and with fusectl mounted
# (in a private mount namespace, `unshare -m`: the host's mounts are
# untouched). On the 5,000-process shape, also one of its processes alone
# (`--tree` and `--pid` of a leaf among 5,000 others), fusectl not mounted.
# Prints a markdown table.
#
#   bench/side-by-side.sh OLD_KCMP NEW_KCMP [RUNS]
#
# OLD_KCMP and NEW_KCMP are paths of `kcmp` binaries (e.g. a release build
# of an older commit in a git worktree). Must run as root (the namespace,
# fusectl). Uses this tree's release kcmp-topology (built if missing) and
# hyperfine.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = --measure ]; then # internal: NAME MODE OLD NEW SELECTION RUNS [mount]
  shift
  name=$1 mode=$2 old=$3 new=$4 selection=$5 runs=$6
  [ "${7:-}" = mount ] && mount -t fusectl none /sys/fs/fuse/connections
  json=$(mktemp /tmp/kcmp-side-by-side.XXXXXX.json)
  hyperfine -N -w 1 -r "$runs" --export-json "$json" \
    "$old scan --json $selection" "$new scan --json $selection" >/dev/null 2>&1
  python3 - "$json" "$name" "$mode" <<'EOF'
import json, statistics, sys
r = json.load(open(sys.argv[1]))["results"]
ms = [[t * 1000 for t in x["times"]] for x in r]
m = [statistics.median(t) for t in ms]
cell = lambda i: f"{m[i]:.0f} ms ({min(ms[i]):.0f}–{max(ms[i]):.0f})"
print(f"| {sys.argv[2]} | {sys.argv[3]} | {cell(0)} | {cell(1)} | {m[0] / m[1]:.2f}× |")
EOF
  rm -f "$json"
  exit 0
fi

OLD=${1:?usage: bench/side-by-side.sh OLD_KCMP NEW_KCMP [RUNS]}
NEW=${2:?usage: bench/side-by-side.sh OLD_KCMP NEW_KCMP [RUNS]}
RUNS=${3:-6}
[ "$(id -u)" = 0 ] || { echo "side-by-side: must run as root" >&2; exit 2; }
cargo build --release --quiet -p kcmp-testkit
TOPO=${CARGO_TARGET_DIR:-$PWD/target}/release/kcmp-topology
ulimit -n "$(ulimit -Hn)"

FIX_PID= FIX_FD= LEAVES=
stop_fixture() {
  [ -n "$FIX_FD" ] && exec {FIX_FD}>&- && FIX_FD=
  [ -n "$FIX_PID" ] && { wait "$FIX_PID" 2>/dev/null || true; FIX_PID=; }
  return 0
}
trap stop_fixture EXIT

shape() { # NAME ARGS of kcmp-topology
  local name=$1 fifo truth
  shift
  fifo=$(mktemp -u /tmp/kcmp-side-by-side-fifo.XXXXXX)
  truth=$(mktemp /tmp/kcmp-side-by-side-truth.XXXXXX)
  mkfifo "$fifo"
  "$TOPO" "$@" <"$fifo" >"$truth" 2>/dev/null &
  FIX_PID=$!
  exec {FIX_FD}>"$fifo"
  rm -f "$fifo"
  for _ in $(seq 600); do [ -s "$truth" ] && break; sleep 0.1; done
  local root
  root=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['root'])" "$truth")
  rm -f "$truth"
  KCMP_CHECK_EVERY_COPY=1 "$0" --measure "$name" "not mounted, every copy checked" \
    "$OLD" "$NEW" "--tree $root" "$RUNS"
  "$0" --measure "$name" "not mounted (new: its own detached fusectl)" \
    "$OLD" "$NEW" "--tree $root" "$RUNS"
  /usr/bin/unshare -m --propagation private "$0" --measure "$name" \
    "mounted, no FUSE connection" "$OLD" "$NEW" "--tree $root" "$RUNS" mount
  if [ -n "$LEAVES" ]; then # one process of the shape among all the others
    local leaf
    leaf=$(cut -d' ' -f1 "/proc/$root/task/$root/children")
    "$0" --measure "$name: one of its processes, --tree" "not mounted" \
      "$OLD" "$NEW" "--tree $leaf" "$RUNS"
    "$0" --measure "$name: one of its processes, --pid" "not mounted" \
      "$OLD" "$NEW" "--pid $leaf" "$RUNS"
  fi
  stop_fixture
}

echo "| workload | fusectl | old median (min–max) | new median (min–max) | old / new |"
echo "|---|---|---|---|---|"
shape "topo-bench 500 × 100" bench --procs 500 --fds 100
shape "reuse 500 × 100" shape --procs 500 --fds 100 --inherit 80 --reuse 100 --opens 10 --depth 3
shape "opens 200 × 100" shape --procs 200 --fds 100 --inherit 20 --opens 60
shape "wide 4 × 15k" shape --procs 4 --fds 15000
LEAVES=1 shape "many 5,000 × 10" shape --procs 5000 --fds 10
