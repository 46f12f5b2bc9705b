#!/bin/bash
# What GETKEYSINSLOT costs on a big node, and what keeping each slot's keys costs in memory:
# one cluster node that owns every slot, loaded with N keys (DEBUG POPULATE), then
# `CLUSTER GETKEYSINSLOT <slot> 100` for the first S slots, one request at a time (as
# `redis-cli --cluster reshard` asks), timed; used_memory after the load and after the calls
# (Shoal indexes keys by slot from the first call). shoal --threads 1 and redis-server on
# CPU 0, the client on CPU 1. SHOAL_BINS lists shoal builds to compare.
#
#   bench/getkeysinslot.sh [keys] [slots]
set -u
n=${1:-1000000} slots=${2:-300}
port=${PORT:-7861}
bins=${SHOAL_BINS:-$PWD/target/release/shoal-server}

run() { # name command... -> "name used_memory used_memory_after seconds"
  local name=$1 d
  shift
  d=$(mktemp -d)
  (cd "$d" && taskset -c 0 "$@" --port "$port" --save '' --cluster-enabled yes >/dev/null 2>&1 &)
  for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  redis-cli -p "$port" cluster addslotsrange 0 16383 >/dev/null
  redis-cli -p "$port" debug populate "$n" key 64 >/dev/null
  local memory after
  memory=$(redis-cli -p "$port" info memory | awk -F: '/^used_memory:/ {print $2}' | tr -d '\r')
  local seconds
  seconds=$(taskset -c 1 python3 - "$port" "$slots" <<'PY'
import socket, sys, time
port, slots = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
f = s.makefile("rb")
def command(*args):
    s.sendall(b"".join([b"*%d\r\n" % len(args)] + [b"$%d\r\n%s\r\n" % (len(a), a) for a in args]))
    head = f.readline()
    assert head[:1] == b"*", head
    for _ in range(int(head[1:])):
        f.readline(); f.readline()
start = time.perf_counter()
for slot in range(slots):
    command(b"CLUSTER", b"GETKEYSINSLOT", str(slot).encode(), b"100")
print("%.3f" % (time.perf_counter() - start))
PY
)
  after=$(redis-cli -p "$port" info memory | awk -F: '/^used_memory:/ {print $2}' | tr -d '\r')
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1
  sleep 0.5
  rm -rf "$d"
  echo "$name $memory $after $seconds"
}

row() { # name memory after seconds
  printf '%-32s %12s %10.1f %10.1f %14s\n' "$1" "$2" "$(echo "$2 / $n" | bc -l)" "$(echo "$3 / $n" | bc -l)" "$4"
}
printf '%-32s %12s %10s %10s %14s\n' server used_memory bytes/key "after" "${slots} calls s"
for round in 1 2; do
  for bin in $bins; do
    row $(run "$(basename "$(dirname "$bin")")/$(basename "$bin")" "$bin" --threads 1)
  done
  row $(run redis-server redis-server --enable-debug-command yes)
done
