#!/bin/bash
# Full resynchronisation time against redis-server on a two-CPU machine: the master
# (redis-server, or shoal --threads 1) on CPU 0 with N keys of 64 bytes (DEBUG POPULATE), a
# redis-server replica on CPU 1; prints the seconds from REPLICAOF until the replica's link
# is up with every key loaded.
#
#   bench/fullsync.sh shoal|redis yes|no [N]      (yes|no: repl-diskless-sync)
set -u
kind=$1 diskless=$2 n=${3:-1000000}
mport=${PORT:-7841} rport=$((${PORT:-7841} + 1))
bin=${SHOAL_BIN:-$PWD/target/release/shoal-server}
d=$(mktemp -d)
mkdir -p "$d/replica"
if [ "$kind" = redis ]; then
  (cd "$d" && taskset -c 0 redis-server --port "$mport" --enable-debug-command yes --save '' --repl-diskless-sync "$diskless" --repl-diskless-sync-delay 0 >/dev/null 2>&1 &)
else
  (cd "$d" && taskset -c 0 "$bin" --port "$mport" --threads 1 --save '' --repl-diskless-sync "$diskless" >/dev/null 2>&1 &)
fi
(cd "$d/replica" && taskset -c 1 redis-server --port "$rport" --save '' >/dev/null 2>&1 &)
for _ in $(seq 50); do redis-cli -p "$mport" ping >/dev/null 2>&1 && redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p "$mport" debug populate "$n" key 64 >/dev/null
start=$(date +%s.%N)
redis-cli -p "$rport" replicaof 127.0.0.1 "$mport" >/dev/null
deadline=$((SECONDS + 120))
while [ $SECONDS -lt $deadline ]; do
  if redis-cli -p "$rport" info replication | grep -q "master_link_status:up" && [ "$(redis-cli -p "$rport" dbsize)" = "$n" ]; then break; fi
  sleep 0.02
done
end=$(date +%s.%N)
python3 -c "print('%-6s repl-diskless-sync %-3s keys %d  full sync %.2f s' % ('$kind', '$diskless', $n, $end - $start))"
redis-cli -p "$mport" shutdown nosave >/dev/null 2>&1
redis-cli -p "$rport" shutdown nosave >/dev/null 2>&1
# The next run binds the same ports.
sleep 1
rm -rf "$d"
