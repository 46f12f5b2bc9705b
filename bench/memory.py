#!/usr/bin/env python3
"""RSS after loading N keys with 64-byte values, shoal-server against redis-server.

    bench/memory.py [--shoal target/release/shoal-server] [--keys 1000000] [--threads 1]

Keys are `key:<i>`, values 64 bytes, loaded with a pipelined MSET-free stream of SETs. Prints
RSS, bytes per key (RSS growth over the empty server divided by keys) and the ratio.
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
from compare import free_port, wait_ready, stop  # noqa: E402


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def load(port, keys, value):
    with socket.create_connection(("127.0.0.1", port)) as s:
        batch = 10000
        for start in range(0, keys, batch):
            parts = []
            for i in range(start, min(start + batch, keys)):
                k = f"key:{i}".encode()
                parts.append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(value), value))
            s.sendall(b"".join(parts))
            expected = 5 * (min(start + batch, keys) - start)
            got = 0
            while got < expected:
                chunk = s.recv(1 << 20)
                if not chunk:
                    raise RuntimeError("server closed the connection")
                got += len(chunk)
        s.sendall(b"DBSIZE\r\n")
        return s.recv(64)


def measure(cmd, workdir, keys):
    port = free_port()
    proc = subprocess.Popen(cmd + ["--port", str(port), "--bind", "127.0.0.1"], cwd=workdir,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(port)
        empty = rss_bytes(proc.pid)
        dbsize = load(port, keys, b"v" * 64)
        time.sleep(0.5)
        full = rss_bytes(proc.pid)
        return empty, full, dbsize.decode().strip()
    finally:
        stop(proc)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--shoal", default="target/release/shoal-server")
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=1)
    opts = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="shoal-mem-")
    rows = []
    for label, cmd in [
        ("redis", ["redis-server", "--save", "", "--appendonly", "no"]),
        (f"shoal t{opts.threads}", [opts.shoal, "--threads", str(opts.threads)]),
    ]:
        empty, full, dbsize = measure(cmd, workdir, opts.keys)
        rows.append((label, empty, full, dbsize))
    print(f"{'server':<10}{'empty RSS':>14}{'loaded RSS':>14}{'bytes/key':>11}  dbsize")
    for label, empty, full, dbsize in rows:
        print(f"{label:<10}{empty:>14,}{full:>14,}{(full - empty) / opts.keys:>11.1f}  {dbsize}")
    print(f"ratio shoal/redis loaded RSS: {rows[1][2] / rows[0][2]:.2f}")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
