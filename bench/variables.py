#!/usr/bin/env python3
"""Variables benchmark: `bt ptrace` with variables (all threads, the default) against
`gdb -batch -ex 'thread apply all bt full'` on the workloads of bench.py (large DWARF
and 1000 threads), live and core; a Go program's 1,000 goroutines against Delve's
`stack -full` of every goroutine (gdb sees only the OS threads); and the snapshot size
against the core size of a process with a few GB of heap (default memory budget).

Environment as bench.py (BT, OUT, BENCH_RUNS, BENCH_GDB_RUNS, BENCH_ONLY, BENCH_REUSE=1
to reuse built workloads), plus BENCH_HEAP_GB (2). Needs root (core_pattern, ptrace).
"""
import importlib.util
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("bench", os.path.join(HERE, "bench.py"))
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
HEAP_GB = int(os.environ.get("BENCH_HEAP_GB", "2"))

bench.TOOLS = [
    ("bt (variables)", lambda pid: [bench.BT, "ptrace", str(pid)],
                       lambda core, exe: [bench.BT, "ptrace", "--core", core, exe]),
    ("bt --no-variables", lambda pid: [bench.BT, "ptrace", "--no-variables", str(pid)],
                          lambda core, exe: [bench.BT, "ptrace", "--no-variables", "--core", core, exe]),
    ("gdb bt full", lambda pid: ["gdb", "-batch", "-nx", "-ex", "set pagination off", "-ex", "thread apply all bt full", "-p", str(pid)],
                    lambda core, exe: ["gdb", "-batch", "-nx", "-ex", "set pagination off", "-ex", "thread apply all bt full", exe, core]),
]

GDB_TOOLS = bench.TOOLS


def build_goroutines():
    exe = os.path.join(bench.OUT, "goroutines1000")
    if not (bench.REUSE and os.path.exists(exe)):
        env = dict(os.environ, HOME=bench.OUT, GOCACHE=os.path.join(bench.OUT, "gocache"), GOFLAGS="", GO111MODULE="off")
        subprocess.run(["go", "build", "-o", exe, os.path.join(HERE, "goroutines1000.go")], check=True, env=env)
    return exe


def delve(target):
    """Delve with every goroutine's `stack -full` (Delve numbers goroutines from 1 in
    creation order; ids it does not know are refused and skipped). On exit it asks
    whether to kill an attached process: no."""
    script = os.path.join(bench.OUT, "delve.init")
    with open(script, "w") as f:
        f.write("".join(f"goroutine {g} stack -full\n" for g in range(1, 1101)) + "exit\n")
    args = " ".join(target + ["--init", script, "--allow-non-terminal-interactive=true"])
    return ["sh", "-c", f"echo n | dlv {args}"]


GO_TOOLS = [
    GDB_TOOLS[0],
    ("dlv stack -full", lambda pid: delve(["attach", str(pid)]), lambda core, exe: delve(["core", exe, core])),
]

HEAP_C = r"""
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
struct blob { long id; char *data; struct blob *next; };
int main(int argc, char **argv) {
    long gb = atol(argv[1]);
    struct blob *head = NULL;
    for (long i = 0; i < gb * 16; i++) {          /* 64 MiB per blob */
        struct blob *b = malloc(sizeof *b);
        b->id = i; b->data = malloc(64L << 20); memset(b->data, (int)i, 64L << 20);
        b->next = head; head = b;
    }
    char note[64] = "heap is full";
    *(volatile int *)0 = (int)head->id + note[0];
    return 0;
}
"""


def heap_ratio(cores):
    src = os.path.join(bench.OUT, "heapy.c")
    exe = os.path.join(bench.OUT, "heapy")
    with open(src, "w") as f:
        f.write(HEAP_C)
    bench.run(["gcc", "-O0", "-g", "-o", exe, src])
    # make_core runs `EXE crash`; heapy reads its size from argv[1], so wrap it.
    wrapper = os.path.join(bench.OUT, "heapy-run")
    with open(wrapper, "w") as f:
        f.write(f"#!/bin/sh\nexec {exe} {HEAP_GB}\n")
    os.chmod(wrapper, 0o755)
    core = bench.make_core(wrapper, cores)
    snap = os.path.join(bench.OUT, "heapy.bt")
    subprocess.run([bench.BT, "ptrace", "--core", core, exe, "-o", snap], check=True, stderr=subprocess.DEVNULL)
    c, s = os.path.getsize(core), os.path.getsize(snap)
    os.remove(core)
    return c, s


def main():
    if os.geteuid() != 0:
        sys.exit("needs root")
    os.makedirs(bench.OUT, exist_ok=True)
    cores = os.path.join(bench.OUT, "cores")
    os.makedirs(cores, exist_ok=True)
    os.chmod(cores, 0o777)
    rows = []
    def live_and_core(name, exe, n_tasks):
        """The workload live (started in `forever` mode) and from its core."""
        p = bench.start_forever(exe, n_tasks)
        try:
            out = bench.bench_one(name, "live", None, pid=p.pid)
        finally:
            p.kill()
            p.wait()
        core = bench.make_core(exe, cores)
        out += bench.bench_one(name, "core", (core, exe))
        os.remove(core)
        return out

    if bench.ONLY in ("", "threads"):
        rows += live_and_core("threads1000", bench.build_threads(), 1001)
    if bench.ONLY in ("", "go"):
        bench.TOOLS = GO_TOOLS
        rows += live_and_core("goroutines1000", build_goroutines(), 2)
        bench.TOOLS = GDB_TOOLS
    if bench.ONLY in ("", "dwarf"):
        exe, size, _ = bench.build_big()
        rows += live_and_core(f"big_dwarf {size / 1e9:.2f}GB", exe, 5)
    print()
    print(f"{'workload':<22} {'mode':<5} {'tool':<18} {'wall s':>8} {'peak MB':>8} {'frames':>7} {'peer/bt time':>12}")
    peers = ("gdb bt full", "dlv stack -full")
    for r in rows:
        g = next((x for x in rows if x["workload"] == r["workload"] and x["mode"] == r["mode"] and x["tool"] in peers), None)
        ratio = f"{g['wall'] / r['wall']:.1f}x" if g and r["tool"].startswith("bt (") else ""
        print(f"{r['workload']:<22} {r['mode']:<5} {r['tool']:<18} {r['wall']:8.3f} {r['rss_mb']:8.1f} {r['frames']:7d} {ratio:>12}"
              + ("" if r["ok"] else "  FAILED " + r["error"]))
    if bench.ONLY in ("", "heap"):
        c, s = heap_ratio(cores)
        print(f"\nheap {HEAP_GB} GB: core {c / 2**20:.0f} MiB, snapshot {s / 2**10:.1f} KiB = {100 * s / c:.4f}% of the core")


if __name__ == "__main__":
    main()
