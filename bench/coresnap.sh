#!/bin/bash
# coresnap figures: (1) the pipe handler's peak RSS while a multi-GB core streams
# through it; (2) time from a crash (through the real kernel pipe) to a queryable
# object in a `bt serve` on loopback, over several runs. Needs root, gcc, curl.
# Env: BT (the bt binary; default target/release/bt), OUT (scratch; default /tmp),
#      BENCH_CORE_GB (size of the synthetic core, default 4), BENCH_RUNS (default 10).
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
BT=${BT:-$HERE/target/release/bt}
GB=${BENCH_CORE_GB:-4}
RUNS=${BENCH_RUNS:-10}
[ "$(id -u)" = 0 ] || { echo "bench/coresnap.sh installs a core_pattern handler and must run as root" >&2; exit 1; }
# Short paths: the config path goes into core_pattern (127 bytes at most).
W=$(mktemp -d /tmp/btcs-bench.XXXXXX)
PIDS=()
LOCK=/tmp/bt-tests-core_pattern.lock
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -f "$W/arch/install.state" ]; then "$BT" coresnap uninstall --config "$W/c.conf" >/dev/null || true; fi
  rm -rf "$W"
}
trap cleanup EXIT INT TERM

mkdir -p "$W/data"
"$BT" coroner --data "$W/data" project create bench >/dev/null 2>&1
TOKEN=$("$BT" coroner --data "$W/data" token create bench --scope submit --scope query 2>/dev/null)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$W/c.conf" <<CONF
archive.path = $W/arch
server.url = http://127.0.0.1:$PORT
token.bench = $TOKEN
format.1 = bench
dump.quota = 0%
CONF

echo "== handler peak RSS while a ${GB} GiB core streams through stdin"
sleep 60 & SLEEPER=$!; PIDS+=($SLEEPER)
# Non-zero bytes, so every byte is really written (zero pages would become holes).
START=$(date +%s.%N)
set +o pipefail   # yes(1) ends on SIGPIPE
yes 'coresnap-bench-core-bytes' | head -c "${GB}G" | \
  /usr/bin/time -f '%M' -o "$W/rss" "$BT" coresnap ingest --config "$W/c.conf" \
    "$SLEEPER" "$SLEEPER" 0 0 11 "$(date +%s)" "$(hostname)" '!usr!bin!sleep'
END=$(date +%s.%N)
set -o pipefail
BYTES=$(python3 -c "import json,glob; print(json.load(open(glob.glob('$W/arch/pending/*/meta.json')[0]))['core_bytes'])")
printf 'streamed %s bytes in %.1f s (%.0f MB/s); handler peak RSS %s KiB\n' "$BYTES" \
  "$(echo "$END - $START" | bc)" "$(echo "$BYTES / ($END - $START) / 1000000" | bc -l)" "$(cat "$W/rss")"
rm -rf "$W/arch"

echo "== crash -> queryable object (through the kernel pipe, daemon running, $RUNS runs)"
printf '#include <stdlib.h>\nvoid poke(int *p) { *p = 1; }\nint main(void) { poke(0); return 0; }\n' > "$W/crash.c"
gcc -g -O0 -o "$W/crash" "$W/crash.c"
"$BT" serve --data "$W/data" --listen "127.0.0.1:$PORT" > "$W/serve.out" 2> "$W/serve.log" & PIDS+=($!)
for _ in $(seq 100); do grep -q listening "$W/serve.out" 2>/dev/null && break; sleep 0.05; done
"$BT" coresnap daemon --config "$W/c.conf" 2> "$W/daemon.log" & PIDS+=($!)
count() {
  curl -s -X POST -H 'Content-Type: application/json' --data '{"limit":1}' \
    "http://127.0.0.1:$PORT/api/query?token=$TOKEN&project=bench" | grep -o '"objects":[0-9]*' | cut -d: -f2
}
exec 9> "$LOCK"
flock 9   # the tests' core_pattern lock: no test changes core_pattern meanwhile
"$BT" coresnap install --force --config "$W/c.conf" > /dev/null
ulimit -c unlimited
TIMES=()
for i in $(seq "$RUNS"); do
  S=$(date +%s%N)
  { "$W/crash"; } 2>/dev/null || true
  while [ "$(count)" -lt "$i" ]; do sleep 0.01; done
  E=$(date +%s%N)
  TIMES+=($(( (E - S) / 1000000 )))
done
"$BT" coresnap uninstall --config "$W/c.conf" > /dev/null
flock -u 9
SORTED=$(printf '%s\n' "${TIMES[@]}" | sort -n)
echo "runs (ms): ${TIMES[*]}"
echo "median $(echo "$SORTED" | sed -n "$(( (RUNS + 1) / 2 ))p") ms, max $(echo "$SORTED" | tail -1) ms (goal: under 1000 ms)"
grep -E 'traced in|sent to' "$W/daemon.log" | tail -2
