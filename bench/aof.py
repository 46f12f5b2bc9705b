#!/usr/bin/env python3
"""Write throughput with the append-only file on, Shoal against redis-server in the same run.

For each `appendfsync` policy (always, everysec), each server starts in a fresh directory with
`appendonly yes`, pinned to CPU 0, and redis-benchmark (CPU 1) runs SET with 64-byte values
over 100,000 random keys, 50 clients, at pipeline 1 and 16. Rounds alternate A B A B. Prints
requests per second, p50 and p99, the ratio, and the size the AOF reached.

    bench/aof.py --shoal target/release/shoal-server [--requests 200000] [--rounds 2]
"""

import argparse
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import start, stop  # noqa: E402


def run(kind, binary, policy, pipeline, requests):
    workdir = tempfile.mkdtemp(prefix=f"aof-{kind}-")
    extra = ["--appendonly", "yes", "--appendfsync", policy] + (["--aof-use-rdb-preamble", "yes"] if kind == "redis" else [])
    proc, port = start(kind, binary, 1, "0", workdir, extra)
    try:
        out = subprocess.run(["taskset", "-c", "1", "redis-benchmark", "-p", str(port), "-t", "set", "-r", "100000", "-d", "64",
                              "-c", "50", "-P", str(pipeline), "-n", str(requests), "--csv"],
                             capture_output=True, text=True, check=True).stdout
        row = [line for line in out.splitlines() if line.startswith('"SET"')][0]
        fields = [f.strip('"') for f in row.split(",")]
        rps, p50, p99 = float(fields[1]), float(fields[5]), float(fields[7])
        size = 0
        for root, _, files in os.walk(workdir):
            size += sum(os.path.getsize(os.path.join(root, f)) for f in files)
        return rps, p50, p99, size
    finally:
        stop(proc)
        subprocess.run(["rm", "-rf", workdir])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--shoal", default="target/release/shoal-server")
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(f"{'workload':28} {'shoal rps':>10} {'p50':>6} {'p99':>6} {'redis rps':>10} {'p50':>6} {'p99':>6} {'ratio':>6}")
    for policy in ["everysec", "always"]:
        for pipeline in [1, 16]:
            for _ in range(args.rounds):
                shoal = run("shoal", args.shoal, policy, pipeline, args.requests)
                redis = run("redis", None, policy, pipeline, args.requests)
                name = f"SET P{pipeline} appendfsync {policy}"
                print(f"{name:28} {shoal[0]:10,.0f} {shoal[1]:6.3f} {shoal[2]:6.3f} {redis[0]:10,.0f} {redis[1]:6.3f} {redis[2]:6.3f} "
                      f"{shoal[0] / redis[0]:6.2f}", flush=True)


if __name__ == "__main__":
    main()
