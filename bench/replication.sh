#!/bin/bash
# Write throughput of a master with one replica attached, shoal --threads 1 against
# redis-server, in the same run. The master is pinned to CPU 0; redis-benchmark and the
# replica (redis-server in both cases, so the replica's cost is the same) to CPU 1. Each
# round runs every workload against redis then shoal, first without a replica, then with
# one (WAIT 1 before the timing starts, so the full sync is done).
#
#   bench/replication.sh [ROUNDS]      (release build expected at target/release/shoal-server)
#
# Prints requests/s and CPU 0's busy microseconds per request (the master's CPU: with a
# replica, CPU 1 runs both the client and the replica and may set the pace) per run, and
# the ratios of the medians (shoal / redis).
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
busy() { awk '/^cpu0 /{print $2+$3+$4+$7+$8}' /proc/stat; }
run() { # pipeline requests -> "requests/s cpu0-us-per-request"
  local before after rps
  before=$(busy)
  rps=$(taskset -c 1 redis-benchmark -p $master_port -r 100000 -d 64 -c 50 -P "$1" -n "$2" -t set --csv | tail -1 | cut -d, -f2 | tr -d '"')
  after=$(busy)
  echo "$rps $(echo "($after - $before) * 1000000 / $(getconf CLK_TCK) / $2" | bc -l)"
}

declare -A results cpus
for round in $(seq "$rounds"); do
  for replica in no yes; do
    for server in redis shoal; do
      start_master $server
      [ $replica = yes ] && start_replica
      for p in 1 16; do
        n=$([ "$p" = 1 ] && echo 300000 || echo 2000000)
        read -r rps cpu < <(run "$p" "$n")
        results["$server $replica $p"]+="$rps "
        cpus["$server $replica $p"]+="$cpu "
        printf 'round %s  replica=%-3s  %-5s  SET P%-2s  %10.0f req/s  cpu0 %.3f us/req\n' "$round" "$replica" "$server" "$p" "$rps" "$cpu"
      done
      [ $replica = yes ] && stop $replica_port
      stop $master_port
    done
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {printf "%f\n", (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo
printf '%-22s %12s %12s %7s %11s %11s %9s\n' workload 'redis req/s' 'shoal req/s' ratio 'redis cpu0' 'shoal cpu0' 'cpu ratio'
for replica in no yes; do
  for p in 1 16; do
    r=$(echo "${results["redis $replica $p"]}" | median)
    s=$(echo "${results["shoal $replica $p"]}" | median)
    rc=$(echo "${cpus["redis $replica $p"]}" | median)
    sc=$(echo "${cpus["shoal $replica $p"]}" | median)
    printf '%-22s %12.0f %12.0f %7.2f %9.3f us %9.3f us %9.2f\n' "SET P$p replica=$replica" "$r" "$s" "$(echo "$s / $r" | bc -l)" "$rc" "$sc" "$(echo "$rc / $sc" | bc -l)"
  done
done
