#!/usr/bin/env python3
"""Side-by-side throughput of shoal-server and Debian's redis-server.

Runs redis-benchmark against each server in turn, alternating A B A B, with the server
pinned to one CPU and the client to another (taskset), and prints ops/s, p50, p99 and the
ratio shoal/redis for each workload. A second table gives the server CPUs' busy time per
request and the client CPU's busy share: where the client CPU is saturated (pipeline 1 on a
two-CPU machine), ops/s measures the client, and CPU per request is what compares the
servers. memtier_benchmark is not used yet.

    bench/compare.py [--shoal target/release/shoal-server] [--rounds 2] [--threads 1,2]
                     [--suite strings|types|streams]

Suites: `strings` (the core issue's SET/GET/MSET), `types` (the data-type issue's LPUSH,
LPOP, LRANGE_100, SADD, SPOP, HSET, ZADD, ZRANGE, PFADD) and `streams` (XADD, XRANGE and
XREAD over random stream keys). As redis-benchmark's own tests do,
the type workloads use one key each (`mylist`, `myset`, ...) with random elements; each suite
runs in order on one server, so LRANGE and SPOP find what LPUSH and SADD wrote.
"""

import argparse
import csv
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

from benchlib import cpu_times, start, stop

SUITES = {
    # name -> [(workload, redis-benchmark arguments)]
    "strings": [
        ("SET P1", ["-t", "set", "-P", "1"]),
        ("GET P1", ["-t", "get", "-P", "1"]),
        ("SET P16", ["-t", "set", "-P", "16"]),
        ("GET P16", ["-t", "get", "-P", "16"]),
        ("MSET(10) P1", ["-t", "mset", "-P", "1"]),
    ],
    "types": [
        (f"{name} P{p}", ["-P", str(p)] + args)
        for p in (1, 16)
        for name, args in [
            ("LPUSH", ["-t", "lpush"]),
            ("LRANGE_100", ["-t", "lrange_100"]),
            ("LPOP", ["-t", "lpop"]),
            ("SADD", ["-t", "sadd"]),
            ("SPOP", ["-t", "spop"]),
            ("HSET", ["-t", "hset"]),
            ("ZADD", ["-t", "zadd"]),
            ("ZRANGE", ["ZRANGE", "myzset", "0", "99"]),
            ("PFADD", ["PFADD", "myhll", "element:__rand_int__"]),
        ]
    ],
    # Streams over 100,000 random keys, each capped near 1,000 entries; the reads run
    # after the writes filled them.
    "streams": [
        (f"{name} P{p}", ["-P", str(p)] + args)
        for name, args in [
            ("XADD", ["XADD", "s:__rand_int__", "MAXLEN", "~", "1000", "*", "field", "value"]),
            ("XRANGE_10", ["XRANGE", "s:__rand_int__", "-", "+", "COUNT", "10"]),
            ("XREAD_10", ["XREAD", "COUNT", "10", "STREAMS", "s:__rand_int__", "0"]),
        ]
        for p in (1, 16)
    ],
}


def bench(port, args, requests, server_cpus, client_cpus, client_threads=1):
    """Runs one workload; returns ops/s, p50 ms, p99 ms, the server CPUs' busy time per
    request in microseconds (user, system and softirq: the network stack is most of a
    server's work), and the client CPU's busy share. A client CPU near 100% means the
    client, not the server, set the pace."""
    # Pipelined runs get proportionally more requests, so every run lasts about as long.
    pipeline = int(args[args.index("-P") + 1]) if "-P" in args else 1
    requests *= min(pipeline, 8)
    cmd = ["taskset", "-c", client_cpus, "redis-benchmark", "-p", str(port), "-n", str(requests),
           "-r", "100000", "-d", "64", "-c", "50", "--csv"] + args
    if client_threads > 1:
        # A client of several threads (on as many client CPUs) keeps up with the server at
        # pipeline 1, where one thread cannot: then ops/s compares the servers.
        cmd[4:4] = ["--threads", str(client_threads)]
    server_before, client_before = cpu_times(server_cpus), cpu_times(client_cpus)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    server_after, client_after = cpu_times(server_cpus), cpu_times(client_cpus)
    rows = [r for r in csv.reader(io.StringIO(out)) if r and r[0] != "test"]
    row = rows[-1]
    jiffy = 1 / os.sysconf("SC_CLK_TCK")
    server_us_per_op = (server_after[0] - server_before[0]) * jiffy / requests * 1e6
    client_busy = (client_after[0] - client_before[0]) / max(1, client_after[1] - client_before[1])
    return float(row[1]), float(row[4]), float(row[6]), server_us_per_op, client_busy


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shoal", default="target/release/shoal-server")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--requests", type=int, default=200000)
    parser.add_argument("--threads", default="1,2", help="shoal thread counts to compare")
    parser.add_argument("--server-cpus", default="0")
    parser.add_argument("--client-cpus", default="1")
    parser.add_argument("--suite", default="strings", choices=sorted(SUITES))
    parser.add_argument("--client-threads", type=int, default=1, help="redis-benchmark --threads (give as many --client-cpus)")
    parser.add_argument("--only", help="comma-separated workload names of the suite to run (e.g. LPUSH,ZADD)")
    opts = parser.parse_args()
    # The servers run in a scratch directory: name the binary absolutely.
    opts.shoal = os.path.abspath(opts.shoal)
    workloads = SUITES[opts.suite]
    if opts.only:
        wanted = set(opts.only.split(","))
        workloads = [(name, args) for name, args in workloads if name.split()[0] in wanted]
    for tool in ["redis-server", "redis-benchmark", "taskset"]:
        if not shutil.which(tool):
            sys.exit(f"{tool} is required")
    if not os.path.exists(opts.shoal):
        sys.exit(f"{opts.shoal} not found: cargo build --release -p shoal-server")

    workdir = tempfile.mkdtemp(prefix="shoal-bench-")
    thread_counts = [int(t) for t in opts.threads.split(",")]
    results = {}  # (server label, workload) -> list of (rps, p50, p99)
    for round_index in range(opts.rounds):
        for threads in thread_counts:
            # A B A B: redis, then shoal with this thread count, each round.
            for label, kind in [("redis", "redis"), (f"shoal t{threads}", "shoal")]:
                if kind == "redis" and threads != thread_counts[0]:
                    continue
                # shoal with more threads than server CPUs runs unpinned on the server CPUs.
                proc, port = start(kind, opts.shoal, threads, opts.server_cpus, workdir)
                try:
                    for name, args in workloads:
                        run = bench(port, args, opts.requests * opts.client_threads, opts.server_cpus, opts.client_cpus, opts.client_threads)
                        results.setdefault((label, name), []).append(run)
                        # Each run as it ends, so a run cut short still leaves its numbers.
                        print(f"  {label:<10} {name:<16} {run[0]:>12,.0f} ops/s  p50 {run[1]:.3f}  p99 {run[2]:.3f}"
                              f"  cpu {run[3]:.2f} us/op  client {run[4]:.0%}", file=sys.stderr, flush=True)
                finally:
                    stop(proc)
        print(f"round {round_index + 1}/{opts.rounds} done", file=sys.stderr)

    labels = ["redis"] + [f"shoal t{t}" for t in thread_counts]
    print(f"{'workload':<16}" + "".join(f"{l + ' ops/s':>18}{'p50':>7}{'p99':>7}" for l in labels) + "".join(f"{'ratio ' + l[6:]:>10}" for l in labels[1:]))
    for name, _ in workloads:
        line = f"{name:<16}"
        medians = {}
        for label in labels:
            runs = results[(label, name)]
            rps = statistics.median(r[0] for r in runs)
            p50 = statistics.median(r[1] for r in runs)
            p99 = statistics.median(r[2] for r in runs)
            medians[label] = rps
            line += f"{rps:>18,.0f}{p50:>7.3f}{p99:>7.3f}"
        for label in labels[1:]:
            line += f"{medians[label] / medians['redis']:>10.2f}"
        print(line)

    # Where the client CPU is saturated, ops/s measures the client; the server CPU spent per
    # request still compares the servers.
    print()
    print(f"{'workload':<16}" + "".join(f"{l + ' cpu us/op':>22}{'client':>8}" for l in labels) + "".join(f"{'cpu ratio ' + l[6:]:>14}" for l in labels[1:]))
    for name, _ in workloads:
        line = f"{name:<16}"
        cost = {}
        for label in labels:
            runs = results[(label, name)]
            cost[label] = statistics.median(r[3] for r in runs)
            client = statistics.median(r[4] for r in runs)
            line += f"{cost[label]:>22.2f}{client:>8.0%}"
        for label in labels[1:]:
            # A run too short for the CPU counters (10 ms ticks) reads 0: no ratio then.
            line += f"{cost['redis'] / cost[label]:>14.2f}" if cost[label] > 0 else f"{'n/a':>14}"
        print(line)
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
