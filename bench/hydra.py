#!/usr/bin/env python3
"""hydra benchmark: a live process of 1,000 threads (examples/c/many_threads.c, with a
deadlock) snapshotted once; then

- time to the first screen and peak RSS of `bt hydra FILE --screen 200x50` (the whole
  process: start, decode, re-render the variables, group the threads, draw);
- `bt hydra PID --screen 200x50`: snapshot and first screen of the live process;
- the cost of a key (update + draw) over 400+ keys that walk the expanded thread
  list, page, switch every tab, search and jump between aliases (`--timings`);
- peers measured in the same run on the same process: `gdb -p PID -batch -ex 'info
  threads'` (the first thing a gdb user sees) and `-ex 'thread apply all bt'`.

Goals (issue 15): first screen under 200 ms and 100 MB RSS; every key under 16 ms.
Environment: BT (the bt binary), OUT (scratch directory), BENCH_RUNS (5).
"""
import os
import re
import statistics
import subprocess
import sys
import time

BT = os.environ["BT"]
OUT = os.path.join(os.environ.get("OUT", "/tmp/bt-bench"), "hydra")
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def timed(cmd):
    """(wall seconds, peak RSS KiB) of one run, output discarded."""
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"{cmd[0]} failed: {p.stderr.strip()[-400:]}")
    return wall, int(p.stderr.strip().splitlines()[-1])


def median_of(cmd, runs):
    samples = [timed(cmd) for _ in range(runs)]
    return statistics.median(s[0] for s in samples), max(s[1] for s in samples)


def main():
    os.makedirs(OUT, exist_ok=True)
    exe = os.path.join(OUT, "many_threads")
    subprocess.run(["gcc", "-O0", "-g", "-pthread", "-o", exe, os.path.join(ROOT, "examples/c/many_threads.c")], check=True)
    proc = subprocess.Popen([exe, "1000"], stdout=subprocess.PIPE, text=True)
    try:
        if proc.stdout.readline().strip() != "ready":
            sys.exit("many_threads did not start")
        time.sleep(0.5)
        snap = os.path.join(OUT, "many.bt")
        subprocess.run([BT, "ptrace", str(proc.pid), "-o", snap], check=True, stderr=subprocess.DEVNULL)
        screen = ["--screen", "200x50"]
        rows = []
        wall, rss = median_of([BT, "hydra", snap] + screen, RUNS)
        rows.append(("bt hydra FILE (first screen)", wall, rss))
        first_file, first_rss = wall, rss
        wall, rss = median_of([BT, "hydra", str(proc.pid)] + screen, RUNS)
        rows.append(("bt hydra PID (snapshot + first screen)", wall, rss))
        live = wall
        gdb = ["gdb", "-batch", "-nx", "-ex", "set pagination off"]
        wall, rss = median_of(gdb + ["-ex", "info threads", "-p", str(proc.pid)], max(1, RUNS // 2))
        rows.append(("gdb -p PID: info threads", wall, rss))
        gdb_info = wall
        wall, rss = median_of(gdb + ["-ex", "thread apply all bt", "-p", str(proc.pid)], max(1, RUNS // 2))
        rows.append(("gdb -p PID: thread apply all bt", wall, rss))
        gdb_bt = wall

        keys = ["BTab", "/idle", "Enter", "Right", "Escape"] + ["j"] * 300 + ["PageDown", "PageUp"] * 50
        keys += list("234567891") + ["Tab", "Tab", "f", "idle", "Enter", "n", "n", "N", "a", "a", "z", "z"]
        p = subprocess.run([BT, "hydra", snap, "--timings", "--keys", " ".join(keys)] + screen,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True)
        m = re.search(r"(\d+) keys: mean ([\d.]+) ms, max ([\d.]+) ms", p.stderr)
        if not m:
            sys.exit(f"no timings in: {p.stderr}")
        nkeys, mean_ms, max_ms = int(m.group(1)), float(m.group(2)), float(m.group(3))
    finally:
        proc.kill()
        proc.wait()

    print(f"\nhydra on a 1,000-thread live process (median of {RUNS} runs; gdb {max(1, RUNS // 2)})")
    print(f"{'':44} {'wall ms':>9} {'peak RSS MB':>12}")
    for name, wall, rss in rows:
        print(f"{name:44} {wall * 1e3:9.1f} {rss / 1024:12.1f}")
    print(f"\nratios: gdb 'info threads' / bt hydra PID = {gdb_info / live:.1f}x; "
          f"gdb 'thread apply all bt' / bt hydra PID = {gdb_bt / live:.1f}x; "
          f"gdb 'info threads' / bt hydra FILE = {gdb_info / first_file:.1f}x")
    print(f"keys: {nkeys} keys, mean {mean_ms:.2f} ms, max {max_ms:.2f} ms per key (update + draw)")
    goals = [
        ("first screen < 200 ms", first_file < 0.2),
        ("first screen < 100 MB RSS", first_rss < 100 * 1024),
        ("every key < 16 ms", max_ms < 16),
    ]
    for name, ok in goals:
        print(f"goal {name}: {'met' if ok else 'MISSED'}")


if __name__ == "__main__":
    main()
