# Sourced by every corpus script (jerryscript.sh, tcpdump.sh, jasper.sh, openjpeg.sh,
# nasm.sh, libarchive.sh): the checks before a run and the corpus line of one crash. The script
# sets NAME (its messages' prefix) and OUT. Not run on its own.

# preflight TOOL…: core_pattern must be a file name (the scripts never change it) and
# the tools must be installed.
preflight() {
  local t
  case "$(cat /proc/sys/kernel/core_pattern)" in
    \|*) echo "$NAME: core_pattern is a pipe; set it to 'core'" >&2; exit 1 ;;
  esac
  for t in "$@"; do command -v "$t" >/dev/null || { echo "$NAME: $t is needed" >&2; exit 1; }; done
}

# record SNAPSHOT LABEL VARIANT: appends the faulting thread's frames and bt's
# classifiers of one traced crash to $OUT.tmp as a corpus line.
record() { # snapshot label variant
  jq -c --arg lab "$2" --arg var "$3" '
    {"label": $lab, "variant": $var, "classifiers": (.classifiers // []),
     "frames": [ ((([.threads[] | select(.faulted)] | first) // .threads[0]).frames // [])[]
               | {function, "module": .module, module_offset, pc, file, line, inlined, trust} ]}' \
    "$1" >> "$OUT.tmp"
}
