#!/bin/bash
# Server CPU per request of one redis-benchmark run, split into user and system time, for
# A/B checks of two shoal-server builds (or of shoal against redis-server) on a two-CPU
# machine: the server on CPU 0, redis-benchmark on CPU 1.
#
#   bench/cpu_per_request.sh shoal|redis REQUESTS PIPELINE -- redis-benchmark args...
#   SHOAL_BIN=path/to/shoal-server SHOAL_ARGS="--appendonly yes" bench/cpu_per_request.sh shoal 3200000 16 -- -t set
#
# Before the measured run it fills the type suite's keys as bench/compare.py's order does
# (SADD, ZADD, LPUSH, HSET, PFADD), so SPOP and friends find data. Prints requests/s, the
# server process's user and system microseconds per request, TCP segments sent per request
# (/proc/net/snmp, both directions of loopback) and CPU 0's busy microseconds per request
# (which include the kernel's softirq and workers on that CPU). One clock tick is 10 ms:
# run enough requests for a few seconds.
set -euo pipefail
kind=$1 requests=$2 pipeline=$3
shift 4
port=${PORT:-7790}
if [ "$kind" = redis ]; then
  taskset -c 0 redis-server --port "$port" --save '' --appendonly no --daemonize no >/dev/null 2>&1 &
else
  # shellcheck disable=SC2086
  taskset -c 0 "${SHOAL_BIN:-target/release/shoal-server}" --port "$port" --threads 1 --save "" ${SHOAL_ARGS:---appendonly no} >/dev/null 2>&1 &
fi
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
bench() { taskset -c 1 redis-benchmark -p "$port" -r 100000 -d 64 -c 50 "$@"; }
bench -n 200000 -P 16 -q -t sadd,zadd,lpush,hset >/dev/null
bench -n 200000 -P 16 -q PFADD myhll 'element:__rand_int__' >/dev/null
segments() { awk '/^Tcp:/{c++} /^Tcp:/&&c==2{print $12}' /proc/net/snmp; }
busy() { awk '/^cpu0 /{print $2+$3+$4+$7+$8}' /proc/stat; }
seg0=$(segments); read -r user0 sys0 < <(awk '{print $14, $15}' "/proc/$pid/stat"); busy0=$(busy)
out=$(bench -n "$requests" -P "$pipeline" --csv "$@" | tail -1)
seg1=$(segments); read -r user1 sys1 < <(awk '{print $14, $15}' "/proc/$pid/stat"); busy1=$(busy)
rps=$(echo "$out" | cut -d, -f2 | tr -d '"')
python3 -c "
n, tick_us = $requests, 1e6 / $(getconf CLK_TCK)
print('%-6s %12s req/s  user %.3f us  sys %.3f us  segments %.3f  cpu0 %.3f us' % (
    '$kind', '$rps', ($user1 - $user0) * tick_us / n, ($sys1 - $sys0) * tick_us / n, ($seg1 - $seg0) / n, ($busy1 - $busy0) * tick_us / n))"
