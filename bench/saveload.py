#!/usr/bin/env python3
"""Time to SAVE and to load back a dataset of mixed types, Shoal against redis-server in the
same run.

The dataset (`--keys`, default 1,000,000): six keys in ten are 64-byte strings, the others
lists, hashes, sets and sorted sets of 10 members (compact encodings), and one key in a
thousand is a collection of 1,000 members (full encodings: quicklist, hashtable, skiplist).

For each server: load the dataset, time `SAVE` (request to reply), stop, then start it again
in the same directory and time from the process's start to its first PONG (it answers LOADING
until the file is loaded). The start of an empty server is timed too, so the load's own time
is the difference. redis-server and `shoal t1` run on CPU 0; `shoal t2` runs two cores on
CPUs 0 and 1 (this machine has two), which shows what a second core adds to saving and
loading.

    bench/saveload.py --shoal target/release/shoal-server [--keys 1000000] [--rounds 2]
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import free_port, stop  # noqa: E402
from memory import send_all  # noqa: E402


def dataset(keys):
    commands = []
    for i in range(keys):
        if i % 1000 == 999:
            members = 1000
            kind = (i // 1000) % 4
        else:
            members = 10
            kind = i % 10 - 6
        if kind < 0:
            commands.append(("SET", f"key:{i}", b"v" * 64))
        elif kind == 0:
            commands.append(["RPUSH", f"list:{i}"] + [f"element:{j}" for j in range(members)])
        elif kind == 1:
            commands.append(["HSET", f"hash:{i}"] + [x for j in range(members) for x in (f"field:{j}", j)])
        elif kind == 2:
            commands.append(["SADD", f"set:{i}"] + [f"member:{j}" for j in range(members)])
        else:
            commands.append(["ZADD", f"zset:{i}"] + [x for j in range(members) for x in (j * 1.5, f"member:{j}")])
    return commands


def command_line(kind, binary, threads, port):
    if kind == "redis":
        return ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    return [binary, "--port", str(port), "--bind", "127.0.0.1", "--threads", str(threads), "--save", ""]


def start_timed(cmd, cpus, workdir, port, timeout=120):
    """Starts the server; returns (process, seconds until it answered PONG)."""
    started = time.time()
    proc = subprocess.Popen(["taskset", "-c", cpus] + cmd, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while time.time() - started < timeout:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(64).startswith(b"+PONG"):
                    return proc, time.time() - started
        except OSError:
            pass
        time.sleep(0.005)
    stop(proc)
    raise RuntimeError(f"{cmd[0]} did not answer PONG in {timeout} s")


def call(port, request, timeout=600):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        started = time.time()
        s.sendall(request)
        reply = s.recv(256)
        return reply, time.time() - started


def run(kind, binary, threads, cpus, commands):
    workdir = tempfile.mkdtemp(prefix=f"saveload-{kind}-")
    try:
        port = free_port()
        cmd = command_line(kind, binary, threads, port)
        proc, empty_start = start_timed(cmd, cpus, workdir, port)
        send_all(port, commands)
        dbsize, _ = call(port, b"DBSIZE\r\n")
        reply, save_s = call(port, b"SAVE\r\n")
        assert reply.startswith(b"+OK"), reply
        size = os.path.getsize(os.path.join(workdir, "dump.rdb"))
        stop(proc)
        proc, load_start = start_timed(cmd, cpus, workdir, port)
        loaded, _ = call(port, b"DBSIZE\r\n")
        stop(proc)
        assert loaded == dbsize, (loaded, dbsize)
        return {"save": save_s, "load": load_start - empty_start, "start": empty_start, "file": size, "keys": int(dbsize[1:].strip())}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--shoal", default="target/release/shoal-server")
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    commands = dataset(args.keys)
    servers = [("redis", "redis", None, 1, "0"), ("shoal t1", "shoal", args.shoal, 1, "0"), ("shoal t2", "shoal", args.shoal, 2, "0,1")]
    print(f"SAVE and load of {args.keys} keys of mixed types")
    print(f"{'server':9} {'keys':>9} {'file':>9} {'save s':>7} {'load s':>7} {'(start s)':>9} {'save x':>7} {'load x':>7}")
    for _ in range(args.rounds):
        redis = None
        for name, kind, binary, threads, cpus in servers:
            r = run(kind, binary, threads, cpus, commands)
            redis = redis or r
            print(f"{name:9} {r['keys']:9,} {r['file'] / 1e6:7.1f}MB {r['save']:7.2f} {r['load']:7.2f} {r['start']:9.2f} "
                  f"{redis['save'] / r['save']:7.2f} {redis['load'] / r['load']:7.2f}")


if __name__ == "__main__":
    main()
