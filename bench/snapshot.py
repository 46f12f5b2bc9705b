#!/usr/bin/env python3
"""Memory and write throughput while a BGSAVE runs under a heavy write load, Shoal against
redis-server in the same run.

Each server (pinned to CPU 0) is loaded with `--keys` strings of 64 bytes, then
redis-benchmark (pinned to CPU 1) overwrites random keys (SET, pipeline 16, 50 clients) while
BGSAVE runs. The script samples memory every 10 ms until the save ends:

- redis-server forks: the extra memory is the child's private dirty pages (the copies that
  copy-on-write made), read from /proc/<child>/smaps_rollup, plus the parent's growth.
- Shoal does not fork: the extra memory is the growth of its RSS over the RSS just before the
  save (with the write load already running).

It prints the peak extra memory (absolute, and as a share of the RSS before), how long the
save took, and the SET rate during the save. With `--loadgen`, it then runs shoal-loadgen's
SET load (pipeline 16, 50 clients) for 1.5 s without a save and for 1.5 s starting with a
BGSAVE, and prints the rate and p99 latency of each (the load's own view of a snapshot).

    bench/snapshot.py --shoal target/release/shoal-server [--keys 1000000]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import start, stop  # noqa: E402
from memory import rss_bytes, send_all  # noqa: E402


def smaps_private_dirty(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Private_Dirty:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # the child just exited
        pass
    return 0


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def info(port, section):
    out = subprocess.run(["redis-cli", "-p", str(port), "info", section], capture_output=True, text=True).stdout
    return dict(line.split(":", 1) for line in out.splitlines() if ":" in line)


LATENCY_WINDOW_S = 1.5


def set_load(loadgen, port, keys):
    """(SETs/s, p99 ms) of shoal-loadgen's SET load, pipeline 16, 50 clients, for LATENCY_WINDOW_S."""
    out = subprocess.run(["taskset", "-c", "1", loadgen, "-p", str(port), "-w", "set", "-r", str(keys), "-d", "64", "-P", "16", "-c", "50",
                          "--seconds", str(LATENCY_WINDOW_S), "--csv"], capture_output=True, text=True, check=True).stdout
    fields = out.splitlines()[1].split(",")
    return float(fields[1]), float(fields[3])


def run(kind, binary, keys, loadgen=None):
    workdir = tempfile.mkdtemp(prefix=f"snapshot-{kind}-")
    proc, port = start(kind, binary, 1, "0", workdir)
    try:
        # The keys redis-benchmark -r writes (key:%012d), so its SETs overwrite and the
        # dataset does not grow during the save.
        send_all(port, [("SET", f"key:{i:012d}", b"v" * 64) for i in range(keys)])
        time.sleep(0.5)
        bench = subprocess.Popen(["taskset", "-c", "1", "redis-benchmark", "-p", str(port), "-t", "set", "-r", str(keys), "-d", "64",
                                  "-P", "16", "-c", "50", "-n", str(keys * 20), "-q", "--csv"],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        time.sleep(1.0)  # the write load is running
        # Measured under the write load, so growth the writes cause by themselves is not
        # counted as the save's.
        before = rss_bytes(proc.pid)
        sets_before = int(info(port, "stats").get("total_commands_processed", "0").strip())
        started = time.time()
        subprocess.run(["redis-cli", "-p", str(port), "bgsave"], capture_output=True)
        peak = 0
        while True:
            extra = rss_bytes(proc.pid) - before
            for child in children(proc.pid):
                extra += smaps_private_dirty(child)
            peak = max(peak, extra)
            if info(port, "persistence").get("rdb_bgsave_in_progress", "1").strip() == "0":
                break
            time.sleep(0.01)
        elapsed = time.time() - started
        sets_after = int(info(port, "stats").get("total_commands_processed", "0").strip())
        bench.kill()
        bench.wait()
        ok = info(port, "persistence").get("rdb_last_bgsave_status", "?").strip()
        size = os.path.getsize(os.path.join(workdir, "dump.rdb")) if os.path.exists(os.path.join(workdir, "dump.rdb")) else 0
        result = {"before": before, "peak": peak, "seconds": elapsed, "sets_per_s": (sets_after - sets_before) / max(elapsed, 1e-9),
                  "status": ok, "file": size}
        if loadgen:
            # The write load's own view: SETs/s and p99 over LATENCY_WINDOW_S seconds without
            # a save, then over the same window starting with a BGSAVE.
            result["quiet"] = set_load(loadgen, port, keys)
            subprocess.run(["redis-cli", "-p", str(port), "bgsave"], capture_output=True)
            result["saving"] = set_load(loadgen, port, keys)
            while info(port, "persistence").get("rdb_bgsave_in_progress", "1").strip() != "0":
                time.sleep(0.05)
        return result
    finally:
        stop(proc)
        subprocess.run(["rm", "-rf", workdir])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--shoal", default="target/release/shoal-server")
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--loadgen", default=None, help="shoal-loadgen: also measure the write load's p99 during a save")
    args = parser.parse_args()
    servers = [("redis", None), ("shoal", args.shoal)]
    print(f"BGSAVE of {args.keys} keys (64-byte values) under redis-benchmark SET -P 16 -c 50 over the same keys")
    print(f"{'server':8} {'rss before':>12} {'peak extra':>12} {'extra %':>8} {'save s':>7} {'SET/s during':>13} {'file':>11} status")
    for _ in range(args.rounds):
        for name, binary in servers:
            r = run(name, binary, args.keys, args.loadgen)
            line = (f"{name:8} {r['before'] / 1e6:10.1f}MB {r['peak'] / 1e6:10.1f}MB {100 * r['peak'] / r['before']:7.1f}% {r['seconds']:7.2f} "
                    f"{r['sets_per_s']:13,.0f} {r['file'] / 1e6:9.1f}MB {r['status']}")
            if args.loadgen:
                (quiet_rate, quiet_p99), (saving_rate, saving_p99) = r["quiet"], r["saving"]
                line += f"   SET/s {quiet_rate:,.0f} p99 {quiet_p99:.3f} ms; with BGSAVE {saving_rate:,.0f} p99 {saving_p99:.3f} ms"
            print(line)


if __name__ == "__main__":
    main()
