#!/bin/bash
# Crashes of libarchive (https://github.com/libarchive/libarchive), read through its
# bsdtar, each labeled by the upstream commit that stops it, for `bt rules eval`.
#
# libarchive keeps the archives of its reader tests uuencoded in libarchive/test/:
# well-formed samples of every format and, among them, the fuzzers' and reporters'
# archives of fixed crashes, some added with the fix and some after it. So the fix is
# found by bisection along the first-parent history of master (bisect.sh), for every
# archive of the range's last commit. Configurations:
#   dbg   gcc -O0 -g                               plain build
#   rel   gcc -O2 -g                               plain build
#   asan  gcc -O1 -g -fsanitize=address           sanitizer build
# Each archive is read three ways: `bsdtar -tvf F` (list), `bsdtar -xOf F` (extract
# to standard output) and `bsdtar -xf F` (extract into an empty directory); whether a
# commit crashes is decided by the first two. A run is limited to 2 s.
#
# libarchive is compiled here without its build system: every .c of libarchive/,
# tar/ and libarchive_fe/, with one config.h that CMake makes once, at the range's
# last commit (zlib, bzip2, xz and libxml2; no crypto library, no ACLs or extended
# attributes). Older sources read only the subset of it they know. Builds go through
# ccache.
#
# Output: OUT-plain.jsonl (dbg and rel) and OUT-asan.jsonl, scored separately.
#
# usage: libarchive.sh REPO OUT [SINCE UNTIL [STEP]]
#   REPO: a clone of libarchive (the history is what is used)
#   env: BT (the bt binary), WORK (default /tmp/bt-corpus-libarchive), CONFIGS
#        (default "dbg asan rel")
# Needs gcc, cmake, ccache, uudecode (sharutils), jq, and the headers of zlib, bzip2,
# xz and libxml2 (zlib1g-dev libbz2-dev liblzma-dev libxml2-dev). Never changes
# core_pattern: it must be a file name (like `core`), not a pipe.
set -u
usage="usage: libarchive.sh REPO OUT [SINCE UNTIL [STEP]]"
REPO=$(cd "${1:?$usage}" && pwd)
OUT=${2:?$usage}
SINCE=${3:-2014-01-01}
UNTIL=${4:-2026-08-31}
STEP=${5:-128}
BT=${BT:-bt}
WORK=${WORK:-/tmp/bt-corpus-libarchive}
CONFIGS=${CONFIGS:-dbg asan rel}
TIMEOUT=2
NAME=libarchive
# shellcheck source=tests/corpus/real/common.sh
. "$(dirname "$0")/common.sh"
# shellcheck source=tests/corpus/real/bisect.sh
. "$(dirname "$0")/bisect.sh"
preflight gcc cmake ccache uudecode jq
for h in zlib.h bzlib.h lzma.h libxml2/libxml/xmlreader.h; do
  [ -f "/usr/include/$h" ] || { echo "$NAME: /usr/include/$h is needed" >&2; exit 1; }
done
first_parents "$REPO"
echo "$NAME: ${#COMMITS[@]} commits from ${COMMITS[0]:0:9} to ${LAST:0:9}" >&2

# The reproducers: every uuencoded archive of libarchive/test at the last commit.
git -C "$SRC" ls-tree -r --name-only "$LAST" libarchive/test | grep '\.uu$' |
  while read -r p; do
    git -C "$SRC" show "$LAST:$p" | uudecode -o "$WORK/poc/$(basename "$p" .uu)" 2>/dev/null
  done
mapfile -t POCS < <(ls "$WORK/poc")
echo "$NAME: ${#POCS[@]} reproducers" >&2

# The one config.h, made by CMake at the last commit.
if [ ! -f "$WORK/config.h" ]; then
  git -C "$SRC" checkout -q -f "$LAST" && git -C "$SRC" clean -qfdx || exit 1
  rm -rf "$WORK/cmake"
  cmake -S "$SRC" -B "$WORK/cmake" -DENABLE_TEST=OFF -DENABLE_CPIO=OFF -DENABLE_CAT=OFF \
    -DENABLE_UNZIP=OFF -DENABLE_OPENSSL=OFF -DENABLE_MBEDTLS=OFF -DENABLE_NETTLE=OFF \
    -DENABLE_CNG=OFF -DENABLE_ACL=OFF -DENABLE_XATTR=OFF -DENABLE_LIBB2=OFF -DENABLE_LZ4=OFF \
    -DENABLE_ZSTD=OFF -DENABLE_LZO=OFF -DENABLE_EXPAT=OFF -DENABLE_LIBXML2=ON \
    >"$WORK/cmake.log" 2>&1 && cp "$WORK/cmake/config.h" "$WORK/config.h" ||
    { echo "$NAME: cmake failed, see $WORK/cmake.log" >&2; exit 1; }
fi

# compile FLAGS OBJ OUT: the library, bsdtar's front end and bsdtar, linked as OUT/bsdtar.
# Other systems' files (ACL maps, Windows I/O) are left out; some years did not guard
# them with #ifdef.
compile() {
  local flags=$1 obj=$2 out=$3
  rm -f "$obj"/*.o
  # shellcheck disable=SC2086
  (cd "$SRC" && ls libarchive/*.c tar/*.c libarchive_fe/*.c |
     grep -vE '_(darwin|freebsd|sunos|windows|linux)\.c$' | xargs -P"$(nproc)" -I{} sh -c \
       'ccache gcc '"$flags"' -w -DHAVE_CONFIG_H -I. -Ilibarchive -Ilibarchive_fe -I/usr/include/libxml2 -c {} -o "'"$obj"'/$(echo {} | tr / _).o"' &&
   gcc $flags -o "$out/bsdtar" "$obj"/*.o -lz -lbz2 -llzma -lxml2 -lpthread)
}

# compile_at CONFIG OUT FLAGS: bsdtar into OUT. Some commits do not build this way
# (autumn 2014's encryption support needs a crypto library); bisection steps over them.
compile_at() {
  cp "$WORK/config.h" "$SRC/config.h" && compile "$3" "$WORK/obj-$1" "$2"
}

probes() { echo list cat; }
variants() { echo list cat extract; }
invocation() {
  case $2 in
    list) CMD=(bsdtar -tvf "$WORK/poc/$1") ;;
    cat) CMD=(bsdtar -xOf "$WORK/poc/$1") ;;
    extract) CMD=(bsdtar -xf "$WORK/poc/$1") ;;
  esac
}

bisect_all
