# Sourced by the corpus scripts whose reproducers are not added by their fix commit
# (jasper.sh, openjpeg.sh, nasm.sh, libarchive.sh), after common.sh: finds each reproducer's fix by bisection
# and records the labeled crashes. Not run on its own.
#
# The sourcing script sets NAME, WORK, OUT, BT, CONFIGS, STEP, SINCE and UNTIL (and
# may set TIMEOUT, a run's limit in seconds, default 4), calls
# preflight and first_parents (which set SRC, COMMITS and LAST), sets POCS (file names
# under $WORK/poc), and defines:
#   compile_at CONFIG OUT FLAGS  builds the checked-out tree ($SRC) with FLAGS (cflags
#                        CONFIG) into the directory OUT; $WORK/obj-CONFIG is its scratch
#   invocation POC VARIANT  sets CMD (program name in that directory, then arguments)
#   probes POC           the variants run to decide whether a commit crashes
#   variants POC         the variants recorded at the fix
#
# Along the range, every STEP-th commit is built and every reproducer run on it;
# where one crashes at a sample and at no later sample, the commits between are
# bisected to the first that stops it. That commit is the label. A run enters the
# corpus only if it dies of a signal on the commit before it (its first parent) and
# ends without one on it, in the same configuration; its crash is the kernel's core
# of the run before the fix, traced with `bt ptrace --core CORE EXE --json`.

# first_parents REPO: clones REPO to $WORK/src (once) and sets SRC, COMMITS (the first-parent
# history of its default branch between SINCE and UNTIL, oldest first) and LAST.
first_parents() {
  local branch
  mkdir -p "$WORK/bin" "$WORK/poc"
  [ -d "$WORK/src/.git" ] || git clone -q "$1" "$WORK/src"
  SRC=$WORK/src
  branch=$(git -C "$1" symbolic-ref --short HEAD 2>/dev/null || echo master)
  git -C "$SRC" log --first-parent --reverse --format=%H --since="$SINCE" --until="$UNTIL" \
    "origin/$branch" > "$WORK/commits"
  mapfile -t COMMITS < "$WORK/commits"
  LAST=${COMMITS[-1]}
}

# cflags CONFIG → the compiler flags of a configuration (dbg, rel or asan).
cflags() {
  case $1 in
    asan) echo "-O1 -g -fsanitize=address -fno-omit-frame-pointer" ;;
    dbg) echo "-O0 -g" ;;
    rel) echo "-O2 -g" ;;
  esac
}

# build CONFIG INDEX → prints the directory of the programs built at COMMITS[INDEX], by
# compile_at; kept by commit, and a commit that failed to build is not tried again.
build() {
  local cfg=$1 rev=${COMMITS[$2]} out
  exec </dev/null
  out="$WORK/bin/$cfg-${rev:0:12}"
  [ -f "$out/.built" ] && { echo "$out"; return 0; }
  [ -f "$out.failed" ] && return 1
  git -C "$SRC" checkout -q -f "$rev" && git -C "$SRC" clean -qfdx || return 1
  rm -rf "$out" && mkdir -p "$out" "$WORK/obj-$cfg" || return 1
  if compile_at "$cfg" "$out" "$(cflags "$cfg")" >"$WORK/build-$cfg.log" 2>&1; then
    touch "$out/.built" && echo "$out"
  else
    rm -rf "$out"; touch "$out.failed"
    return 1
  fi
}

# run DIR POC VARIANT [CORE] → exit status (128+signal when killed); with CORE
# (a ulimit -c value, default unlimited) leaves DIR/core on a crash. Probes pass 0: a
# reproducer that makes the program allocate gigabytes dumps a core of gigabytes.
run() {
  local dir=$1 core=${4:-unlimited}
  invocation "$2" "$3"
  rm -rf "$dir" && mkdir -p "$dir"
  ( cd "$dir" && ulimit -c "$core" && \
    ASAN_OPTIONS=abort_on_error=1:disable_coredump=0:detect_leaks=0:handle_abort=0:allocator_may_return_null=1 \
    timeout -s KILL "${TIMEOUT:-4}" "$BIN/${CMD[0]}" "${CMD[@]:1}" </dev/null ) >/dev/null 2>&1
}

# killed STATUS → 0 when a run died of a signal other than the timeout's SIGKILL.
killed() { [ "$1" -ge 128 ] && [ "$1" -ne 137 ]; }

# crashes CONFIG INDEX POC → 0 when some probe dies of a signal, 1 when none does,
# 2 when the commit does not build (cached in $WORK/runs).
crashes() {
  local key="$WORK/runs/$1-${COMMITS[$2]:0:12}-$3" v st
  if [ ! -f "$key" ]; then
    BIN=$(build "$1" "$2") || { echo u > "$key"; return 2; }
    echo n > "$key"
    for v in $(probes "$3"); do
      run "$WORK/run" "$3" "$v" 0; st=$?
      killed $st && { echo y > "$key"; break; }
      [ $st = 137 ] && break # a reproducer that hangs one way hangs the others
    done
  fi
  case $(cat "$key") in y) return 0 ;; n) return 1 ;; *) return 2 ;; esac
}

# fix_of CONFIG POC → prints the index of the commit that stops POC, if one does.
fix_of() {
  local cfg=$1 poc=$2 lo=-1 hi=-1 s r mid m
  # The last sample at which it crashes, and a later sample that ran clean.
  for s in "${SAMPLES[@]}"; do
    crashes "$cfg" "$s" "$poc"; r=$?
    if [ $r = 0 ]; then lo=$s; hi=-1; elif [ $r = 1 ] && [ $lo -ge 0 ] && [ $hi -lt 0 ]; then hi=$s; fi
  done
  [ $lo -ge 0 ] && [ $hi -gt $lo ] || return 1
  # lo crashes, hi does not; commits that fail to build are stepped over.
  while [ $((hi - lo)) -gt 1 ]; do
    mid=$(((lo + hi) / 2)); r=2
    for m in $mid $((mid + 1)) $((mid - 1)) $((mid + 2)) $((mid - 2)); do
      [ $m -gt $lo ] && [ $m -lt $hi ] || continue
      crashes "$cfg" "$m" "$poc"; r=$?
      [ $r != 2 ] && { mid=$m; break; }
    done
    case $r in 0) lo=$mid ;; 1) hi=$mid ;; *) break ;; esac
  done
  [ $((hi - lo)) = 1 ] || { echo "$NAME: $cfg $poc: bisection stopped at commits that do not build" >&2; return 1; }
  echo "$hi"
}

# label CONFIG POC FIX: records every variant that crashes before FIX and not at it.
label() {
  local cfg=$1 poc=$2 fix=$3 short=${COMMITS[$3]:0:9} before after v core n=0
  before=$(build "$cfg" $((fix - 1))) && after=$(build "$cfg" "$fix") || return 0
  for v in $(variants "$poc"); do
    BIN=$before; run "$WORK/run" "$poc" "$v"
    killed $? || continue
    core=$(ls "$WORK/run"/core* 2>/dev/null | head -1)
    [ -n "$core" ] || { echo "$NAME: $short $poc $cfg $v: no core" >&2; continue; }
    mv "$core" "$WORK/core.before"
    BIN=$after; run "$WORK/run" "$poc" "$v"
    [ $? -ge 128 ] && continue # the fix does not stop this run: not labeled
    if ! "$BT" ptrace --core "$WORK/core.before" "$before/${CMD[0]}" --json </dev/null > "$WORK/snapshot.json" 2>"$WORK/trace.log"; then
      echo "$NAME: bt failed on $short $poc $cfg $v: $(tail -1 "$WORK/trace.log")" >&2
      continue
    fi
    record "$WORK/snapshot.json" "$NAME:$short" "$NAME/$cfg/$short/$poc/$v"
    n=$((n + 1))
  done
  NCRASH=$((NCRASH + n))
  echo "$NAME: $cfg $poc: fixed by $short, $n runs; $NCRASH crashes so far" >&2
}

# bisect_all: every configuration, every reproducer; writes OUT-plain.jsonl and
# OUT-asan.jsonl (source paths made relative to the tree).
bisect_all() {
  local cfg poc fix i
  : > "$OUT.tmp"
  SAMPLES=()
  for ((i = 0; i < ${#COMMITS[@]}; i += STEP)); do SAMPLES+=("$i"); done
  [ "${SAMPLES[-1]}" = $((${#COMMITS[@]} - 1)) ] || SAMPLES+=($((${#COMMITS[@]} - 1)))
  NCRASH=0
  mkdir -p "$WORK/runs"
  for cfg in $CONFIGS; do
    echo "$NAME: $cfg: ${#SAMPLES[@]} samples of ${#COMMITS[@]} commits, ${#POCS[@]} reproducers" >&2
    for poc in "${POCS[@]}"; do
      fix=$(fix_of "$cfg" "$poc") && label "$cfg" "$poc" "$fix"
    done
  done
  rm -f "$WORK/core.before"
  sed "s#$SRC/##g" "$OUT.tmp" | grep -v "\"$NAME/asan/" > "$OUT-plain.jsonl"
  sed "s#$SRC/##g" "$OUT.tmp" | grep "\"$NAME/asan/" > "$OUT-asan.jsonl"
  rm -f "$OUT.tmp"
  echo "$NAME: $NCRASH labeled crashes in $OUT-plain.jsonl and $OUT-asan.jsonl" >&2
}
