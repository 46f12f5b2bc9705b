#!/bin/bash
# Write throughput of a master with one replica attached, shoal --threads 1 against
# redis-server, in the same run. The master is pinned to CPU 0; redis-benchmark and the
# replica (redis-server in both cases, so the replica's cost is the same) to CPU 1. Each
# round runs every workload against redis then shoal, first without a replica, then with
# one (WAIT 1 before the timing starts, so the full sync is done).
#
#   bench/replication.sh [ROUNDS]      (release build expected at target/release/shoal-server)
#
# Prints requests/s per run and the ratio of the medians (shoal / redis).
set -euo pipefail
rounds=${1:-2}
shoal=${SHOAL_BIN:-target/release/shoal-server}
master_port=7791 replica_port=7792
dir=$(mktemp -d)
trap 'redis-cli -p $master_port shutdown nosave >/dev/null 2>&1 || true; redis-cli -p $replica_port shutdown nosave >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT

start_master() {
  if [ "$1" = redis ]; then
    (cd "$dir" && taskset -c 0 redis-server --port $master_port --save '' --appendonly no --daemonize no >/dev/null 2>&1 &)
  else
    (cd "$dir" && taskset -c 0 "$OLDPWD/$shoal" --port $master_port --threads 1 --save '' --appendonly no >/dev/null 2>&1 &)
  fi
  for _ in $(seq 50); do redis-cli -p $master_port ping >/dev/null 2>&1 && return; sleep 0.1; done
}
stop() { redis-cli -p "$1" shutdown nosave >/dev/null 2>&1 || true; sleep 0.3; }
start_replica() {
  mkdir -p "$dir/replica"
  (cd "$dir/replica" && taskset -c 1 redis-server --port $replica_port --save '' --appendonly no --replicaof 127.0.0.1 $master_port --daemonize no >/dev/null 2>&1 &)
  for _ in $(seq 100); do
    redis-cli -p $replica_port info replication 2>/dev/null | grep -q 'master_link_status:up' && break
    sleep 0.1
  done
  redis-cli -p $master_port set warmup 1 >/dev/null
  redis-cli -p $master_port wait 1 5000 >/dev/null
}
run() { # pipeline requests
  taskset -c 1 redis-benchmark -p $master_port -r 100000 -d 64 -c 50 -P "$1" -n "$2" -t set --csv | tail -1 | cut -d, -f2 | tr -d '"'
}

declare -A results
for round in $(seq "$rounds"); do
  for replica in no yes; do
    for server in redis shoal; do
      start_master $server
      [ $replica = yes ] && start_replica
      for p in 1 16; do
        n=$([ "$p" = 1 ] && echo 300000 || echo 2000000)
        rps=$(run "$p" "$n")
        results["$server $replica $p"]+="$rps "
        echo "round $round  replica=$replica  $server  SET P$p  $rps req/s"
      done
      [ $replica = yes ] && stop $replica_port
      stop $master_port
    done
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo
printf '%-22s %14s %14s %7s\n' workload redis shoal ratio
for replica in no yes; do
  for p in 1 16; do
    r=$(echo "${results["redis $replica $p"]}" | median)
    s=$(echo "${results["shoal $replica $p"]}" | median)
    printf '%-22s %14.0f %14.0f %7.2f\n' "SET P$p replica=$replica" "$r" "$s" "$(echo "$s / $r" | bc -l)"
  done
done
