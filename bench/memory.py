#!/usr/bin/env python3
"""RSS after loading the same data into shoal-server and redis-server.

    bench/memory.py [--shoal target/release/shoal-server] [--keys 1000000] [--threads 1]
                    [--suite strings|big-collections|small-collections]

- strings: N keys `key:<i>` with 64-byte values (SETs, pipelined). Prints bytes per key
  (RSS growth over the empty server divided by keys).
- big-collections: 1,000 hashes, 1,000 sets and 1,000 sorted sets of 1,000 members each.
- small-collections: 100,000 hashes, sets and sorted sets of 10 members each.
Members are `member:<j>` (hash values and scores `<j>`). Prints RSS and the ratio.
  `--types` picks among hash, set, zset (the default: all three), intset (sets of the
  integers 0, 7, 14 ...) and list (RPUSH of the same members).
- object-hashes: 100,000 hashes shaped like application objects: the same 10 fields of 11 to
  16 bytes (`customer_email`, ...), short values. With `--shoal-args
  "--hash-min-template-entries 1"` Shoal keeps them on one template of field names (Redis
  8.10's compact hashes; Redis 7.0 has none).
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
from benchlib import free_port, stop, wait_ready  # noqa: E402


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def send_all(port, commands, batch=10000):
    """Sends the commands pipelined in batches; waits for one reply line per command
    (every command used here answers with one line: +OK or :n)."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        for start in range(0, len(commands), batch):
            chunk = commands[start:start + batch]
            s.sendall(b"".join(encode(c) for c in chunk))
            pending = b""
            lines = 0
            while lines < len(chunk):
                data = s.recv(1 << 20)
                if not data:
                    raise RuntimeError("server closed the connection")
                pending += data
                lines += pending.count(b"\r\n")
                pending = pending[pending.rfind(b"\r\n") + 2:]
        s.sendall(b"DBSIZE\r\n")
        return s.recv(64)


def strings_commands(keys):
    value = b"v" * 64
    return [("SET", f"key:{i}", value) for i in range(keys)]


def collections_commands(keys, members, types):
    commands = []
    for i in range(keys):
        if "hash" in types:
            commands.append(["HSET", f"hash:{i}"] + [x for j in range(members) for x in (f"member:{j}", j)])
        if "set" in types:
            commands.append(["SADD", f"set:{i}"] + [f"member:{j}" for j in range(members)])
        if "zset" in types:
            commands.append(["ZADD", f"zset:{i}"] + [x for j in range(members) for x in (j, f"member:{j}")])
        if "intset" in types:
            commands.append(["SADD", f"intset:{i}"] + [j * 7 for j in range(members)])
        if "list" in types:
            commands.append(["RPUSH", f"list:{i}"] + [f"member:{j}" for j in range(members)])
    return commands


OBJECT_FIELDS = ["customer_id", "customer_name", "customer_email", "billing_country", "billing_postcode",
                 "created_at_ms", "updated_at_ms", "loyalty_tier", "account_status", "preferred_lang"]


def object_hashes_commands(keys):
    commands = []
    for i in range(keys):
        values = [i, f"name{i}", f"user{i}@example.com", "FR", 75000 + i % 1000, 1700000000000 + i, 1700000000000 + 2 * i,
                  "gold", "active", "fr"]
        commands.append(["HSET", f"object:{i}"] + [x for pair in zip(OBJECT_FIELDS, values) for x in pair])
    return commands


SUITES = {
    "object-hashes": lambda keys, types: object_hashes_commands(100_000),
    "strings": lambda keys, types: strings_commands(keys),
    "big-collections": lambda keys, types: collections_commands(1000, 1000, types),
    "small-collections": lambda keys, types: collections_commands(100_000, 10, types),
}


def measure(cmd, workdir, commands):
    port = free_port()
    proc = subprocess.Popen(cmd + ["--port", str(port), "--bind", "127.0.0.1"], cwd=workdir,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(port)
        empty = rss_bytes(proc.pid)
        dbsize = send_all(port, commands)
        # Long enough for a quiet Shoal core to give its freed pages back (see alloc.rs).
        time.sleep(2.5)
        full = rss_bytes(proc.pid)
        return empty, full, dbsize.decode().strip()
    finally:
        stop(proc)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--shoal", default="target/release/shoal-server")
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--suite", default="strings", choices=sorted(SUITES))
    parser.add_argument("--types", default="hash,set,zset", help="collection types to load (collection suites)")
    parser.add_argument("--shoal-args", default="", help="more arguments for shoal-server, space-separated")
    opts = parser.parse_args()
    # The servers run in a scratch directory: name the binary absolutely.
    opts.shoal = os.path.abspath(opts.shoal)
    commands = SUITES[opts.suite](opts.keys, opts.types.split(","))
    workdir = tempfile.mkdtemp(prefix="shoal-mem-")
    rows = []
    for label, cmd in [
        ("redis", ["redis-server", "--save", "", "--appendonly", "no"]),
        (f"shoal t{opts.threads}", [opts.shoal, "--threads", str(opts.threads)] + opts.shoal_args.split()),
    ]:
        empty, full, dbsize = measure(cmd, workdir, commands)
        rows.append((label, empty, full, dbsize))
    keys = opts.keys if opts.suite == "strings" else len(commands)
    print(f"suite {opts.suite}: {len(commands):,} commands")
    print(f"{'server':<10}{'empty RSS':>14}{'loaded RSS':>14}{'bytes/key':>11}  dbsize")
    for label, empty, full, dbsize in rows:
        print(f"{label:<10}{empty:>14,}{full:>14,}{(full - empty) / keys:>11.1f}  {dbsize}")
    print(f"ratio shoal/redis loaded RSS: {rows[1][2] / rows[0][2]:.2f}")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
