"""What the benchmark scripts share: free ports, starting and stopping a pinned server, and
the CPUs' busy time from /proc/stat."""

import os
import socket
import subprocess
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server on {port} did not start")


def start(kind, binary, threads, cpus, workdir, extra=()):
    """Starts a server pinned to `cpus` in `workdir`; `extra` directives come last (they win)."""
    port = free_port()
    if kind == "redis":
        cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    else:
        # No save points, as redis-server above: a benchmark measures serving, not saving.
        # The server runs in `workdir`, so a relative path is made absolute first.
        cmd = [os.path.abspath(binary), "--port", str(port), "--bind", "127.0.0.1", "--threads", str(threads), "--save", ""]
    cmd += list(extra)
    proc = subprocess.Popen(["taskset", "-c", cpus] + cmd, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(port)
    return proc, port


def stop(proc):
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def cpu_list(spec):
    """A taskset CPU list ("0", "0,2", "8-15") as numbers."""
    cpus = []
    for part in spec.split(","):
        if "-" in part:
            low, high = part.split("-")
            cpus.extend(range(int(low), int(high) + 1))
        else:
            cpus.append(int(part))
    return cpus


def cpu_times(cpus):
    """(busy, total) jiffies summed over the CPUs in `cpus` (a taskset list like "0", "0,2"
    or "8-15")."""
    wanted = {f"cpu{c}" for c in cpu_list(cpus)}
    busy = total = 0
    with open("/proc/stat") as f:
        for line in f:
            fields = line.split()
            if fields[0] in wanted:
                values = [int(v) for v in fields[1:8]]  # user nice system idle iowait irq softirq
                total += sum(values)
                busy += sum(values) - values[3] - values[4]
    return busy, total
