#!/bin/sh
# Object store benchmarks (make bench-store): ingest rate over HTTP, then the
# queries on a store of BENCH_STORE_OBJECTS objects, and bytes per object.
# Needs BT (the bt binary under test) and OUT (scratch); BENCH_BIN is the
# store_bench example (built by the Makefile with the same profile and target).
set -eu
: "${BT:?set BT to the bt binary}"
: "${OUT:?set OUT to a scratch directory}"
: "${BENCH_BIN:?set BENCH_BIN to the store_bench example binary}"
N_INGEST="${BENCH_STORE_INGEST:-20000}"
N_OBJECTS="${BENCH_STORE_OBJECTS:-1000000}"
RUNS="${BENCH_RUNS:-21}"
mkdir -p "$OUT"
echo "== store: ingest ($N_INGEST snapshots over HTTP)"
"$BENCH_BIN" ingest "$BT" "$OUT/store-ingest" "$N_INGEST" 32
rm -rf "$OUT/store-ingest"
echo "== store: $N_OBJECTS objects"
if [ ! -f "$OUT/store-$N_OBJECTS/.complete" ]; then
  "$BENCH_BIN" load "$OUT/store-$N_OBJECTS" "$N_OBJECTS"
  touch "$OUT/store-$N_OBJECTS/.complete"
fi
"$BENCH_BIN" query "$BT" "$OUT/store-$N_OBJECTS" "$RUNS"
