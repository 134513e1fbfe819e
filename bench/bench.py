#!/usr/bin/env python3
"""`make bench`: bt ptrace against gdb, lldb, eu-stack and eu-stack -i -s on two workloads,
live and core, measured in the same run: median wall time and peak RSS.

Workloads (rebuilt from scratch every run, into $OUT):
  threads1000  a C process with 1000 threads at recursion depths 1..50, all blocked
  big_dwarf    a C++ program over dozens of shared libraries with ~$BENCH_DWARF_MB MB
               of DWARF (gen_dwarf.py), a few threads parked deep in inlined code

Environment: BT (bt binary), OUT (scratch dir), BENCH_DWARF_MB (1200),
BENCH_DWARF_UNITS (1: compile units per library; more units = smaller CUs), BENCH_RUNS (5),
BENCH_GDB_RUNS (3, for gdb and lldb, which take most of the time), BENCH_ONLY (threads|dwarf),
BENCH_REUSE=1 (development only: keep an existing build instead of rebuilding).
Needs root: cores are written through a temporary core_pattern, restored on exit.
"""
import fcntl
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BT = os.environ.get("BT") or sys.exit("BT must point at the bt binary")
OUT = os.path.abspath(os.environ.get("OUT", os.path.join(HERE, "..", "target", "bench")))
DWARF_MB = int(os.environ.get("BENCH_DWARF_MB", "1200"))
DWARF_UNITS = int(os.environ.get("BENCH_DWARF_UNITS", "1"))
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
GDB_RUNS = int(os.environ.get("BENCH_GDB_RUNS", "3"))
ONLY = os.environ.get("BENCH_ONLY", "")
REUSE = os.environ.get("BENCH_REUSE") == "1"
CORE_PATTERN = "/proc/sys/kernel/core_pattern"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run(cmd, **kw):
    log("$ " + " ".join(cmd))
    subprocess.run(cmd, check=True, **kw)


# --------------------------------------------------------------------------- build

def build_threads():
    exe = os.path.join(OUT, "threads1000")
    if REUSE and os.path.exists(exe):
        return exe
    run(["gcc", "-O0", "-g", "-pthread", "-o", exe, os.path.join(HERE, "threads1000.c")])
    return exe


def dwarf_bytes(paths):
    total = 0
    for p in paths:
        out = subprocess.run(["readelf", "-S", "-W", p], capture_output=True, text=True).stdout
        for line in out.splitlines():
            f = line.replace("[ ", "[").split()
            if len(f) > 5 and f[1].startswith(".debug"):
                total += int(f[5], 16)
    return total


def build_big():
    d = os.path.join(OUT, "big")
    exe = os.path.join(d, "big_dwarf")
    if not (REUSE and os.path.exists(exe)):
        shutil.rmtree(d, ignore_errors=True)
        run([sys.executable, os.path.join(HERE, "gen_dwarf.py"), "--mb", str(DWARF_MB), "--units", str(DWARF_UNITS), "--out", d])
        t0 = time.time()
        # Niced: the build must not starve whatever else runs on the machine.
        run(["nice", "-n", "19", "make", "-s", "-C", d, "-j2"])
        log(f"built big_dwarf in {time.time() - t0:.0f} s")
    objs = [os.path.join(d, f) for f in os.listdir(d) if f.endswith(".so")] + [exe]
    size = dwarf_bytes(objs)
    n_libs = len(objs) - 1
    return exe, size, n_libs


# --------------------------------------------------------------------------- processes

def start_forever(exe, n_tasks_min):
    p = subprocess.Popen([exe, "forever"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         cwd=os.path.dirname(exe))
    line = p.stdout.readline().decode().strip()
    if line != "ready":
        p.kill()
        sys.exit(f"{exe} did not get ready (printed {line!r})")
    deadline = time.time() + 60
    while time.time() < deadline:
        states = task_states(p.pid)
        if len(states) >= n_tasks_min and all(s == "S" for s in states):
            break
        time.sleep(0.1)
    return p


def task_states(pid):
    states = []
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{t}/stat") as f:
                    s = f.read()
                states.append(s[s.rindex(")") + 2])
            except OSError:
                pass
    except OSError:
        pass
    return states


class CorePattern:
    """Points core_pattern at a directory for a short while; restores the old value on
    exit and on signals. Takes the lock the integration tests take (tests/common), so
    the two never fight over the pattern."""

    LOCK = "/tmp/bt-tests-core_pattern.lock"

    def __init__(self, directory):
        self.dir = directory

    def __enter__(self):
        self.lock = open(self.LOCK, "a")
        fcntl.flock(self.lock, fcntl.LOCK_EX)
        with open(CORE_PATTERN) as f:
            self.previous = f.read().rstrip("\n")
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, self._on_signal)
        with open(CORE_PATTERN, "w") as f:
            f.write(os.path.join(self.dir, "core.%p"))
        return self

    def _on_signal(self, signo, frame):
        self.restore()
        sys.exit(128 + signo)

    def restore(self):
        with open(CORE_PATTERN, "w") as f:
            f.write(self.previous)

    def __exit__(self, *exc):
        self.restore()
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_DFL)
        self.lock.close()


def make_core(exe, cores_dir):
    def unlimited():
        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    with CorePattern(cores_dir):
        p = subprocess.Popen([exe, "crash"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             cwd=os.path.dirname(exe), preexec_fn=unlimited)
        rc = p.wait(timeout=300)
    core = os.path.join(cores_dir, f"core.{p.pid}")
    if rc >= 0 or not os.path.exists(core):
        sys.exit(f"{exe} crash: exit {rc}, no core at {core}")
    dest = os.path.join(cores_dir, os.path.basename(exe) + ".core")
    os.rename(core, dest)
    return dest


# --------------------------------------------------------------------------- measuring

def measure(cmd, pid=None):
    """One run under /usr/bin/time: (wall seconds, peak RSS MB, frames printed, ok)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf, \
         tempfile.NamedTemporaryFile("r", suffix=".out") as of:
        t0 = time.time()
        r = subprocess.run(["/usr/bin/time", "-f", "%e %M", "-o", tf.name] + cmd,
                           stdout=open(of.name, "w"), stderr=subprocess.PIPE, timeout=1800)
        wall = time.time() - t0
        fields = tf.read().split()
        rss_mb = int(fields[-1]) / 1024 if fields else float("nan")
        frames = sum(1 for line in open(of.name, errors="replace")
                     if re.match(r"\s*#\d+|\d+\s+0x[0-9a-f]+ in |\s*\*?\s*frame #\d+", line))
        ok = r.returncode == 0
        err = "" if ok else r.stderr.decode(errors="replace").strip().splitlines()[-1:]
    if pid is not None:
        stopped = [s for s in task_states(pid) if s in "tT"]
        if stopped:
            log(f"WARNING: {cmd[0]} left {len(stopped)} threads of {pid} stopped; continuing them")
            os.kill(pid, signal.SIGCONT)
    return wall, rss_mb, frames, ok, err


TOOLS = [
    # name, live argv, core argv
    # A plain backtrace (inlines and lines, no variables): the like-for-like peer of
    # gdb's `thread apply all bt` and eu-stack; bench/variables.py measures variables.
    ("bt", lambda pid: [BT, "ptrace", "--no-variables", str(pid)],
           lambda core, exe: [BT, "ptrace", "--no-variables", "--core", core, exe]),
    # The same with bt's caches off (no ~/.cache/bt/{sections,index} read or written):
    # a first trace of binaries bt has never seen. The row above reuses what earlier
    # runs cached, as a trace on a machine that has traced these binaries before.
    ("bt no-cache", lambda pid: ["env", "BT_NO_CACHE=1", BT, "ptrace", "--no-variables", str(pid)],
                    lambda core, exe: ["env", "BT_NO_CACHE=1", BT, "ptrace", "--no-variables", "--core", core, exe]),
    ("gdb", lambda pid: ["gdb", "-batch", "-nx", "-ex", "set pagination off", "-ex", "thread apply all bt", "-p", str(pid)],
            lambda core, exe: ["gdb", "-batch", "-nx", "-ex", "set pagination off", "-ex", "thread apply all bt", exe, core]),
    # lldb's like-for-like command; it detaches before it quits. (Debian's lldb 14 prints a
    # Python traceback at start, its scripting module misplaced; the backtrace is whole.)
    ("lldb", lambda pid: ["lldb", "--batch", "--no-lldbinit", "-p", str(pid), "-o", "thread backtrace all",
                          "-o", "process detach"],
             lambda core, exe: ["lldb", "--batch", "--no-lldbinit", exe, "-c", core, "-o", "thread backtrace all"]),
    ("eu-stack", lambda pid: ["eu-stack", "-p", str(pid)],
                 lambda core, exe: ["eu-stack", "--core", core, "-e", exe]),
    ("eu-stack -i -s", lambda pid: ["eu-stack", "-i", "-s", "-p", str(pid)],
                       lambda core, exe: ["eu-stack", "-i", "-s", "--core", core, "-e", exe]),
]


def bench_one(workload, mode, argv_for, pid=None):
    rows = []
    for name, live, core in TOOLS:
        cmd = live(pid) if mode == "live" else core(*argv_for)
        n = GDB_RUNS if name in ("gdb", "lldb") else RUNS
        results = [measure(cmd, pid if mode == "live" else None) for _ in range(n)]
        ok = all(r[3] for r in results)
        row = {
            "workload": workload, "mode": mode, "tool": name, "runs": n,
            "wall": statistics.median(r[0] for r in results),
            "rss_mb": statistics.median(r[1] for r in results),
            "frames": results[-1][2], "ok": ok,
            "error": "" if ok else " ".join(next(r[4] for r in results if not r[3])),
        }
        log(f"  {workload:<12} {mode:<4} {name:<15} {row['wall']:8.3f} s {row['rss_mb']:8.1f} MB "
            f"{row['frames']:6d} frames{'' if ok else '  FAILED: ' + row['error']}")
        rows.append(row)
    return rows


def table(rows):
    lines = []
    hdr = f"{'workload':<22} {'mode':<5} {'tool':<15} {'wall s':>9} {'peak MB':>9} {'frames':>7} {'tool/bt time':>13} {'tool/bt RSS':>12}"
    lines.append(hdr)
    lines.append("-" * len(hdr))
    for r in rows:
        bt_row = next(x for x in rows if x["workload"] == r["workload"] and x["mode"] == r["mode"] and x["tool"] == "bt")
        ratio = rss_ratio = ""
        if r["tool"] != "bt" and bt_row["ok"] and bt_row["wall"] > 0:
            ratio = f"{r['wall'] / bt_row['wall']:.1f}x"
            rss_ratio = f"{r['rss_mb'] / bt_row['rss_mb']:.1f}x" if bt_row["rss_mb"] > 0 else ""
        status = "" if r["ok"] else f"  FAILED: {r['error'][:60]}"
        lines.append(f"{r['workload']:<22} {r['mode']:<5} {r['tool']:<15} {r['wall']:9.3f} {r['rss_mb']:9.1f} "
                     f"{r['frames']:7d} {ratio:>13} {rss_ratio:>12}{status}")
    return "\n".join(lines)


def goals(rows, big_name):
    def get(w, m, t):
        return next((x for x in rows if x["workload"] == w and x["mode"] == m and x["tool"] == t), None)
    checks = []
    for mode in ("live", "core"):
        bt = get(big_name, mode, "bt")
        if bt:
            g, e = get(big_name, mode, "gdb"), get(big_name, mode, "eu-stack -i -s")
            checks.append((f"{big_name} {mode}: bt >= 100x faster than gdb", bt["ok"] and g["wall"] / bt["wall"] >= 100))
            ll = get(big_name, mode, "lldb")
            checks.append((f"{big_name} {mode}: bt >= 100x faster than lldb",
                           bt["ok"] and ll is not None and ll["ok"] and ll["wall"] / bt["wall"] >= 100))
            checks.append((f"{big_name} {mode}: bt >= 10x faster than eu-stack -i -s", bt["ok"] and e["wall"] / bt["wall"] >= 10))
            checks.append((f"{big_name} {mode}: bt peak RSS < 200 MB", bt["ok"] and bt["rss_mb"] < 200))
            nc = get(big_name, mode, "bt no-cache")
            if nc:
                checks.append((f"{big_name} {mode}: bt with no cache >= 10x faster than eu-stack -i -s "
                               f"({e['wall'] / nc['wall']:.1f}x)", nc["ok"] and e["wall"] / nc["wall"] >= 10))
        bt = get("threads1000", mode, "bt")
        if bt:
            e = get("threads1000", mode, "eu-stack")
            checks.append((f"threads1000 {mode}: bt >= 3x faster than eu-stack", bt["ok"] and e["wall"] / bt["wall"] >= 3))
            ll = get("threads1000", mode, "lldb")
            checks.append((f"threads1000 {mode}: bt >= 10x faster than lldb",
                           bt["ok"] and ll is not None and ll["ok"] and ll["wall"] / bt["wall"] >= 10))
    return "\n".join(f"  [{'PASS' if ok else 'FAIL'}] {what}" for what, ok in checks)


def main():
    if os.geteuid() != 0:
        sys.exit("make bench writes core_pattern and attaches to processes: run it as root")
    os.makedirs(OUT, exist_ok=True)
    cores = os.path.join(OUT, "cores")
    shutil.rmtree(cores, ignore_errors=True)
    os.makedirs(cores)
    os.chmod(cores, 0o777)
    rows = []
    info = []
    if ONLY in ("", "threads"):
        exe = build_threads()
        log("threads1000: live")
        p = start_forever(exe, 1001)
        try:
            rows += bench_one("threads1000", "live", None, pid=p.pid)
        finally:
            p.kill()
            p.wait()
        log("threads1000: core")
        core = make_core(exe, cores)
        rows += bench_one("threads1000", "core", (core, exe))
        info.append(f"threads1000: 1000 blocked threads + main; core {os.path.getsize(core) >> 20} MB")
    if ONLY in ("", "dwarf"):
        exe, size, n_libs = build_big()
        name = f"big_dwarf {size / 1e9:.2f}GB"
        info.append(f"big_dwarf: {n_libs} shared libraries + executable, {size / 2**20:.0f} MiB of DWARF in all, "
                    f"{DWARF_UNITS} template CU(s) per library")
        # Warm the page cache so that every tool reads the same cached files.
        for f in os.listdir(os.path.dirname(exe)):
            if f.endswith(".so") or f == "big_dwarf":
                with open(os.path.join(os.path.dirname(exe), f), "rb") as fh:
                    while fh.read(1 << 24):
                        pass
        log(f"{name}: live")
        p = start_forever(exe, 5)
        try:
            rows += bench_one(name, "live", None, pid=p.pid)
        finally:
            p.kill()
            p.wait()
        log(f"{name}: core")
        core = make_core(exe, cores)
        rows += bench_one(name, "core", (core, exe))
    print()
    print(f"bt bench — {time.strftime('%Y-%m-%d %H:%M:%S')}, {os.cpu_count()} CPUs; "
          f"median of {RUNS} runs ({GDB_RUNS} for gdb and lldb); wall time and peak RSS from /usr/bin/time")
    for i in info:
        print("  " + i)
    print()
    print(table(rows))
    print()
    big = next((r["workload"] for r in rows if r["workload"].startswith("big_dwarf")), "big_dwarf")
    print("goals:")
    print(goals(rows, big))
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(rows, f, indent=1)
    print(f"\n(raw results: {os.path.join(OUT, 'results.json')})")


if __name__ == "__main__":
    main()
