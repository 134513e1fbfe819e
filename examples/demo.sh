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

banner "the whole platform: crashes through coresnap into bt serve, grouped"
CS=$(mktemp -d /tmp/btcs-demo.XXXXXX)   # short: the config path goes into core_pattern
"$BT" coroner --data "$CS/data" project create demo >/dev/null
CS_TOKEN=$("$BT" coroner --data "$CS/data" token create demo --scope submit --scope query)
CS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'archive.path = %s\nserver.url = http://127.0.0.1:%s\ntoken.demo = %s\nformat.1 = demo\ndump.quota = 0%%\n' \
  "$CS/arch" "$CS_PORT" "$CS_TOKEN" > "$CS/coresnap.conf"
echo "\$ bt serve --data $CS/data --listen 127.0.0.1:$CS_PORT &"
"$BT" serve --data "$CS/data" --listen "127.0.0.1:$CS_PORT" > "$CS/serve.out" 2> "$CS/serve.log" & CS_SERVE=$!
for _ in $(seq 100); do grep -q listening "$CS/serve.out" 2>/dev/null && break; sleep 0.05; done
echo "\$ bt coresnap install --config $CS/coresnap.conf"
"$BT" coresnap install --force --config "$CS/coresnap.conf"
echo "(crashing: c_null twice, c_sighandler, cpp_templates, rust_panic, rust_null, c_threads)"
for name in c_null c_null c_sighandler cpp_templates rust_panic rust_null c_threads; do
  line=$(grep -P "^$name\t" "$HERE/crashes.tsv"); prog=$(cut -f2 <<<"$line"); args=$(cut -f3 <<<"$line")
  [ "$args" = - ] && args=
  { (cd "$OUT" && exec "./$prog" $args >/dev/null 2>&1); } 2>/dev/null || true
done
sleep 0.2
"$BT" coresnap uninstall --config "$CS/coresnap.conf" >/dev/null
echo "\$ bt coresnap daemon --once"
"$BT" coresnap daemon --once --config "$CS/coresnap.conf" 2>&1 | grep -E 'traced|sent to|failed|waiting' || true
echo "\$ bt coresnap list"
"$BT" coresnap list --config "$CS/coresnap.conf" || true
kill "$CS_SERVE" 2>/dev/null || true; wait "$CS_SERVE" 2>/dev/null || true
echo "\$ bt morgue list demo --data $CS/data        # the embedded store, no server needed"
"$BT" morgue list demo --data "$CS/data" || echo "(morgue failed: exit $?)"

banner "hydra: the terminal viewer of one snapshot"
OBJ=$("$BT" morgue list demo --data "$CS/data" --select object --limit 1 --json 2>/dev/null \
      | grep -oE '"object" *: *"[0-9a-f]+"' | head -1 | grep -oE '[0-9a-f]+"$' | tr -d '"' || true)
echo "\$ bt hydra $CORES/c_null.btsnap --screen 120x30      # the screen as text; without --screen it is interactive"
"$BT" hydra "$CORES/c_null.btsnap" --screen 120x30 || echo "(hydra failed: exit $?)"
echo
echo "Open them yourself (q quits, ? lists the keys):"
echo "  $BT hydra $CORES/c_null.btsnap"
[ -n "$OBJ" ] && echo "  $BT hydra demo $OBJ --data $CS/data        # a crash collected into the store"
echo "  $BT hydra --core $CORES/c_threads.core $OUT/c_threads"

banner "the web console: the same crashes in a browser"
printf 'demo-password\n' | "$BT" coroner --data "$CS/data" user add demo --admin >/dev/null 2>&1 || true
echo "\$ bt coroner --data $CS/data user add demo --admin      # (password: demo-password)"
echo "Serve them and open the console (overview, triage, group details, the debugger):"
echo "  $BT serve --data $CS/data --listen 127.0.0.1:6097"
echo "  then open http://127.0.0.1:6097/ and log in as demo / demo-password"
[ -n "$OBJ" ] && echo "  the debugger of one crash: http://127.0.0.1:6097/p/demo/o/$OBJ"

banner "done: cores and snapshots are in $CORES; core_pattern restored"
