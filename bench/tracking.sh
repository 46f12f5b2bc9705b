#!/bin/bash
# Client-side caching's cost on the server: GET, and GET/SET half each, over 100,000 keys,
# with every connection tracking what it reads (CLIENT TRACKING on, invalidations redirected
# to one subscribed connection that the load generator drains) and without, against
# redis-server and shoal-server --threads 1 on CPU 0, shoal-loadgen on CPU 1, alternated.
# Prints units/s and CPU 0's busy microseconds per unit (from /proc/stat: user, system,
# softirq), the measure that compares servers when the one client CPU is the bottleneck.
#
#   bench/tracking.sh [rounds]     (release builds: cargo build --release -p shoal-server -p shoal-loadgen)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
target=${CARGO_TARGET_DIR:-target}
shoal=${SHOAL_BIN:-$target/release/shoal-server}
loadgen=${LOADGEN_BIN:-$target/release/shoal-loadgen}
port=${PORT:-7795}
busy() { awk '/^cpu0 /{print $2+$3+$4+$7+$8}' /proc/stat; }
run() { # server workload tracking pipeline
    local kind=$1 workload=$2 tracking=$3 pipeline=$4
    if [ "$kind" = redis ]; then
        taskset -c 0 redis-server --port "$port" --save '' --appendonly no >/dev/null 2>&1 &
    else
        taskset -c 0 "$shoal" --port "$port" --threads 1 --save "" >/dev/null 2>&1 &
    fi
    local pid=$!
    for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
    taskset -c 1 "$loadgen" -p "$port" -w set -c 50 -n 200000 -P 16 -r 100000 >/dev/null
    local flag=""
    [ "$tracking" = on ] && flag=--tracking
    local before after out
    before=$(busy)
    out=$(taskset -c 1 "$loadgen" -p "$port" -w "$workload" -c 50 -P "$pipeline" -r 100000 --seconds 3 --csv $flag | tail -1)
    after=$(busy)
    kill "$pid"; wait "$pid" 2>/dev/null || true
    python3 -c "
units = float('$out'.split(',')[4]); rate = float('$out'.split(',')[1])
tick_us = 1e6 / $(getconf CLK_TCK)
print('%-6s %-4s P%-3s tracking %-3s %12.0f units/s  cpu0 %.3f us/unit' % ('$kind', '$workload', '$pipeline', '$tracking', rate, ($after - $before) * tick_us / units))"
}
for round in $(seq "$rounds"); do
    for pipeline in 1 16; do
        for workload in get mixed; do
            for tracking in off on; do
                for kind in redis shoal; do
                    run "$kind" "$workload" "$tracking" "$pipeline"
                done
            done
        done
    done
done
