#!/usr/bin/env python3
"""Compares shoal-server binaries (and redis-server) on GET and SET at pipeline 1 and 16, to
measure the socket path (issue 2).

Each server runs alone on CPU 0 (shoal with --threads 1), shoal-loadgen on CPU 1, 50
connections, 100000 random keys. Servers alternate within each round (A B C A B C ...).
Besides ops/s it reports the server's CPU seconds (utime+stime from /proc) per million
requests, which is steadier than ops/s when the client's CPU is shared.

    bench/socket_path.py --server base=/tmp/shoal-base --server new=/tmp/shoal-new \\
        [--server 'new-glommio=SHOAL_SOCKET_RING=0 /tmp/shoal-new'] [--redis] [--rounds 3] \\
        [--seconds 3] [--loadgen /tmp/uring-rel/release/shoal-loadgen]
"""
import argparse
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import free_port, wait_ready  # noqa: E402

WORKLOADS = [("GET P1", ["-w", "get", "-P", "1"]), ("SET P1", ["-w", "set", "-P", "1"]),
             ("GET P16", ["-w", "get", "-P", "16"]), ("SET P16", ["-w", "set", "-P", "16"])]


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def start(spec, port):
    env = dict(os.environ)
    words = spec.split()
    while "=" in words[0]:
        key, value = words.pop(0).split("=", 1)
        env[key] = value
    if words[0].endswith("redis-server"):
        cmd = words + ["--port", str(port), "--save", "", "--appendonly", "no"]
    else:
        cmd = words + ["--port", str(port), "--threads", "1"]
    proc = subprocess.Popen(["taskset", "-c", "0"] + cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(port)
    return proc


def run(opts, spec, args):
    port = free_port()
    proc = start(spec, port)
    try:
        before = cpu_ticks(proc.pid)
        out = subprocess.run(["taskset", "-c", "1", opts.loadgen, "-p", str(port), "--seconds", str(opts.seconds), "--csv"] + args + (["--busy-poll"] if opts.busy_poll else []),
                             capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1].split(",")
        ticks = cpu_ticks(proc.pid) - before
    finally:
        proc.kill()
        proc.wait()
    units, ops = int(out[4]), float(out[1])
    hz = os.sysconf("SC_CLK_TCK")
    return ops, ticks / hz / units * 1e6


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", action="append", default=[], help="name=command")
    parser.add_argument("--redis", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--loadgen", default="/tmp/uring-rel/release/shoal-loadgen")
    parser.add_argument("--only", default="", help="comma-separated workload names")
    parser.add_argument("--busy-poll", action="store_true", help="shoal-loadgen --busy-poll: the server never wakes the client")
    opts = parser.parse_args()
    servers = [tuple(s.split("=", 1)) for s in opts.server]
    if opts.redis:
        servers.append(("redis", "/usr/bin/redis-server"))
    workloads = [w for w in WORKLOADS if not opts.only or w[0] in opts.only.split(",")]
    results = {}
    for round_index in range(opts.rounds):
        for name, args in workloads:
            for server, spec in servers:
                try:
                    ops, cpu_s_per_m = run(opts, spec, args)
                except subprocess.CalledProcessError as e:
                    print(f"round {round_index + 1} {name:8} {server:12} failed: {e.stderr.strip()[-200:]}", flush=True)
                    continue
                results.setdefault((name, server), []).append((ops, cpu_s_per_m))
                print(f"round {round_index + 1} {name:8} {server:12} {ops:>10.0f} ops/s  {cpu_s_per_m:6.2f} CPU s per M requests", flush=True)
    print()
    print(f"{'workload':8} {'server':12} {'median ops/s':>12} {'range':>19} {'CPU s/M (median)':>17}")
    for name, _ in workloads:
        for server, _ in servers:
            runs = results.get((name, server))
            if not runs:
                continue
            ops = [r[0] for r in runs]
            cpu = [r[1] for r in runs]
            print(f"{name:8} {server:12} {statistics.median(ops):>12.0f} {min(ops):>9.0f}-{max(ops):<9.0f} {statistics.median(cpu):>17.2f}")


if __name__ == "__main__":
    main()
