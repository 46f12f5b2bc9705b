#!/usr/bin/env python3
"""Pub/Sub message rate and delivery latency, Shoal against redis-server in the same run.

shoal-pubsub-load (crates/loadgen) runs publishers (PUBLISH, pipeline 16, 64-byte payloads
that carry their send time) and subscribers on one client CPU; it reports messages delivered
per second and the delivery latency (publish write to subscriber read), p50 and p99, over a
window after a warm-up. Workloads (as issue 6 asks):

  1 pub -> 1 sub        one publisher, one subscriber, one channel
  1 pub -> 10 subs      one publisher, ten subscribers of its channel
  1 pub -> 100 subs     one publisher, a hundred subscribers of its channel
  100 pubs -> 100 chans a hundred publishers, each with its own channel and one subscriber

Servers are pinned to the server CPU(s), the client to the client CPU (taskset); rounds
alternate the servers and the medians are printed with the ratio shoal/redis of delivered
messages per second. `shoal t2` is `--threads 2` on the same single server CPU (this
machine has two CPUs), so it shows the cost of fanning out across cores, not scaling.

    bench/pubsub.py [--shoal target/release/shoal-server] [--load target/release/shoal-pubsub-load]
                    [--rounds 2] [--seconds 3] [--threads 1,2]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import start, stop  # noqa: E402

WORKLOADS = [
    ("1 pub -> 1 sub", 1, 1, 1),
    ("1 pub -> 10 subs", 1, 10, 1),
    ("1 pub -> 100 subs", 1, 100, 1),
    ("100 pubs -> 100 chans", 100, 100, 100),
]


def run_load(load, port, publishers, subscribers, channels, seconds, client_cpus):
    out = subprocess.run(["taskset", "-c", client_cpus, load, "-p", str(port), "--publishers", str(publishers), "--subscribers", str(subscribers),
                          "--channels", str(channels), "--seconds", str(seconds), "--csv"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"shoal-pubsub-load failed: {out.stderr.strip()}")
    fields = out.stdout.splitlines()[1].split(",")
    return float(fields[1]), float(fields[2]), float(fields[3])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--shoal", default="target/release/shoal-server")
    parser.add_argument("--load", default="target/release/shoal-pubsub-load")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--server-cpus", default="0")
    parser.add_argument("--client-cpus", default="1")
    args = parser.parse_args()
    servers = [("redis", "redis", None, 1)] + [(f"shoal t{t}", "shoal", args.shoal, int(t)) for t in args.threads.split(",")]
    results = {}
    for _ in range(args.rounds):
        for name, kind, binary, threads in servers:
            workdir = tempfile.mkdtemp(prefix=f"pubsub-{kind}-")
            proc, port = start(kind, binary, threads, args.server_cpus, workdir)
            try:
                for label, publishers, subscribers, channels in WORKLOADS:
                    row = run_load(args.load, port, publishers, subscribers, channels, args.seconds, args.client_cpus)
                    results.setdefault((label, name), []).append(row)
            finally:
                stop(proc)
                subprocess.run(["rm", "-rf", workdir])
    header = f"{'workload':22}" + "".join(f"{name + ' msg/s':>18} {'p50':>7} {'p99':>7}" for name, _, _, _ in servers)
    header += "".join(f" {'ratio ' + name[6:]:>9}" for name, _, _, _ in servers[1:])
    print(header)
    for label, _, _, _ in WORKLOADS:
        line = f"{label:22}"
        medians = {}
        for name, _, _, _ in servers:
            rows = results[(label, name)]
            rate = statistics.median(r[0] for r in rows)
            medians[name] = rate
            line += f"{rate:18,.0f} {statistics.median(r[1] for r in rows):7.3f} {statistics.median(r[2] for r in rows):7.3f}"
        for name, _, _, _ in servers[1:]:
            line += f" {medians[name] / medians['redis']:9.2f}"
        print(line)


if __name__ == "__main__":
    main()
