#!/usr/bin/env python3
"""A/B of replies with many elements: several servers (shoal binaries and Debian's
redis-server), alternating A B C A B C, each pinned to CPU 0 with redis-benchmark on CPU 1.

    bench/replies.py ROUNDS name=path/to/shoal-server ... [name=redis]

Each run fills `myzset` and `mylist` as redis-benchmark's own ZADD and LPUSH tests do
(200,000 requests at pipeline 16), plus `fzset` (100 members with fractional scores),
`smallset` (100 members) and `smallhash` (50 fields), then measures each workload. It prints
ops/s and the server CPU's busy time per request (user, system and softirq), then the range of
each over the rounds. At pipeline 16 the client CPU is often the limit (redis-benchmark parses
every element), so CPU per request is the number that compares servers.

Environment: REQ (requests per run, times the pipeline up to 8; default 100000), ONLY
(comma-separated substrings of workload names to run)."""

import csv
import io
import os
import subprocess
import sys
import tempfile

from benchlib import cpu_times, start, stop

WORKLOADS = [
    ("ZRANGE100 P16", ["-P", "16", "ZRANGE", "myzset", "0", "99"], 16),
    ("ZRANGE100 P1", ["-P", "1", "ZRANGE", "myzset", "0", "99"], 1),
    ("ZRANGE100 WS P16", ["-P", "16", "ZRANGE", "myzset", "0", "99", "WITHSCORES"], 16),
    ("ZRANGE100 fracWS P16", ["-P", "16", "ZRANGE", "fzset", "0", "99", "WITHSCORES"], 16),
    ("LRANGE_100 P16", ["-P", "16", "-t", "lrange_100"], 16),
    ("SMEMBERS100 P16", ["-P", "16", "SMEMBERS", "smallset"], 16),
    ("HGETALL50 P16", ["-P", "16", "HGETALL", "smallhash"], 16),
]


def bench(port, args, requests):
    cmd = ["taskset", "-c", "1", "redis-benchmark", "-p", str(port), "-n", str(requests), "-r", "100000", "-d", "64", "-c", "50", "--csv"] + args
    before = cpu_times("0")
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    after = cpu_times("0")
    rows = [r for r in csv.reader(io.StringIO(out)) if r and r[0] != "test"]
    us_per_op = (after[0] - before[0]) / os.sysconf("SC_CLK_TCK") / requests * 1e6
    return float(rows[-1][1]), us_per_op


def fill(port):
    bench(port, ["-P", "16", "-t", "zadd,lpush"], 200000)
    cli = ["redis-cli", "-p", str(port)]
    subprocess.run(cli + ["ZADD", "fzset"] + [x for i in range(100) for x in (str(i / 7), f"member:{i}")], check=True, capture_output=True)
    subprocess.run(cli + ["SADD", "smallset"] + [f"member:{i}" for i in range(100)], check=True, capture_output=True)
    subprocess.run(cli + ["HSET", "smallhash"] + [x for i in range(50) for x in (f"field:{i}", f"value:{i}")], check=True, capture_output=True)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    rounds = int(sys.argv[1])
    servers = [arg.split("=", 1) for arg in sys.argv[2:]]
    requests = int(os.environ.get("REQ", "100000"))
    workloads = WORKLOADS
    if os.environ.get("ONLY"):
        workloads = [w for w in WORKLOADS if any(part in w[0] for part in os.environ["ONLY"].split(","))]
    results = {}
    for round_index in range(rounds):
        for name, binary in servers:
            kind = "redis" if binary == "redis" else "shoal"
            with tempfile.TemporaryDirectory() as workdir:
                proc, port = start(kind, binary, 1, "0", workdir)
                try:
                    fill(port)
                    for workload, args, pipeline in workloads:
                        ops, us = bench(port, args, requests * min(pipeline, 8))
                        results.setdefault((workload, name), []).append((ops, us))
                        print(f"round {round_index} {name:8} {workload:22} {ops:12,.0f} ops/s {us:6.2f} us/op", flush=True)
                finally:
                    stop(proc)
    print()
    for workload, _, _ in workloads:
        for name, _ in servers:
            runs = results[(workload, name)]
            ops = [o for o, _ in runs]
            us = [u for _, u in runs]
            print(f"{workload:22} {name:8} ops/s {min(ops):10,.0f}-{max(ops):10,.0f}  cpu us/op {min(us):5.2f}-{max(us):5.2f}")


if __name__ == "__main__":
    main()
