#!/bin/bash
# Crashes of OpenJPEG (https://github.com/uclouvain/openjpeg), the JPEG-2000 reference
# codec, each labeled by the upstream commit that stops it, for `bt rules eval`.
#
# OpenJPEG's non-regression suite (tests/nonregression/test_suite.ctest.in) decodes
# the fuzzers' and reporters' files it keeps in a second repository, openjpeg-data
# (input/nonregression/). The files are added there, not in the fix commit, so the
# fix is found by bisection along the first-parent history of master (bisect.sh).
# Configurations:
#   dbg   gcc -O0 -g                               plain build
#   rel   gcc -O2 -g                               plain build
#   asan  gcc -O1 -g -fsanitize=address           sanitizer build
# Each file is run as `opj_dump -i F`, `opj_decompress -i F -o out.pgx`, with `-r 1`
# (one resolution less), `-o out.raw`, and with the options of its own lines in the
# suite (`-d` areas, `-t` tiles, `-l` layers …); whether a commit crashes is decided
# by the first two.
#
# OpenJPEG is compiled here without CMake: the library's .c files and the two
# programs, with opj_config.h, opj_config_private.h and opj_apps_config.h made from
# the commit's own templates (no PNG, TIFF or LCMS). Builds go through ccache.
#
# Output: OUT-plain.jsonl (dbg and rel) and OUT-asan.jsonl, scored separately.
#
# usage: openjpeg.sh REPO DATA OUT [SINCE UNTIL [STEP]]
#   REPO: a clone of openjpeg; DATA: a clone of openjpeg-data
#   env: BT (the bt binary), WORK (default /tmp/bt-corpus-openjpeg), CONFIGS
#        (default "dbg asan rel")
# Needs gcc, ccache, jq. Never changes core_pattern: it must be a file name (like
# `core`), not a pipe.
set -u
usage="usage: openjpeg.sh REPO DATA OUT [SINCE UNTIL [STEP]]"
REPO=$(cd "${1:?$usage}" && pwd)
DATA=$(cd "${2:?$usage}" && pwd)
OUT=${3:?$usage}
SINCE=${4:-2014-01-01}
UNTIL=${5:-2020-12-31}
STEP=${6:-128}
BT=${BT:-bt}
WORK=${WORK:-/tmp/bt-corpus-openjpeg}
CONFIGS=${CONFIGS:-dbg asan rel}
NAME=openjpeg
# shellcheck source=tests/corpus/real/common.sh
. "$(dirname "$0")/common.sh"
# shellcheck source=tests/corpus/real/bisect.sh
. "$(dirname "$0")/bisect.sh"
preflight gcc ccache jq
first_parents "$REPO"

# The reproducers: every input of an opj_decompress or opj_dump line of the suite at
# the range's last commit, and the options of those lines.
git -C "$SRC" show "$LAST:tests/nonregression/test_suite.ctest.in" |
  grep -E '^!?opj_(decompress|dump) ' > "$WORK/suite"
DATA_REV=$(git -C "$DATA" rev-parse HEAD)
POCS=()
for f in $(grep -oE '@INPUT_NR_PATH@/[^ ]+' "$WORK/suite" | sed 's#.*/##' | sort -u); do
  git -C "$DATA" show "$DATA_REV:input/nonregression/$f" > "$WORK/poc/$f" 2>/dev/null && POCS+=("$f")
done

probes() { echo dump pgx; }
# The suite's own option sets for a file, as variant names (`_` for spaces).
variants() {
  echo dump pgx r1 raw
  grep -F "@INPUT_NR_PATH@/$1 " "$WORK/suite" | grep '^!\?opj_decompress' |
    sed -E 's/^!?opj_decompress//; s/-i +@INPUT_NR_PATH@\/[^ ]+//; s/-o +@TEMP_PATH@\/[^ ]+//' |
    tr -s ' ' | sed 's/^ //; s/ $//' | grep -v '^$' | tr ' ' '_' | sed 's/^/opt:/' | sort -u
}
invocation() {
  local poc=$WORK/poc/$1 opts
  case $2 in
    dump) CMD=(opj_dump -i "$poc") ;;
    pgx) CMD=(opj_decompress -i "$poc" -o out.pgx) ;;
    r1) CMD=(opj_decompress -i "$poc" -o out.pgx -r 1) ;;
    raw) CMD=(opj_decompress -i "$poc" -o out.raw) ;;
    opt:*) opts=${2#opt:}; read -ra opts <<< "${opts//_/ }"
      CMD=(opj_decompress -i "$poc" -o out.pgx "${opts[@]}") ;;
  esac
}

# The three configuration headers from the checked-out commit's templates.
config_headers() {
  local t out
  for t in src/lib/openjp2/opj_config.h.cmake.in src/lib/openjp2/opj_config_private.h.cmake.in \
           src/bin/common/opj_apps_config.h.cmake.in; do
    [ -f "$SRC/$t" ] || continue
    out=$WORK/include/$(basename "$t" .cmake.in)
    sed -E \
      -e 's/^#cmakedefine[[:space:]]+(OPJ_HAVE_(LIBPNG|PNG_H|LIBTIFF|TIFF_H|LIBLCMS[12]|LCMS[12]_H|_ALIGNED_MALLOC)|OPJ_BIG_ENDIAN)([[:space:]].*)?$/\/* #undef \1 *\//' \
      -e 's/^#cmakedefine[[:space:]]+_FILE_OFFSET_BITS.*/#define _FILE_OFFSET_BITS 64/' \
      -e 's/^#cmakedefine[[:space:]]+([A-Za-z0-9_]+)([[:space:]].*)?$/#define \1 1/' \
      -e 's/@OPENJPEG_VERSION_MAJOR@/2/; s/@OPENJPEG_VERSION_MINOR@/0/; s/@OPENJPEG_VERSION_BUILD@/0/' \
      -e 's/@PACKAGE_VERSION@/2.0.0/; s/@[A-Za-z_]+@/1/g' \
      "$SRC/$t" > "$out"
  done
}

# compile_at CONFIG OUT FLAGS: opj_decompress and opj_dump into OUT.
compile_at() {
  local cfg=$1 out=$2 flags=$3 srcs extra c app
  rm -rf "$WORK/include" && mkdir -p "$WORK/include" && config_headers
  flags="$flags -std=gnu99 -w -DOPJ_STATIC -DMUTEX_pthread -I$WORK/include -Isrc/lib/openjp2 -Isrc/bin/common -Isrc/bin/jp2"
  srcs=$(cd "$SRC" && ls src/lib/openjp2/*.c | grep -vE '/(bench_dwt|t1_generate_luts|test_.*|.*_test|cidx_manager|phix_manager|ppix_manager|thix_manager|tpix_manager)\.c$')
  rm -f "$WORK/obj-$cfg"/*.o
  # opj_decompress of some years defines its own opj_clock, as the library does.
  # shellcheck disable=SC2086
  (cd "$SRC" && echo "$srcs" | xargs -P"$(nproc)" -I{} sh -c \
        'ccache gcc '"$flags"' -c {} -o "'"$WORK/obj-$cfg"'/lib_$(basename {} .c).o"' &&
      extra=$(ls src/bin/jp2/convert.c src/bin/jp2/convertbmp.c src/bin/jp2/index.c \
                 src/bin/common/color.c src/bin/common/opj_getopt.c 2>/dev/null; true) &&
      for c in $extra; do ccache gcc $flags -c "$c" -o "$WORK/obj-$cfg/bin_$(basename "$c" .c).o" || exit 1; done &&
      for app in opj_decompress opj_dump; do
        ccache gcc $flags -c src/bin/jp2/$app.c -o "$WORK/obj-$cfg/app_$app.o" &&
        gcc $flags -Wl,--allow-multiple-definition -o "$out/$app" "$WORK/obj-$cfg/app_$app.o" "$WORK/obj-$cfg"/bin_*.o "$WORK/obj-$cfg"/lib_*.o -lm -lpthread || exit 1
      done)
}

echo "$NAME: ${#COMMITS[@]} commits from ${COMMITS[0]:0:9} to ${LAST:0:9}, ${#POCS[@]} reproducers" >&2
bisect_all
