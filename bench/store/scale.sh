#!/bin/sh
# Scale-out benchmark (make bench-scale): the embedded store beside PostgreSQL + S3
# (SeaweedFS), both on this machine. Ingest over HTTP with 1 and 2 nodes, a store of
# BENCH_SCALE_OBJECTS objects loaded through the library, then a node started on it
# (index catch-up), its memory, the queries, and the catalog's bytes per object.
# Needs BT, OUT, BENCH_BIN (the store_bench example) and WEED (SeaweedFS's weed).
set -eu
: "${BT:?set BT to the bt binary}"
: "${OUT:?set OUT to a scratch directory}"
: "${BENCH_BIN:?set BENCH_BIN to the store_bench example binary}"
: "${WEED:?set WEED to SeaweedFS's weed (make sdk installs it)}"
N="${BENCH_SCALE_OBJECTS:-10000000}"
N_INGEST="${BENCH_SCALE_INGEST:-50000}"
RUNS="${BENCH_RUNS:-11}"
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort | tail -1)
mkdir -p "$OUT"
W="$OUT/scale"
rm -rf "$W"
mkdir -p "$W"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# PostgreSQL on loopback (durable commits: fsync stays on).
PGPORT=$(free_port)
mkdir -p "$W/pg"
[ "$(id -u)" = 0 ] && chown postgres "$W/pg"
as_pg "$PGBIN/initdb" -D "$W/pg/data" -A trust -U bt >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$W/pg/data" -o "-p $PGPORT -k $W/pg -c listen_addresses=127.0.0.1 -c shared_buffers=1GB" \
  -l "$W/pg/log" -w start >/dev/null
# SeaweedFS on loopback, signatures checked.
mkdir -p "$W/weed/data"
echo '{"identities":[{"name":"bt","credentials":[{"accessKey":"bench","secretKey":"bench-secret-0123456789"}],"actions":["Admin","Read","Write","List"]}]}' >"$W/weed/s3.json"
printf 'aws_access_key_id = bench\naws_secret_access_key = bench-secret-0123456789\n' >"$W/weed/credentials"
S3PORT=$(free_port)
set -- -s3.port="$S3PORT"
for f in s3.port.grpc master.port master.port.grpc filer.port filer.port.grpc volume.port volume.port.grpc; do
  set -- "$@" "-$f=$(free_port)"
done
# weed server rather than weed mini: the same components without mini's admin and
# maintenance worker, and with the volume server's limits settable (as tests/scale_out.rs).
"$WEED" server -dir="$W/weed/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 -filer -s3 -s3.port.iceberg=0 -s3.port.lance=0 \
  -volume.max=0 -volume.minFreeSpace=1GiB -master.volumeSizeLimitMB=1024 -volume.preStopSeconds=1 \
  -s3.config="$W/weed/s3.json" "$@" >"$W/weed/log" 2>&1 &
WEED_PID=$!
cleanup() {
  kill "$WEED_PID" 2>/dev/null || true
  as_pg "$PGBIN/pg_ctl" -D "$W/pg/data" -m fast -w stop >/dev/null 2>&1 || true
}
trap cleanup EXIT INT TERM
i=0
until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$S3PORT/")" = 403 ]; do
  i=$((i + 1)); [ $i -lt 300 ] || { echo "weed did not start"; cat "$W/weed/log"; exit 1; }; sleep 0.2
done

# Beyond 1 M objects the loaded stores hold ~700-byte reports (BENCH_SMALL_BLOBS):
# at 2-8 KB, 10 M objects are 70 GB in redb, more than this machine's disk. Ingest
# always sends 2-8 KB reports; index memory, queries and catch-up do not depend on it.
SMALL=""
[ "$N" -gt 1000000 ] && SMALL="BENCH_SMALL_BLOBS=1"
echo "== embedded (DATA/store.redb)"
"$BENCH_BIN" ingest "$BT" "$W/embedded-ingest" "$N_INGEST" 32 1
rm -rf "$W/embedded-ingest"
env $SMALL "$BENCH_BIN" load "$W/embedded" "$N"
"$BENCH_BIN" query "$BT" "$W/embedded" "$RUNS"
rm -rf "$W/embedded"

export BENCH_BLOBS="s3://bench?endpoint=http://127.0.0.1:$S3PORT&region=us-east-1"
export BENCH_BLOBS_CREDENTIALS="$W/weed/credentials"
for nodes in 1 2; do
  echo "== PostgreSQL + S3: ingest, $nodes node(s)"
  psql -h 127.0.0.1 -p "$PGPORT" -U bt -d postgres -qc "CREATE DATABASE ingest$nodes"
  BENCH_CATALOG="postgres://bt@127.0.0.1:$PGPORT/ingest$nodes" \
    "$BENCH_BIN" ingest "$BT" "$W/pg-ingest$nodes" "$N_INGEST" 32 "$nodes"
done
echo "== PostgreSQL + S3: $N objects"
psql -h 127.0.0.1 -p "$PGPORT" -U bt -d postgres -qc "CREATE DATABASE scale"
export BENCH_CATALOG="postgres://bt@127.0.0.1:$PGPORT/scale"
env $SMALL "$BENCH_BIN" load "$W/pg-load" "$N"
"$BENCH_BIN" query "$BT" "$W/pg-node" "$RUNS"
psql -h 127.0.0.1 -p "$PGPORT" -U bt -d scale -Atc \
  "SELECT 'catalog: ' || pg_size_pretty(pg_total_relation_size('bt_catalog')) || ', '
          || (pg_total_relation_size('bt_catalog') / GREATEST(1, (SELECT count(*) FROM bt_catalog WHERE t = 'c.objects')))
          || ' bytes/object (rows, index, change log)'"
echo "blobs: $(du -sh "$W/weed/data" | cut -f1) in SeaweedFS"
