#!/bin/bash
# What cluster mode costs a node: GET and SET throughput of one node that owns every slot
# (cluster-enabled yes, CLUSTER ADDSLOTSRANGE 0 16383) against the same server without
# cluster mode, for shoal --threads 1 and redis-server side by side. Server on CPU 0,
# redis-benchmark on CPU 1; prints requests per second and the ratios.
#
#   bench/cluster.sh [requests] [rounds]
set -u
n=${1:-300000} rounds=${2:-2}
bin=${SHOAL_BIN:-$PWD/target/release/shoal-server}
port=${PORT:-7851}

run() { # kind cluster pipeline -> requests/s of SET and GET
  local kind=$1 cluster=$2 pipeline=$3 d
  d=$(mktemp -d)
  if [ "$kind" = redis ]; then
    (cd "$d" && taskset -c 0 redis-server --port "$port" --save '' --cluster-enabled "$cluster" >/dev/null 2>&1 &)
  else
    (cd "$d" && taskset -c 0 "$bin" --port "$port" --threads 1 --save '' --cluster-enabled "$cluster" >/dev/null 2>&1 &)
  fi
  for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  if [ "$cluster" = yes ]; then
    redis-cli -p "$port" cluster addslotsrange 0 16383 >/dev/null
    for _ in $(seq 100); do redis-cli -p "$port" cluster info | grep -q "cluster_state:ok" && break; sleep 0.1; done
  fi
  taskset -c 1 redis-benchmark -p "$port" -t set,get -n "$n" -r 100000 -c 50 -P "$pipeline" -q --csv 2>/dev/null |
    awk -F'"' '/"SET"|"GET"/ {printf "%s ", $4}'
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1
  sleep 0.5
  rm -rf "$d"
}

printf '%-6s %-3s %-8s %12s %12s\n' server P cluster SET GET
for pipeline in 1 16; do
  for kind in redis shoal; do
    for cluster in no yes; do
      for round in $(seq "$rounds"); do
        read -r set get <<<"$(run "$kind" "$cluster" "$pipeline")"
        printf '%-6s %-3s %-8s %12s %12s\n' "$kind" "$pipeline" "$cluster" "$set" "$get"
      done
    done
  done
done
