#!/bin/bash
# Crashes of tcpdump (https://github.com/the-tcpdump-group/tcpdump), each labeled by
# the upstream commit that fixed it, for `bt rules eval`.
#
# tcpdump's fixes of memory-safety bugs (the CVE batches of 2015–2017 and the
# over-reads found by fuzzing since) add the reporter's capture file to tests/ and a
# line to tests/TESTLIST with the options that reach the bug. For every commit in the
# chosen range that adds one to five capture files, changes C code and says what it
# fixes (CVE, overflow, over-read, bounds, crash …), the script builds the commit
# before the fix and the fix itself:
#   asan  gcc -O1 -g -fsanitize=address              sanitizer build
#   dbg   gcc -O0 -g                                  plain build (only when needed)
# and reads each added capture with the TESTLIST options and a few more verbosity
# and link-layer options (`-n` always: no name lookups). A run enters the corpus only
# when it dies of a signal on the commit before the fix AND ends without a signal on
# the fix, in the same configuration: so its label, the fix commit, is checked. Each
# crash is traced from its kernel core with `bt ptrace --core CORE EXE --json`.
# Builds are remembered by commit (the commit before one fix is often the previous
# fix) and compiled through ccache.
#
# Output: OUT-plain.jsonl (dbg) and OUT-asan.jsonl, scored separately.
#
# usage: tcpdump.sh REPO OUT [SINCE UNTIL [MAX_FIXES]]
#   REPO: a clone of tcpdump (any recent one: the history is what is used)
#   env: BT (the bt binary), WORK (scratch directory, default /tmp/bt-corpus-tcpdump)
# Needs gcc, make, ccache, libpcap-dev, jq, python3. Never changes core_pattern: it must be a
# file name (like `core`), not a pipe.
set -u
REPO=$(cd "${1:?usage: tcpdump.sh REPO OUT [SINCE UNTIL [MAX]]}" && pwd)
OUT=${2:?usage: tcpdump.sh REPO OUT}
SINCE=${3:-2014-01-01}
UNTIL=${4:-2020-12-31}
MAX=${5:-1000}
BT=${BT:-bt}
WORK=${WORK:-/tmp/bt-corpus-tcpdump}
NAME=tcpdump
# shellcheck source=tests/corpus/real/common.sh
. "$(dirname "$0")/common.sh"
preflight gcc make ccache jq
[ -f /usr/include/pcap/pcap.h ] || { echo "tcpdump.sh: libpcap-dev is needed" >&2; exit 1; }
mkdir -p "$WORK/bin"
for cfg in asan dbg; do
  [ -d "$WORK/src-$cfg/.git" ] || git clone -q "$REPO" "$WORK/src-$cfg"
  # The build needs no test files (and a partial clone may lack some of their blobs).
  git -C "$WORK/src-$cfg" sparse-checkout set --no-cone '/*' '!/tests/'
done
TIP=$(git -C "$REPO" rev-parse HEAD)
: > "$OUT.tmp"

# The fix commits, oldest first: 1–5 capture files added, C code changed, a fix said.
fixes() {
  local src="$WORK/src-asan"
  git -C "$src" log "$TIP" --reverse --no-merges --since="$SINCE" --until="$UNTIL" --diff-filter=A \
    --format='@%H' --name-only -- 'tests/*.pcap' 'tests/*.pcapng' |
    awk '/^@/{c=substr($0,2); next} /^tests\//{n[c]++; f[c]=f[c] " " $0; o[c]=++k}
         END{for (c in n) if (n[c] <= 5) print o[c], c f[c]}' | sort -n | cut -d' ' -f2- |
    while read -r c files; do
      git -C "$src" diff --quiet "$c^" "$c" -- '*.c' '*.h' && continue
      git -C "$src" log -1 --format=%B "$c" |
        grep -qiE 'CVE|overflow|over-?read|out-of-bounds|oobr|crash|asan|infinite|exhaust|heap|segfault|bounds|fuzz|invalid read|buffer' &&
        echo "$c $files"
    done
}

# build CONFIG REV → prints the binary (built once per commit and configuration).
build() {
  local cfg=$1 rev=$2 src bin flags stamp
  # Always called as $(build …): stdin is the caller's list of fixes; keep it.
  exec </dev/null
  src="$WORK/src-$cfg"
  rev=$(git -C "$src" rev-parse "$rev") || return 1
  bin="$WORK/bin/$cfg-${rev:0:12}"
  [ -x "$bin" ] && { echo "$bin"; return 0; }
  [ -f "$bin.failed" ] && return 1
  git -C "$src" checkout -q -f "$rev" || return 1
  case $cfg in
    asan) flags="-O1 -g -fsanitize=address -fno-omit-frame-pointer" ;;
    dbg) flags="-O0 -g" ;;
  esac
  # configure again only when what it reads changed.
  stamp=$(git -C "$src" rev-parse "$rev:configure" "$rev:Makefile.in" "$rev:config.h.in" 2>/dev/null | tr '\n' ' ')
  if [ "$stamp" != "$(cat "$WORK/configured-$cfg" 2>/dev/null)" ]; then
    (cd "$src" && make distclean >/dev/null 2>&1; ./configure CC="ccache gcc" CFLAGS="$flags" LDFLAGS="${flags/-O? -g/}" \
      >"$WORK/configure-$cfg.log" 2>&1) || { touch "$bin.failed"; return 1; }
    echo "$stamp" > "$WORK/configured-$cfg"
  fi
  if (cd "$src" && make clean >/dev/null 2>&1; make -j"$(nproc)" tcpdump >"$WORK/build-$cfg.log" 2>&1) && [ -x "$src/tcpdump" ]; then
    cp "$src/tcpdump" "$bin" && echo "$bin"
  else
    touch "$bin.failed"
    return 1
  fi
}

# run EXE PCAP DIR FLAGS… → exit status (128+signal when killed); leaves DIR/core on a crash.
run() {
  local exe=$1 pcap=$2 dir=$3
  shift 3
  rm -f "$dir"/core*
  ( cd "$dir" && ulimit -c unlimited && \
    ASAN_OPTIONS=abort_on_error=1:disable_coredump=0:detect_leaks=0:handle_abort=0 \
    timeout -s KILL 10 "$exe" -n -r "$pcap" "$@" </dev/null ) >/dev/null 2>&1
}

# Fuzzed captures of 2015 carry any bytes as the file format's version, which the
# libpcap of the day read and today's refuses: set it to 2.4 in the file's byte order.
pcap_version() {
  python3 - "$1" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
order = {b"\xd4\xc3\xb2\xa1": "little", b"\x4d\x3c\xb2\xa1": "little",
         b"\xa1\xb2\xc3\xd4": "big", b"\xa1\xb2\x3c\x4d": "big"}.get(bytes(b[:4]))
if order and len(b) >= 8:
    b[4:6] = (2).to_bytes(2, order)
    b[6:8] = (4).to_bytes(2, order)
    open(p, "wb").write(b)
PY
}

# The options a capture is read with: its TESTLIST lines, then more verbosity.
options() { # fix pcap-name
  git -C "$WORK/src-asan" show "$1:tests/TESTLIST" 2>/dev/null |
    awk -v p="$2" '$2 == p { $1 = $2 = $3 = ""; sub(/^ +/, ""); print }'
  printf '%s\n' "" "-v" "-vv" "-vvv" "-e -vvv" "-x -vv"
}

fixes > "$WORK/fixes"
echo "tcpdump.sh: $(wc -l < "$WORK/fixes") candidate fixes" >&2
nfix=0; ncrash=0
while read -r fix pcaps; do
  [ $nfix -ge "$MAX" ] && break
  short=${fix:0:9}
  ab=$(build asan "$fix^") && aa=$(build asan "$fix") || { echo "tcpdump.sh: $short: asan build failed (see $WORK/build-asan.log)" >&2; continue; }
  db=$(build dbg "$fix^") || db=""
  da=""
  nfix=$((nfix + 1)); found=0
  for p in $pcaps; do
    name=$(basename "$p")
    git -C "$WORK/src-asan" show "$fix:$p" > "$WORK/$name" 2>/dev/null || continue
    pcap_version "$WORK/$name"
    while read -r opts; do
      for cfg in asan dbg; do
        if [ $cfg = asan ]; then before=$ab; after=$aa; else before=$db; after=$da; fi
        [ -n "$before" ] || continue
        dir="$WORK/run"; rm -rf "$dir"; mkdir -p "$dir"
        # shellcheck disable=SC2086
        run "$before" "$WORK/$name" "$dir" $opts; st=$?
        [ $st -ge 128 ] && [ $st -ne 137 ] || continue
        core=$(ls "$dir"/core* 2>/dev/null | head -1)
        [ -n "$core" ] || { echo "tcpdump.sh: $short $name $cfg: no core" >&2; continue; }
        mv "$core" "$WORK/core.before"
        if [ $cfg = dbg ] && [ -z "$da" ]; then
          da=$(build dbg "$fix") || { db=""; continue; }
          after=$da
        fi
        # shellcheck disable=SC2086
        run "$after" "$WORK/$name" "$dir" $opts; st=$?
        [ $st -ge 128 ] && continue # the fix does not stop this one: not labeled
        if ! "$BT" ptrace --core "$WORK/core.before" "$before" --json </dev/null > "$dir/snapshot.json" 2>"$dir/trace.log"; then
          echo "tcpdump.sh: bt failed on $short $name $cfg: $(tail -1 "$dir/trace.log")" >&2
          continue
        fi
        record "$dir/snapshot.json" "tcpdump:$short" "tcpdump/$cfg/$short/$name/${opts// /_}"
        ncrash=$((ncrash + 1)); found=1
      done
    done < <(options "$fix" "$name" | awk '!seen[$0]++')
  done
  rm -f "$WORK/core.before"
  echo "tcpdump.sh: fix $nfix $short: $([ $found = 1 ] && echo crashes || echo no labeled crash); $ncrash crashes so far" >&2
done < "$WORK/fixes"
# Source paths of the scratch trees are made relative, so regenerations compare.
sed "s#$WORK/src-asan/##g; s#$WORK/src-dbg/##g" "$OUT.tmp" | grep -v '"tcpdump/asan/' > "$OUT-plain.jsonl"
sed "s#$WORK/src-asan/##g; s#$WORK/src-dbg/##g" "$OUT.tmp" | grep '"tcpdump/asan/' > "$OUT-asan.jsonl"
rm -f "$OUT.tmp"
echo "tcpdump.sh: $ncrash labeled crashes from $nfix fixes in $OUT-plain.jsonl and $OUT-asan.jsonl" >&2
