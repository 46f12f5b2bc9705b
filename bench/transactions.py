#!/usr/bin/env python3
"""Side-by-side throughput of shoal-server and Debian's redis-server for transactions and
scripts, which redis-benchmark cannot send as one unit.

Runs shoal-loadgen (crates/loadgen) against each server in turn, alternating A B A B, with
the server pinned to the server CPUs and the client to the client CPU (taskset), and prints
units/s, p50 and p99 per workload and the ratio shoal/redis. A unit is one MULTI..EXEC
transaction, one EVALSHA, or one plain command. Conventions are those of bench/compare.py:
50 clients, 64-byte values, 100,000 random keys, servers started on free ports in a scratch
directory, medians over the rounds.

    bench/transactions.py [--shoal target/release/shoal-server] [--loadgen target/release/shoal-loadgen]
                          [--rounds 2] [--requests 100000] [--threads 1,4]

Workloads:
  MULTI(5xINCR)        MULTI, INCR of five keys, EXEC. The keys' hash tags put them on 4
                       different cores of a shoal-server with as many threads as the largest
                       of --threads (shoal-loadgen --tx-cores).
  EVALSHA              EVALSHA of `return redis.call('INCR', KEYS[1])`, loaded once.
  GET/SET              half GET, half SET of one key.
  GET/SET+10%MULTI     the same, with 10% of the units MULTI(5xINCR) transactions instead.
  calibration rows     GET and SET by shoal-loadgen and by redis-benchmark with the same
                       settings, so the tool can be compared with redis-benchmark.

A server that answers a workload's command with an error (for example, no scripting) shows
that workload as unsupported, with the server's error below the table.

After the tables: the drop of GET/SET throughput (units/s) when 10% of the units are
cross-core MULTIs, for redis and for shoal with the largest thread count, and the server
CPUs' busy time per unit (as compare.py: where the client CPU is saturated, units/s measures
the client, and server CPU per unit is what compares the servers).
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

# name -> (tool, arguments, share of --requests): transactions cost about seven commands, so
# they run fewer units, and every run lasts about as long.
WORKLOADS = [
    ("MULTI(5xINCR) P1", "loadgen", ["--workload", "multi-incr5", "-P", "1"], 0.2),
    ("MULTI(5xINCR) P16", "loadgen", ["--workload", "multi-incr5", "-P", "16"], 0.2),
    ("EVALSHA P1", "loadgen", ["--workload", "evalsha", "-P", "1"], 0.5),
    ("EVALSHA P16", "loadgen", ["--workload", "evalsha", "-P", "16"], 0.5),
    ("GET/SET P1", "loadgen", ["--workload", "mixed", "--tx-percent", "0", "-P", "1"], 1.0),
    ("GET/SET+10%MULTI P1", "loadgen", ["--workload", "mixed", "--tx-percent", "10", "-P", "1"], 1.0),
    ("GET P1 loadgen", "loadgen", ["--workload", "get", "-P", "1"], 1.0),
    ("GET P1 r-benchmark", "redis-benchmark", ["-t", "get", "-P", "1"], 1.0),
    ("SET P1 loadgen", "loadgen", ["--workload", "set", "-P", "1"], 1.0),
    ("SET P1 r-benchmark", "redis-benchmark", ["-t", "set", "-P", "1"], 1.0),
    ("GET P16 loadgen", "loadgen", ["--workload", "get", "-P", "16"], 1.0),
    ("GET P16 r-benchmark", "redis-benchmark", ["-t", "get", "-P", "16"], 1.0),
    ("SET P16 loadgen", "loadgen", ["--workload", "set", "-P", "16"], 1.0),
    ("SET P16 r-benchmark", "redis-benchmark", ["-t", "set", "-P", "16"], 1.0),
]
CALIBRATION = [("GET P1", "GET P1 loadgen", "GET P1 r-benchmark"), ("SET P1", "SET P1 loadgen", "SET P1 r-benchmark"),
               ("GET P16", "GET P16 loadgen", "GET P16 r-benchmark"), ("SET P16", "SET P16 loadgen", "SET P16 r-benchmark")]
# shoal-loadgen's exit status when the server answered a command with an error.
EXIT_SERVER_ERROR = 3


class Unsupported(Exception):
    """The server answered the workload's command with an error."""


def bench(opts, port, tool, args, share, tx_cores):
    """Runs one workload; returns units/s, p50 ms, p99 ms, the server CPUs' busy time per
    unit in microseconds, and the client CPU's busy share. Raises Unsupported when the server
    answered with an error."""
    pipeline = int(args[args.index("-P") + 1])
    # Pipelined runs get proportionally more units, so every run lasts about as long.
    requests = max(1000, int(opts.requests * share)) * min(pipeline, 8)
    common = ["-p", str(port), "-n", str(requests), "-r", "100000", "-d", "64", "-c", "50", "--csv"]
    if tool == "loadgen":
        cmd = [opts.loadgen] + common + ["--tx-cores", str(tx_cores)] + args
    else:
        cmd = ["redis-benchmark"] + common + args
    server_before, client_before = cpu_times(opts.server_cpus), cpu_times(opts.client_cpus)
    done = subprocess.run(["taskset", "-c", opts.client_cpus] + cmd, capture_output=True, text=True)
    server_after, client_after = cpu_times(opts.server_cpus), cpu_times(opts.client_cpus)
    if tool == "loadgen" and done.returncode == EXIT_SERVER_ERROR:
        raise Unsupported(done.stderr.strip())
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed with status {done.returncode}:\n{done.stderr}")
    rows = [r for r in csv.reader(io.StringIO(done.stdout)) if r and r[0] not in ("test", "workload")]
    row = rows[-1]
    if tool == "loadgen":
        rps, p50, p99 = float(row[1]), float(row[2]), float(row[3])
    else:
        rps, p50, p99 = float(row[1]), float(row[4]), float(row[6])
    jiffy = 1 / os.sysconf("SC_CLK_TCK")
    server_us_per_unit = (server_after[0] - server_before[0]) * jiffy / requests * 1e6
    client_busy = (client_after[0] - client_before[0]) / max(1, client_after[1] - client_before[1])
    return rps, p50, p99, server_us_per_unit, client_busy


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shoal", default="target/release/shoal-server")
    parser.add_argument("--loadgen", default="target/release/shoal-loadgen")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--requests", type=int, default=100000, help="units per plain workload (transactions run a fifth)")
    parser.add_argument("--threads", default="1,4", help="shoal thread counts to compare")
    parser.add_argument("--server-cpus", default="0")
    parser.add_argument("--client-cpus", default="1")
    opts = parser.parse_args()
    # The servers run in a scratch directory: name the binaries absolutely.
    opts.shoal = os.path.abspath(opts.shoal)
    opts.loadgen = os.path.abspath(opts.loadgen)
    for tool in ["redis-server", "redis-benchmark", "taskset"]:
        if not shutil.which(tool):
            sys.exit(f"{tool} is required")
    if not os.path.exists(opts.shoal):
        sys.exit(f"{opts.shoal} not found: cargo build --release -p shoal-server")
    if not os.path.exists(opts.loadgen):
        sys.exit(f"{opts.loadgen} not found: cargo build --release -p shoal-loadgen")

    workdir = tempfile.mkdtemp(prefix="shoal-bench-")
    thread_counts = [int(t) for t in opts.threads.split(",")]
    tx_cores = max(thread_counts)
    results = {}  # (server label, workload) -> list of (rps, p50, p99, us/unit, client busy)
    unsupported = {}  # (server label, workload) -> the server's error
    for round_index in range(opts.rounds):
        for threads in thread_counts:
            # A B A B: redis, then shoal with this thread count, each round.
            for label, kind in [("redis", "redis"), (f"shoal t{threads}", "shoal")]:
                if kind == "redis" and threads != thread_counts[0]:
                    continue
                # shoal with more threads than server CPUs runs unpinned on the server CPUs.
                proc, port = start(kind, opts.shoal, threads, opts.server_cpus, workdir)
                try:
                    for name, tool, args, share in WORKLOADS:
                        try:
                            results.setdefault((label, name), []).append(bench(opts, port, tool, args, share, tx_cores))
                        except Unsupported as error:
                            unsupported[(label, name)] = str(error)
                finally:
                    stop(proc)
        print(f"round {round_index + 1}/{opts.rounds} done", file=sys.stderr)
    shutil.rmtree(workdir, ignore_errors=True)

    labels = ["redis"] + [f"shoal t{t}" for t in thread_counts]

    def median(label, name, field):
        runs = results.get((label, name))
        if not runs or (label, name) in unsupported:
            return None
        return statistics.median(r[field] for r in runs)

    print(f"{'workload':<22}" + "".join(f"{l + ' ops/s':>18}{'p50':>7}{'p99':>7}" for l in labels) + "".join(f"{'ratio ' + l[6:]:>10}" for l in labels[1:]))
    for name, _, _, _ in WORKLOADS:
        line = f"{name:<22}"
        for label in labels:
            rps = median(label, name, 0)
            if rps is None:
                line += f"{'unsupported':>18}{'-':>7}{'-':>7}"
            else:
                line += f"{rps:>18,.0f}{median(label, name, 1):>7.3f}{median(label, name, 2):>7.3f}"
        for label in labels[1:]:
            shoal, redis = median(label, name, 0), median("redis", name, 0)
            line += f"{shoal / redis:>10.2f}" if shoal is not None and redis is not None else f"{'n/a':>10}"
        print(line)
    # One note per server and error, naming the workloads it stopped.
    notes = {}
    for (label, name), error in unsupported.items():
        notes.setdefault((label, error), []).append(name)
    for (label, error), names in notes.items():
        print(f"  {label}: {', '.join(names)} unsupported: {error}")

    print()
    print("GET/SET throughput (units/s) with 10% of units MULTI(5xINCR) across cores, against none:")
    for label in ["redis", f"shoal t{tx_cores}"]:
        plain, mixed = median(label, "GET/SET P1", 0), median(label, "GET/SET+10%MULTI P1", 0)
        if plain is None or mixed is None:
            print(f"  {label}: n/a")
        else:
            goal = "  (goal: at most 10%)" if label != "redis" else ""
            print(f"  {label}: {plain:,.0f} -> {mixed:,.0f} units/s, a drop of {1 - mixed / plain:.1%}{goal}")

    print()
    print("calibration: shoal-loadgen against redis-benchmark, same settings (ops/s ratio loadgen / redis-benchmark; server CPU us/op of each)")
    print(f"{'workload':<10}" + "".join(f"{l + ' ratio':>18}{'us/op lg':>10}{'us/op rb':>10}" for l in labels))
    for name, ours, theirs in CALIBRATION:
        line = f"{name:<10}"
        for label in labels:
            a, b = median(label, ours, 0), median(label, theirs, 0)
            ca, cb = median(label, ours, 3), median(label, theirs, 3)
            line += f"{a / b:>18.2f}{ca:>10.2f}{cb:>10.2f}" if None not in (a, b, ca, cb) else f"{'n/a':>18}{'':>20}"
        print(line)

    # Where the client CPU is saturated, ops/s measures the client; the server CPU spent per
    # unit still compares the servers.
    print()
    print(f"{'workload':<22}" + "".join(f"{l + ' cpu us/op':>22}{'client':>8}" for l in labels) + "".join(f"{'cpu ratio ' + l[6:]:>14}" for l in labels[1:]))
    for name, _, _, _ in WORKLOADS:
        line = f"{name:<22}"
        cost = {}
        for label in labels:
            cost[label] = median(label, name, 3)
            client = median(label, name, 4)
            line += f"{cost[label]:>22.2f}{client:>8.0%}" if cost[label] is not None else f"{'unsupported':>22}{'-':>8}"
        for label in labels[1:]:
            line += f"{cost['redis'] / cost[label]:>14.2f}" if cost[label] and cost["redis"] else f"{'n/a':>14}"
        print(line)


if __name__ == "__main__":
    main()
