#!/usr/bin/env bash
# Compares `kcmp scan --tree ROOT --json` with a bare walk of the same
# processes (list /proc/PID/fd + readlink every entry, single-threaded) and
# with `lsof -n -P -p PIDS`, on a generated topology of PROCS x FDS.
#
#   bench/scan-vs-walk.sh [PROCS] [FDS] [RUNS]     (default 500 100 10)
#   LSOF=0 bench/scan-vs-walk.sh ...                (leave lsof out: it is slow)
#
# Needs root or the same user as the topology. lsof exits 1 when a listed pid
# is a zombie (the topology has some), so failures are ignored (-i). Installs hyperfine, lsof and
# GNU time from Debian's packages when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
procs=${1:-500}
fds=${2:-100}
runs=${3:-10}

missing=()
command -v hyperfine >/dev/null || missing+=(hyperfine)
command -v lsof >/dev/null || missing+=(lsof)
[ -x /usr/bin/time ] || missing+=(time)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cargo build --release --quiet -p kcmp-cli -p kcmp-testkit
cargo build --release --quiet -p kcmp-map --example bare_walk
bin=target/release

fifo=$(mktemp -u /tmp/kcmp-bench.XXXXXX)
mkfifo "$fifo"
out=$(mktemp /tmp/kcmp-bench-truth.XXXXXX)
"$bin/kcmp-topology" bench --procs "$procs" --fds "$fds" <"$fifo" >"$out" &
fixture=$!
exec 9>"$fifo"            # hold the fixture's stdin open until we are done
cleanup() { exec 9>&-; wait "$fixture" 2>/dev/null || true; rm -f "$fifo" "$out"; }
trap cleanup EXIT
for _ in $(seq 600); do [ -s "$out" ] && break; sleep 0.1; done
root=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["root"])' "$out")
pids=$(python3 - "$root" <<'PY'
import os, sys
root = int(sys.argv[1])
kids = {}
for d in os.listdir("/proc"):
    if d.isdigit():
        try:
            ppid = int(open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        kids.setdefault(ppid, []).append(int(d))
out, stack = [], [root]
while stack:
    p = stack.pop(); out.append(p); stack.extend(kids.get(p, []))
print(" ".join(map(str, sorted(out))))
PY
)
csv=$(echo "$pids" | tr ' ' ',')
ntasks=$(echo "$pids" | wc -w)
echo "topology: root $root, $ntasks processes, $("$bin/examples/bare_walk" $pids)"
"$bin/kcmp" scan --tree "$root" --json >/tmp/kcmp-bench-scan.json
python3 - <<'PY'
import json
d = json.load(open("/tmp/kcmp-bench-scan.json"))
s = d["stats"]
print(f'scan: {d["tasks"]} tasks, {d["fds"]} fds, {s["kcmp_calls"]} kcmp calls = {s["kcmp_calls"]/max(d["fds"],1):.3f} per fd, skipped {len(d["skipped"])}')
PY
/usr/bin/time -f "peak RSS of kcmp scan: %M KiB" "$bin/kcmp" scan --tree "$root" --json >/dev/null
extra=()
if [ "${LSOF:-1}" != 0 ]; then
  extra=(-n "lsof -n -P -p PIDS" "lsof -n -P -p $csv")
fi
hyperfine --style basic --warmup 2 --runs "$runs" -N --ignore-failure \
  --export-markdown /tmp/kcmp-bench.md \
  -n "kcmp scan --tree --json" "$bin/kcmp scan --tree $root --json" \
  -n "bare walk (1 thread)" "$bin/examples/bare_walk $pids" \
  "${extra[@]}"
cat /tmp/kcmp-bench.md
