#!/bin/bash
# Builds the corpus programs in several ways, crashes every (bug, path, build) for
# real, traces each core with `bt ptrace --core CORE EXE --json` and writes one JSON
# line per crash: {"label", "variant", "classifiers", "frames"}.
#
# usage: gen.sh OUT_DIR        env: BT (the bt binary), CC/CXX/CLANG/CLANGXX/RUSTC
# Output: OUT_DIR/corpus.jsonl. Needs gcc, g++, rustc, jq; clang/clang++ when present.
# Cores are found where the current core_pattern puts them (a file name relative to
# the crash's directory, or an absolute path with %p and friends) and moved next to
# the crash; with a piped core_pattern the script says so and stops: it never
# changes the pattern.
set -u
OUT=${1:?usage: gen.sh OUT_DIR}
BT=${BT:-bt}
SRC=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT/bin" "$OUT/run"
OUT=$(cd "$OUT" && pwd)
CORPUS="$OUT/corpus.jsonl"
: > "$CORPUS"

case "$(cat /proc/sys/kernel/core_pattern)" in
  \|*) echo "gen.sh: core_pattern is a pipe ($(cat /proc/sys/kernel/core_pattern)); set it to 'core' to generate the corpus" >&2; exit 1 ;;
esac
command -v jq >/dev/null || { echo "gen.sh: jq is needed (apt-get install jq)" >&2; exit 1; }

# The core file of process $1 that crashed in directory $2, as a glob.
core_glob() {
  local pat pid=$1 dir=$2
  pat=$(cat /proc/sys/kernel/core_pattern)
  case $pat in /*) ;; *) pat="$dir/$pat" ;; esac
  if [[ $pat != *%p* && $pat != *%P* && $(cat /proc/sys/kernel/core_uses_pid 2>/dev/null) = 1 ]]; then pat="$pat.$pid"; fi
  pat=${pat//%p/$pid}; pat=${pat//%P/$pid}; pat=${pat//%i/$pid}; pat=${pat//%I/$pid}
  printf '%s\n' "$pat" | sed 's/%[a-zA-Z%]/*/g'
}

builds=()
build() { # name, command...
  local name=$1; shift
  if "$@" -o "$OUT/bin/$name" 2>"$OUT/bin/$name.log"; then builds+=("$name"); else echo "gen.sh: skipping build $name (see $OUT/bin/$name.log)" >&2; fi
}
CFLAGS="-g -fstack-protector-strong -pthread"
for cc in gcc clang; do
  command -v $cc >/dev/null || continue
  for opt in O0 O2; do
    build "c-$cc-$opt-pie" $cc -$opt $CFLAGS -fpie -pie "$SRC/c/bugs.c"
    build "c-$cc-$opt-nopie" $cc -$opt $CFLAGS -fno-pie -no-pie "$SRC/c/bugs.c"
  done
done
for cxx in g++ clang++; do
  command -v $cxx >/dev/null || continue
  for opt in O0 O2; do
    build "cxx-$cxx-$opt" $cxx -$opt -g -std=c++17 -pthread "$SRC/cxx/bugs.cpp"
  done
done
if command -v rustc >/dev/null; then
  build "rust-debug" rustc -C panic=abort -g -C opt-level=0 "$SRC/rust/bugs.rs"
  build "rust-release" rustc -C panic=abort -g -C opt-level=2 "$SRC/rust/bugs.rs"
fi

# bug name → label, per language; matrix_get_d is the same bug as matrix_get
# reached through another template instantiation.
C_BUGS="null_header assert_qty double_free stack_smash div_zero fatal_config fatal_db strlen_null"
CXX_BUGS="cfg_throw vec_at lambda_null matrix_get matrix_get_d decode_packet"
RUST_BUGS="unwrap_none index_oob explicit_panic refcell raw_null div_zero"
PATHS="direct caller_a caller_b loop thread recurse"

n=0; bad=0
for b in "${builds[@]}"; do
  case $b in c-*) bugs=$C_BUGS; lang=c ;; cxx-*) bugs=$CXX_BUGS; lang=cxx ;; rust-*) bugs=$RUST_BUGS; lang=rust ;; esac
  exe="$OUT/bin/$b"
  for bug in $bugs; do
    label="$lang:${bug%_d}"
    [ "$bug" = matrix_get_d ] && label="cxx:matrix_get"
    for path in $PATHS; do
      n=$((n + 1))
      depth=$(( (n % 4) + 1 ))
      dir="$OUT/run/$n"
      rm -rf "$dir"; mkdir -p "$dir"
      # The subshell reaps the crash, so its "Segmentation fault" notice goes to /dev/null too.
      ( cd "$dir" && ulimit -c unlimited && { "$exe" "$bug" "$path" "$depth" & echo $! > "$dir/pid"; wait; } ) >/dev/null 2>&1
      core=""
      for c in $(core_glob "$(cat "$dir/pid")" "$dir"); do [ -f "$c" ] && core=$c; done
      if [ -n "$core" ] && [ "$(dirname "$core")" != "$dir" ]; then mv "$core" "$dir/core" && core="$dir/core"; fi
      if [ -z "$core" ]; then echo "gen.sh: no core for $b $bug $path" >&2; bad=$((bad + 1)); continue; fi
      if "$BT" ptrace --core "$core" "$exe" --json > "$dir/snapshot.json" 2>"$dir/trace.log"; then
        jq -c --arg lab "$label" --arg var "$b/$bug/$path/$depth" '
          {"label": $lab, "variant": $var, "classifiers": (.classifiers // []),
           "frames": [ ((([.threads[] | select(.faulted)] | first) // .threads[0]).frames // [])[]
                     | {function, "module": .module, module_offset, pc, file, line, inlined, trust} ]}' \
          "$dir/snapshot.json" >> "$CORPUS"
      else
        echo "gen.sh: bt failed on $dir/$(basename "$core") ($b $bug $path): $(tail -1 "$dir/trace.log")" >&2; bad=$((bad + 1))
      fi
      rm -f "$dir"/core*
    done
  done
done
echo "gen.sh: $(wc -l < "$CORPUS") crashes in $CORPUS ($bad failed) from ${#builds[@]} builds" >&2
