#!/bin/bash
# Crashes of JasPer (https://github.com/jasper-software/jasper), the JPEG-2000 codec,
# each labeled by the upstream commit that stops it, for `bt rules eval`.
#
# JasPer keeps the fuzzers' reproducers of its fixed crashes in data/test/ (bad/,
# other/ and the PoC files of good/), but most were added in a commit of their own,
# before or after the fix. So the fix is found by bisection, not read from the commit
# that adds the file: along the first-parent history of master between SINCE and
# UNTIL, every STEP-th commit is built and every reproducer run on it; where a
# reproducer crashes at one sample and no later one, the commits between are bisected
# to the first commit at which it stops (bisect.sh). That commit is the label, and a
# run enters the corpus only if it dies of a signal on the commit before it (its
# first parent) and ends without a signal on it, in the same configuration:
#   dbg   gcc -O0 -g                               plain build
#   rel   gcc -O2 -g                               plain build
#   asan  gcc -O1 -g -fsanitize=address           sanitizer build
# Each reproducer is run four ways: `imginfo -f F` and `jasper -f F -F OUT -T FMT`
# with FMT pnm, jpc and bmp. The crash is the kernel's core of the run on the commit
# before the fix, traced with `bt ptrace --core CORE EXE --json`.
#
# JasPer is compiled here without its build system (autotools until late 2016, CMake
# since): every .c of the library and the two programs, with a jas_config.h made from
# the commit's own template. Builds go through ccache and are kept by commit.
#
# Output: OUT-plain.jsonl (dbg and rel) and OUT-asan.jsonl, scored separately.
#
# usage: jasper.sh REPO OUT [SINCE UNTIL [STEP]]
#   REPO: a clone of jasper (the history is what is used)
#   env: BT (the bt binary), WORK (scratch directory, default /tmp/bt-corpus-jasper),
#        CONFIGS (default "dbg asan rel")
# Needs gcc, ccache, libjpeg-dev, jq. Never changes core_pattern: it must be a file
# name (like `core`), not a pipe.
set -u
REPO=$(cd "${1:?usage: jasper.sh REPO OUT [SINCE UNTIL [STEP]]}" && pwd)
OUT=${2:?usage: jasper.sh REPO OUT}
SINCE=${3:-2016-10-01}
UNTIL=${4:-2021-03-31}
STEP=${5:-128}
BT=${BT:-bt}
WORK=${WORK:-/tmp/bt-corpus-jasper}
CONFIGS=${CONFIGS:-dbg asan rel}
NAME=jasper
# shellcheck source=tests/corpus/real/common.sh
. "$(dirname "$0")/common.sh"
# shellcheck source=tests/corpus/real/bisect.sh
. "$(dirname "$0")/bisect.sh"
preflight gcc ccache jq
[ -f /usr/include/jpeglib.h ] || { echo "$NAME: libjpeg-dev is needed" >&2; exit 1; }
first_parents "$REPO"
N=${#COMMITS[@]}
echo "$NAME: $N commits from ${COMMITS[0]:0:9} to ${LAST:0:9}" >&2

# The reproducers: every file of data/test/bad and data/test/other, and the PoC files
# of data/test/good, as of the range's last commit.
git -C "$SRC" ls-tree -r --name-only "$LAST" data/test |
  grep -E '^data/test/(bad|other)/|^data/test/good/.*(poc|PoC|crash)' | grep -v README > "$WORK/pocs"
while read -r p; do git -C "$SRC" show "$LAST:$p" > "$WORK/poc/$(basename "$p")"; done < "$WORK/pocs"
mapfile -t POCS < <(sed 's#.*/##' "$WORK/pocs")
echo "$NAME: ${#POCS[@]} reproducers" >&2

# jas_config.h for the checked-out commit, from its template (autoheader, or CMake's
# `#cmakedefine X` and `@X@` lines).
# Between late October and late November 2016 the template was not in git (autoheader
# made it); the range's first template stands in.
config_header() {
  local inc=$SRC/src/libjasper/include/jasper
  [ -f "$inc/jas_config.h.in" ] ||
    git -C "$SRC" show "${COMMITS[0]}:src/libjasper/include/jasper/jas_config.h.in" > "$inc/jas_config.h.in"
  sed -E \
    -e 's/^#undef[[:space:]]+JAS_VERSION$/#define JAS_VERSION "0.0.0"/' \
    -e 's/^#undef[[:space:]]+(HAVE_(FCNTL_H|GETRUSAGE|GETTIMEOFDAY|INTTYPES_H|LIMITS_H|MEMORY_H|STDBOOL_H|STDDEF_H|STDINT_H|STDLIB_H|STRINGS_H|STRING_H|SYS_STAT_H|SYS_TIME_H|SYS_TYPES_H|UNISTD_H|VPRINTF|DLFCN_H|LIBM)|STDC_HEADERS)$/#define \1 1/' \
    -e 's/^#cmakedefine[[:space:]]+([A-Z0-9_]*(IO_H|WINDOWS_H|GLUT|GL_GLUT_H|DLL|HEIC_CODEC|DANGEROUS[A-Z_]*|NON_THREAD_SAFE[A-Z_]*|THREADS_WIN32|THREADS_C11|ENABLE_32BIT))([[:space:]].*)?$/\/* #undef \1 *\//' \
    -e 's/^#cmakedefine[[:space:]]+([A-Z0-9_]+)([[:space:]]+(.*))?$/#define \1 1/' \
    -e 's/^@([A-Z0-9_]*(IO_H|WINDOWS_H|GLUT|GL_GLUT_H|DLL))@[[:space:]]*$/\/* #undef \1 *\//' \
    -e 's/^@(JAS_HAVE_[A-Z0-9_]+)@[[:space:]]*$/#define \1 1/' \
    -e 's/@JAS_VERSION@/0.0.0/; s/@JAS_VERSION_(MAJOR|MINOR|PATCH)@/0/; s/@JAS_DEFAULT_MAX_MEM_USAGE@/((size_t)1 << 30)/' \
    -e 's/@[A-Z_]+@/0/g' \
    "$inc/jas_config.h.in" > "$inc/jas_config.h"
  # What configure.ac defined in those weeks and the stand-in template lacks.
  printf '%s\n' '#ifndef JAS_ATTRIBUTE_DISABLE_USAN' \
    '#define JAS_ATTRIBUTE_DISABLE_USAN __attribute__((no_sanitize_undefined))' '#endif' >> "$inc/jas_config.h"
}

# compile CONFIG OUT FLAGS SOURCES EXTRA: the library's sources and the two programs.
compile() {
  local cfg=$1 out=$2 flags=$3 srcs=$4 extra=$5 link=""
  [ -n "$extra" ] && link="-Wl,--allow-multiple-definition"
  rm -f "$WORK/obj-$cfg"/*.o
  # shellcheck disable=SC2086
  (cd "$SRC" && echo "$srcs" | xargs -P"$(nproc)" -I{} sh -c \
        'ccache gcc '"$flags $extra"' -std=gnu99 -w -Isrc/libjasper/include -Isrc/libjasper/include/jasper -c {} -o "'"$WORK/obj-$cfg"'/$(echo {} | tr / _).o"' &&
      for app in jasper imginfo; do
        ccache gcc $flags $extra -std=gnu99 -w -Isrc/libjasper/include -c src/appl/$app.c -o "$WORK/obj-$cfg/app-$app.o" &&
        gcc $flags $link -o "$out/$app" "$WORK/obj-$cfg/app-$app.o" "$WORK/obj-$cfg"/src_*.o -ljpeg -lm -lpthread || exit 1
      done)
}

# compile_at CONFIG OUT FLAGS: imginfo and jasper into OUT.
compile_at() {
  local cfg=$1 out=$2 flags=$3 srcs
  config_header
  srcs=$(cd "$SRC" && ls src/libjasper/*/*.c | grep -vE '^src/libjasper/(heic|dummy)/')
  if echo "$srcs" | grep -q 'jpg/jpg_dec\.c'; then srcs=$(echo "$srcs" | grep -v 'jpg/jpg_dummy\.c'); fi
  # A few commits of late 2016 declare helpers `inline` in headers without an external
  # definition (C99 semantics): they link only with GNU89 inline semantics.
  compile "$cfg" "$out" "$flags" "$srcs" "" || compile "$cfg" "$out" "$flags" "$srcs" "-fgnu89-inline"
}

probes() { echo imginfo pnm jpc bmp; }
variants() { probes; }
invocation() {
  case $2 in
    imginfo) CMD=(imginfo -f "$WORK/poc/$1") ;;
    *) CMD=(jasper -f "$WORK/poc/$1" -F "out.$2" -T "$2") ;;
  esac
}

bisect_all
