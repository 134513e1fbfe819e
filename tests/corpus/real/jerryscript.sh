#!/bin/bash
# Crashes of JerryScript (https://github.com/jerryscript-project/jerryscript), each
# labeled by the upstream commit that fixed it, for `bt rules eval`.
#
# For every fix commit in the chosen range that adds one to three regression tests
# (tests/jerry/**/regression-test-issue-N.js) and changes jerry-core, the script builds
# the commit before the fix and the fix itself, in three configurations:
#   dbg   gcc, --debug (JERRY_ASSERT on, -O0)          plain build
#   rel   gcc, release (-Os), assertions off            plain build
#   asan  gcc, release + AddressSanitizer               sanitizer build
# and runs each regression test in several wrappers (as is, inside a function, inside
# try/catch, through eval, through new Function, after unrelated warm-up code). A run
# enters the corpus only when it dies of a signal on the commit before the fix AND
# ends without a signal on the fix, in the same configuration: so its label, the fix
# commit, is checked. Each crash is traced from its kernel core with
# `bt ptrace --core CORE EXE --json`. Runs that end in the test harness's own JS
# `assert()` (jerryx_handler_assert…: a wrong result, not a crash of the engine) are
# left out.
#
# Output: OUT-plain.jsonl (dbg and rel) and OUT-asan.jsonl, scored separately.
#
# usage: jerryscript.sh REPO OUT [SINCE UNTIL [MAX_FIXES]]
#   REPO: a clone of jerryscript (any recent one: the history is what is used)
#   env: BT (the bt binary), WORK (scratch directory, default /tmp/bt-corpus-jerry)
# Needs gcc, cmake, python3, jq; ccache when present. Never changes core_pattern:
# it must be a file name (like `core`), not a pipe.
set -u
REPO=$(cd "${1:?usage: jerryscript.sh REPO OUT [SINCE UNTIL [MAX]]}" && pwd)
OUT=${2:?usage: jerryscript.sh REPO OUT}
SINCE=${3:-2017-01-01}
UNTIL=${4:-2019-12-31}
MAX=${5:-1000}
BT=${BT:-bt}
WORK=${WORK:-/tmp/bt-corpus-jerry}
NAME=jerryscript
# shellcheck source=tests/corpus/real/common.sh
. "$(dirname "$0")/common.sh"
preflight gcc cmake python3 jq
mkdir -p "$WORK"
SRC="$WORK/src"
[ -d "$SRC/.git" ] || git clone -q "$REPO" "$SRC"
LAUNCHER=""
command -v ccache >/dev/null && LAUNCHER="--cmake-param=-DCMAKE_C_COMPILER_LAUNCHER=ccache"
: > "$OUT.tmp"

# The fix commits: those adding 1–3 regression tests and touching jerry-core.
fixes() {
  git -C "$SRC" log --reverse --no-merges --since="$SINCE" --until="$UNTIL" --diff-filter=A \
    --format='@%H' --name-only -- '*regression-test-issue-*.js' |
    awk '/^@/{c=substr($0,2); next} /regression-test-issue-/{n[c]++; f[c]=f[c] " " $0; o[c]=++k}
         END{for (c in n) if (n[c] <= 3) print o[c], c f[c]}' | sort -n | cut -d' ' -f2-
}

# build CONFIG DEST: builds the checked-out tree, copies the binary to DEST.
build() {
  local cfg=$1 dest=$2 opts=() have
  have=$(grep -o "'--[a-z0-9-]*'" "$SRC/tools/build.py" | tr -d "'" | tr '\n' ' ')
  has() { [[ " $have " == *" $1 "* ]]; }
  opts+=(--builddir="$WORK/b-$cfg" --lto=off --compile-flag=-g)
  has --all-in-one && opts+=(--all-in-one=off)
  has --jerry-libc && opts+=(--jerry-libc=off)
  has --static-link && opts+=(--static-link=off)
  has --strip && opts+=(--strip=off)
  has --stack-limit && opts+=(--stack-limit=96)
  if [ -f "$SRC/jerry-core/profiles/es2015-subset.profile" ]; then opts+=(--profile=es2015-subset)
  elif [ -f "$SRC/jerry-core/profiles/es.next.profile" ]; then opts+=(--profile=es.next); fi
  case $cfg in
    dbg) opts+=(--debug) ;;
    rel) ;;
    asan) opts+=(--compile-flag=-fsanitize=address --compile-flag=-fno-omit-frame-pointer --linker-flag=-fsanitize=address) ;;
  esac
  # Old trees turn every warning of today's compilers into an error.
  sed -i -E 's/-Werror=\$\{_warning\}/-W${_warning}/; s/ -Werror([ )])/\1/; s/-Werror //' "$SRC/CMakeLists.txt"
  if python3 "$SRC/tools/build.py" "${opts[@]}" $LAUNCHER </dev/null >"$WORK/build-$cfg.log" 2>&1 && [ -x "$WORK/b-$cfg/bin/jerry" ]; then
    cp "$WORK/b-$cfg/bin/jerry" "$dest"
  else
    return 1
  fi
}

# The wrappers a test is run in (the same bug reached along other paths).
wrap() { # kind file → stdout
  local src; src=$(cat "$2")
  case $1 in
    plain) printf '%s\n' "$src" ;;
    func) printf '(function () {\n%s\n})();\n' "$src" ;;
    try) printf 'try {\n%s\n} catch (e) {}\n' "$src" ;;
    eval) printf 'eval(%s);\n' "$(jq -Rs . <"$2")" ;;
    newfn) printf 'new Function(%s)();\n' "$(jq -Rs . <"$2")" ;;
    warm) printf 'var warm = [];\nfor (var w = 0; w < 64; w++) { warm.push({ k: "s" + w, v: [w, w * 2] }); }\nwarm.sort(function (a, b) { return b.v[0] - a.v[0]; });\n%s\n' "$src" ;;
  esac
}
WRAPS="plain func try eval newfn warm"

# run EXE FILE DIR → exit status (128+signal when killed); leaves DIR/core on a crash.
run() {
  local exe=$1 file=$2 dir=$3 flag=""
  "$exe" --help 2>&1 | grep -q -- --abort-on-fail && flag=--abort-on-fail
  rm -f "$dir"/core*
  ( cd "$dir" && ulimit -c unlimited && \
    ASAN_OPTIONS=abort_on_error=1:disable_coredump=0:detect_leaks=0:handle_abort=0 \
    timeout -s KILL 5 "$exe" $flag "$file" </dev/null ) >/dev/null 2>&1
}

n=0; nfix=0; ncrash=0
while read -r fix tests; do
  [ $nfix -ge "$MAX" ] && break
  git -C "$SRC" diff --quiet "$fix^" "$fix" -- jerry-core && continue
  short=${fix:0:9}
  bin="$WORK/bin/$short"; mkdir -p "$bin"
  ok=1
  for side in before after; do
    rev=$fix; [ $side = before ] && rev="$fix^"
    git -C "$SRC" checkout -q -f "$rev" || { ok=0; break; }
    for cfg in dbg rel asan; do
      build $cfg "$bin/$cfg-$side" || echo "jerryscript.sh: $short $side: $cfg build failed (see $WORK/build-$cfg.log)" >&2
    done
  done
  [ $ok = 1 ] || continue
  nfix=$((nfix + 1)); found=0
  for t in $tests; do
    git -C "$SRC" show "$fix:$t" > "$WORK/test.js" 2>/dev/null || continue
    for w in $WRAPS; do
      wrap $w "$WORK/test.js" > "$WORK/$w.js"
      for cfg in dbg rel asan; do
        [ -x "$bin/$cfg-before" ] && [ -x "$bin/$cfg-after" ] || continue
        dir="$WORK/run"; rm -rf "$dir"; mkdir -p "$dir"
        run "$bin/$cfg-after" "$WORK/$w.js" "$dir"; after=$?
        [ $after -ge 128 ] && continue # the fix does not stop this one: not labeled
        run "$bin/$cfg-before" "$WORK/$w.js" "$dir"; before=$?
        [ $before -ge 128 ] && [ $before -ne 137 ] || continue
        core=$(ls "$dir"/core* 2>/dev/null | head -1)
        [ -n "$core" ] || { echo "jerryscript.sh: $short $t $w $cfg: no core" >&2; continue; }
        n=$((n + 1))
        if ! "$BT" ptrace --core "$core" "$bin/$cfg-before" --json </dev/null > "$dir/snapshot.json" 2>"$dir/trace.log"; then
          echo "jerryscript.sh: bt failed on $short $t $w $cfg: $(tail -1 "$dir/trace.log")" >&2
        elif jq -e '[.threads[].frames[].function // ""] | any(startswith("jerryx_handler_assert"))' "$dir/snapshot.json" >/dev/null; then
          : # the test's own JS assert() failed: a wrong result, not a crash of the engine
        else
          jq -c --arg lab "jerryscript:$short" --arg var "jerryscript/$cfg/$short/$(basename "$t" .js)/$w" '
            {"label": $lab, "variant": $var, "classifiers": (.classifiers // []),
             "frames": [ ((([.threads[] | select(.faulted)] | first) // .threads[0]).frames // [])[]
                       | {function, "module": .module, module_offset, pc, file, line, inlined, trust} ]}' \
            "$dir/snapshot.json" >> "$OUT.tmp"
          ncrash=$((ncrash + 1)); found=1
        fi
      done
    done
  done
  echo "jerryscript.sh: fix $nfix $short: $([ $found = 1 ] && echo crashes || echo no labeled crash); $ncrash crashes so far" >&2
  rm -rf "$bin"
done < <(fixes)
# Source paths of the scratch tree are made relative, so regenerations compare.
sed "s#$SRC/##g" "$OUT.tmp" | grep -v '"jerryscript/asan/' > "$OUT-plain.jsonl"
sed "s#$SRC/##g" "$OUT.tmp" | grep '"jerryscript/asan/' > "$OUT-asan.jsonl"
rm -f "$OUT.tmp"
echo "jerryscript.sh: $ncrash labeled crashes from $nfix fixes in $OUT-plain.jsonl and $OUT-asan.jsonl" >&2
