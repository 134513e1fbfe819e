#!/bin/bash
# `make demo`: crash a few example programs for real and show what bt sees in their
# cores. Needs root (core_pattern is pointed at a scratch directory and restored).
# Env: BT (the bt binary), OUT (where the examples were built).
set -euo pipefail
BT=${BT:?BT must point at the bt binary}
OUT=${OUT:?OUT must point at the built examples}
HERE=$(cd "$(dirname "$0")" && pwd)
CORES=$(mktemp -d /tmp/bt-demo-cores.XXXXXX)
chmod 777 "$CORES"

if [ "$(id -u)" != 0 ]; then
  echo "make demo writes /proc/sys/kernel/core_pattern and must run as root" >&2
  exit 1
fi
PREVIOUS=$(cat /proc/sys/kernel/core_pattern)
restore() { printf '%s\n' "$PREVIOUS" > /proc/sys/kernel/core_pattern; }
trap restore EXIT INT TERM
echo "$CORES/core.%p" > /proc/sys/kernel/core_pattern
ulimit -c unlimited

banner() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

for name in c_null c_sighandler cpp_templates rust_panic c_threads; do
  line=$(grep -P "^$name\t" "$HERE/crashes.tsv")
  prog=$(cut -f2 <<<"$line"); args=$(cut -f3 <<<"$line"); what=$(cut -f5 <<<"$line")
  [ "$args" = - ] && args=
  banner "$name: $what"
  echo "\$ $OUT/$prog $args"
  set +e
  # The group's 2>/dev/null keeps the shell's own "Segmentation fault" line out.
  { (cd "$OUT" && exec "./$prog" $args >/dev/null 2>&1); status=$?; } 2>/dev/null
  set -e
  core=$(ls -t "$CORES"/core.* 2>/dev/null | head -1 || true)
  if [ -z "$core" ]; then echo "(no core written, exit status $status)"; continue; fi
  mv "$core" "$CORES/$name.core"
  echo "exit status $status; the kernel wrote $CORES/$name.core ($(du -h "$CORES/$name.core" | cut -f1))"
  echo "\$ bt ptrace --core $CORES/$name.core $OUT/$prog"
  "$BT" ptrace --core "$CORES/$name.core" "$OUT/$prog" || echo "(bt failed: exit $?)"
done

banner "a saved snapshot, printed again without the core"
echo "\$ bt ptrace -o $CORES/c_null.btsnap --core $CORES/c_null.core $OUT/c_null"
"$BT" ptrace -o "$CORES/c_null.btsnap" --core "$CORES/c_null.core" "$OUT/c_null" || true
echo "snapshot $(du -h "$CORES/c_null.btsnap" 2>/dev/null | cut -f1) vs core $(du -h "$CORES/c_null.core" | cut -f1)"
echo "\$ bt ptrace --snapshot $CORES/c_null.btsnap"
"$BT" ptrace --snapshot "$CORES/c_null.btsnap" || true

banner "a live process: bt ptrace PID (the process keeps running)"
"$OUT/c_threads" forever > "$CORES/live.out" &
pid=$!
for _ in $(seq 50); do grep -q ready "$CORES/live.out" 2>/dev/null && break; sleep 0.1; done
sleep 0.3
echo "\$ bt ptrace $pid"
"$BT" ptrace "$pid" || echo "(bt failed: exit $?)"
echo "state after bt: $(awk '{print $3}' /proc/$pid/stat) (S = sleeping, running normally)"
kill "$pid"; wait "$pid" 2>/dev/null || true

banner "done: cores and snapshots are in $CORES; core_pattern restored"
