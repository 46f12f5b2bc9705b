#!/usr/bin/env python3
"""Throughput as server cores are added: redis-server on one core, then shoal-server with
--threads 1, 2, 4 and 8 on as many cores, the client on other cores (issue 2's scaling goal:
at least 0.8 of linear up to 8 cores). Made for a machine with 16 CPUs.

Part 1, redis-benchmark --threads T (default 8) with 256 connections on the client CPUs:
SET and GET with 64-byte values over 100,000 random keys, pipeline 1 and 16. For each
server it prints ops/s, p50, p99, the ratio to redis, and the efficiency against linear
(ops/s with N cores divided by N times ops/s with one). The server CPUs' busy time per
request and the client CPUs' busy share show which side set the pace.

With --client loadgen, part 1 runs shoal-loadgen (one process per client CPU, --connections
split between them) instead of redis-benchmark: a lighter client, for server counts that
redis-benchmark on 8 CPUs cannot keep busy.

Part 2, shoal-loadgen (one process per client CPU): GET/SET at pipeline 1, alone and with
10% of the units cross-core MULTI(5xINCR) transactions, for redis and for shoal with the
largest thread count (issue 4: the drop must stay within 10%).

Each run is sized to last about --seconds from the previous configuration's rate; rounds
repeat every configuration and medians are printed.

    bench/scaling.py --shoal BIN --loadgen BIN [--threads 1,2,4,8] [--client-cpus 8-15]
                     [--client-threads 8] [--seconds 3] [--rounds 2] [--client loadgen]
                     [--redis-server redis-server] [--redis-benchmark redis-benchmark]

Processes are pinned with sched_setaffinity, so taskset is not needed.
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import cpu_list, cpu_times, free_port, stop, wait_ready  # noqa: E402

WORKLOADS = [
    ("SET P1", ["-t", "set", "-P", "1"]),
    ("GET P1", ["-t", "get", "-P", "1"]),
    ("SET P16", ["-t", "set", "-P", "16"]),
    ("GET P16", ["-t", "get", "-P", "16"]),
]
# The same workloads as shoal-loadgen arguments (--client loadgen).
LOADGEN_WORKLOADS = {
    "SET P1": ["--workload", "set", "-P", "1"],
    "GET P1": ["--workload", "get", "-P", "1"],
    "SET P16": ["--workload", "set", "-P", "16"],
    "GET P16": ["--workload", "get", "-P", "16"],
}
# First guesses of one core's rate, before anything was measured.
GUESS_PER_CORE = {"P1": 150_000, "P16": 1_200_000}


def pinned(cpus):
    return lambda: os.sched_setaffinity(0, cpus)


def start_server(opts, label, threads, cpus, workdir):
    port = free_port()
    if label == "redis":
        cmd = opts.redis_server + ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    else:
        cmd = [opts.shoal, "--port", str(port), "--bind", "127.0.0.1", "--threads", str(threads), "--save", ""]
    log = open(os.path.join(workdir, f"{label.replace(' ', '-')}.log"), "w")
    proc = subprocess.Popen(cmd, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, preexec_fn=pinned(cpus))
    try:
        wait_ready(port)
    except RuntimeError:
        proc.kill()
        log.close()
        sys.exit(f"{' '.join(cmd)} did not start:\n" + open(log.name).read())
    return proc, port


def redis_benchmark(opts, port, args, requests, server_cpus, client_cpus):
    cmd = opts.redis_benchmark + ["-p", str(port), "-n", str(requests), "-r", "100000", "-d", "64",
                                  "-c", str(opts.connections), "--threads", str(opts.client_threads), "--csv"] + args
    s0, c0 = cpu_times(",".join(map(str, server_cpus))), cpu_times(",".join(map(str, client_cpus)))
    done = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=pinned(client_cpus))
    s1, c1 = cpu_times(",".join(map(str, server_cpus))), cpu_times(",".join(map(str, client_cpus)))
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {done.stderr}")
    row = [r for r in csv.reader(io.StringIO(done.stdout)) if r and r[0] != "test"][-1]
    jiffy = 1 / os.sysconf("SC_CLK_TCK")
    us_per_op = (s1[0] - s0[0]) * jiffy / requests * 1e6
    client_busy = (c1[0] - c0[0]) / max(1, c1[1] - c0[1])
    return float(row[1]), float(row[4]), float(row[6]), us_per_op, client_busy


def loadgen_mix(opts, port, tx_percent, tx_cores, server_cpus, client_cpus):
    """GET/SET at pipeline 1 with `tx_percent` of the units MULTI(5xINCR) over `tx_cores`
    cores (see `loadgen_run`)."""
    args = ["--workload", "mixed", "--tx-percent", str(tx_percent), "--tx-cores", str(tx_cores), "-P", "1"]
    return loadgen_run(opts, port, args, server_cpus, client_cpus)


def loadgen_run(opts, port, args, server_cpus, client_cpus):
    """One shoal-loadgen per client CPU, all at once, each with `args`; returns summed units/s,
    the median p50, the worst p99, the server CPUs' busy time per unit (us) and the client
    CPUs' busy share."""
    server_list, client_list = ",".join(map(str, server_cpus)), ",".join(map(str, client_cpus[:opts.client_threads]))
    s0, c0 = cpu_times(server_list), cpu_times(client_list)
    procs = []
    for i, cpu in enumerate(client_cpus[:opts.client_threads]):
        cmd = [opts.loadgen, "-p", str(port)] + args + ["-c", str(max(1, opts.connections // opts.client_threads)),
                                                       "-r", "100000", "-d", "64", "--seconds", str(opts.seconds), "--seed", str(i + 1), "--csv"]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=pinned([cpu])))
    total, p50s, p99 = 0.0, [], 0.0
    for proc in procs:
        out, err = proc.communicate()
        if proc.returncode != 0:
            sys.exit(f"shoal-loadgen failed ({proc.returncode}): {err}")
        row = [r for r in csv.reader(io.StringIO(out)) if r and r[0] != "workload"][-1]
        total += float(row[1])
        p50s.append(float(row[2]))
        p99 = max(p99, float(row[3]))
    s1, c1 = cpu_times(server_list), cpu_times(client_list)
    jiffy = 1 / os.sysconf("SC_CLK_TCK")
    us_per_unit = (s1[0] - s0[0]) * jiffy / (total * opts.seconds) * 1e6
    client_busy = (c1[0] - c0[0]) / max(1, c1[1] - c0[1])
    return total, statistics.median(p50s), p99, us_per_unit, client_busy


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shoal", default="target/release/shoal-server")
    parser.add_argument("--loadgen", default="target/release/shoal-loadgen")
    parser.add_argument("--threads", default="1,2,4,8")
    parser.add_argument("--client-cpus", default="8-15")
    parser.add_argument("--client-threads", type=int, default=8)
    parser.add_argument("--connections", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--redis-server", default="redis-server", help="command, split on spaces")
    parser.add_argument("--redis-benchmark", default="redis-benchmark", help="command, split on spaces")
    parser.add_argument("--client", choices=["redis-benchmark", "loadgen"], default="redis-benchmark",
                        help="part 1's client")
    parser.add_argument("--skip-mix", action="store_true")
    parser.add_argument("--mix-only", action="store_true", help="only the GET/SET with 10%% MULTI part")
    opts = parser.parse_args()
    opts.shoal = os.path.abspath(opts.shoal)
    opts.loadgen = os.path.abspath(opts.loadgen)
    # The servers run in a scratch directory: name paths absolutely.
    opts.redis_server = [os.path.abspath(w) if "/" in w else w for w in opts.redis_server.split()]
    opts.redis_benchmark = [os.path.abspath(w) if "/" in w else w for w in opts.redis_benchmark.split()]
    client_cpus = cpu_list(opts.client_cpus)
    thread_counts = [int(t) for t in opts.threads.split(",")]
    configs = [("redis", 1)] + [(f"shoal t{t}", t) for t in thread_counts]
    workdir = tempfile.mkdtemp(prefix="shoal-scaling-")
    client = f"redis-benchmark --threads {opts.client_threads}" if opts.client == "redis-benchmark" else f"{opts.client_threads} shoal-loadgen"
    print(f"CPUs: {os.cpu_count()}, client CPUs {opts.client_cpus}, {client} -c {opts.connections}", flush=True)

    per_core = {}  # workload -> last measured ops/s per server core
    results = {}  # (label, workload) -> [(ops/s, p50, p99, us/op, client busy)]
    for round_index in range(0 if opts.mix_only else opts.rounds):
        for label, threads in configs:
            server_cpus = list(range(threads))
            proc, port = start_server(opts, label, threads, server_cpus, workdir)
            try:
                for name, args in WORKLOADS:
                    kind = name.split()[1]
                    rate = per_core.get(name, GUESS_PER_CORE[kind]) * threads
                    requests = max(100_000, int(min(rate, 8_000_000) * opts.seconds))
                    if opts.client == "loadgen":
                        row = loadgen_run(opts, port, LOADGEN_WORKLOADS[name], server_cpus, client_cpus)
                    else:
                        row = redis_benchmark(opts, port, args, requests, server_cpus, client_cpus)
                    per_core[name] = row[0] / threads
                    results.setdefault((label, name), []).append(row)
                    print(f"  round {round_index + 1} {label:<9} {name:<8} {row[0]:>12,.0f} ops/s  p50 {row[1]:.3f}  p99 {row[2]:.3f}  "
                          f"server {row[3]:.2f} us/op  client {row[4]:.0%}", flush=True)
            finally:
                stop(proc)

    if not opts.mix_only:
        print()
        # "cpu eff": one core's server CPU per request over N cores' (1.00 when a request costs as
        # much on N cores as on one). It reads the same whether or not the client kept up, so it
        # tells where "vs linear" measures the client (its CPUs near 100%).
        print(f"{'workload':<9}{'server':<10}{'ops/s':>12}{'p50':>8}{'p99':>8}{'vs redis':>10}{'vs linear':>11}{'cpu us/op':>11}{'cpu eff':>9}{'client':>8}")
        for name, _ in WORKLOADS:
            base = statistics.median(r[0] for r in results[("redis", name)])
            one = statistics.median(r[0] for r in results[(configs[1][0], name)])
            one_cost = statistics.median(r[3] for r in results[(configs[1][0], name)])
            for label, threads in configs:
                runs = results[(label, name)]
                rps = statistics.median(r[0] for r in runs)
                cost = statistics.median(r[3] for r in runs)
                linear = f"{rps / (one * threads):.2f}" if label != "redis" else ""
                efficiency = f"{one_cost / cost:.2f}" if label != "redis" and cost > 0 else ""
                print(f"{name:<9}{label:<10}{rps:>12,.0f}{statistics.median(r[1] for r in runs):>8.3f}"
                      f"{statistics.median(r[2] for r in runs):>8.3f}{rps / base:>10.2f}{linear:>11}"
                      f"{cost:>11.2f}{efficiency:>9}{statistics.median(r[4] for r in runs):>8.0%}")
            print()

    if not opts.skip_mix:
        largest = max(thread_counts)
        print(f"GET/SET P1 through shoal-loadgen, {opts.client_threads} processes, "
              f"transactions over {largest} cores (units/s, p50 ms, p99 ms, server CPU per unit, client CPUs busy):", flush=True)
        for label, threads in [("redis", 1), (f"shoal t{largest}", largest)]:
            rows = {0: [], 10: []}
            for _ in range(opts.rounds):
                proc, port = start_server(opts, label, threads, list(range(threads)), workdir)
                try:
                    for tx in (0, 10):
                        rows[tx].append(loadgen_mix(opts, port, tx, largest, list(range(threads)), client_cpus))
                finally:
                    stop(proc)
            plain = statistics.median(r[0] for r in rows[0])
            mixed = statistics.median(r[0] for r in rows[10])
            for tx in (0, 10):
                r = rows[tx]
                print(f"  {label:<9} {tx:>2}% MULTI {statistics.median(x[0] for x in r):>12,.0f}"
                      f"{statistics.median(x[1] for x in r):>8.3f}{statistics.median(x[2] for x in r):>8.3f}"
                      f"  server {statistics.median(x[3] for x in r):.2f} us/unit  client {statistics.median(x[4] for x in r):.0%}", flush=True)
            print(f"  {label:<9} drop with 10% MULTI: {1 - mixed / plain:.1%}", flush=True)
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
