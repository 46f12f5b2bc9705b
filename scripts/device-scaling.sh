#!/usr/bin/env bash
# The scaling run for a lent 16-core machine (the `device` tool), which has no package manager:
# everything it needs travels with the working tree. Prepare here, then run there once:
#
#   ../shared/scripts/redis-bundle.sh .redis-bundle          # redis-server, redis-benchmark
#   mkdir -p .device-bin                                     # ignored (.gitignore)
#   CARGO_TARGET_DIR=/tmp/rel-target cargo build --release -p shoal-server -p shoal-loadgen
#   for b in shoal-server shoal-loadgen shoal-pubsub-load; do strip --strip-debug -o .device-bin/$b /tmp/rel-target/release/$b; done
#   scripts/perf-bundle.sh .perf-bundle                        # only for PERF_MIX (below)
#   device run: scripts/device-scaling.sh   (carry .redis-bundle and .device-bin, and .perf-bundle)
#
# scripts/device-plan.sh runs the parts below that the open issues still need, in one call.
#
# An A/B of the transaction mix alone, two builds:
#   SCALING_BINS="shoal-server-base shoal-server" SCALING_ARGS="--threads 8 --mix-only --rounds 3" SKIP_COMPARE=1
# Issue 2's scaling with the lighter client (redis-benchmark on 8 CPUs cannot keep 8 Shoal
# cores busy):
#   SCALING_ARGS="--threads 1,2,4,8 --client loadgen --skip-mix --rounds 1" SKIP_COMPARE=1
# An A/B of idle cores spinning before they sleep (SHOAL_SPIN_US, read by every shoal-server
# the scripts start; Redis ignores it), one call each way:
#   SKIP_SCALING=1 COMPARE_SUITES=" "                     (Pub/Sub: one to one crosses cores)
#   SHOAL_SPIN_US=50 SKIP_SCALING=1 COMPARE_SUITES=" "
# and SHOAL_SPIN_WAIT_US=50 (spin only while a core waits for another core's answer) the same
# way, for Pub/Sub and for the scaling part (SCALING_ARGS="--threads 8 --client loadgen ...").
# Mind the clock: compare.py runs --requests times --client-threads requests per workload
# (8 times that at P16), so one round of the types suite at the defaults below takes 3-4
# minutes per server there (LRANGE_100 and ZRANGE at P16 most of it); three rounds do not fit
# in one 10-minute call. Issue 3's slower rows alone, three short rounds (97 s there):
#   SKIP_SCALING=1 SKIP_PUBSUB=1 COMPARE_SUITES=types
#   COMPARE_ARGS="--rounds 3 --requests 15000 --only LPUSH,LPOP,SADD,SPOP,HSET,ZADD,PFADD"
# Those runs last about a second, too short for redis-benchmark's throughput (it reports in
# quarter-second steps). `--requests 50000` makes each run 3-4 s (ZADD P16 about 10 s): about
# 105 s a round for both servers, so three rounds take 5-6 minutes.
#
# Try it here first with small settings:
#   SCALING_ARGS="--threads 1,2 --client-cpus 1 --client-threads 1 --seconds 1 --rounds 1" \
#   COMPARE_ARGS="--requests 20000 --client-cpus 1 --client-threads 2" \
#   PUBSUB_ARGS="--threads 1,2 --server-cpus 0 --client-cpus 1 --rounds 1 --seconds 1" scripts/device-scaling.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d)}
bundle=$PWD/.redis-bundle
bin=$PWD/.device-bin

uname -r; nproc; echo "memlock: $(ulimit -l)"; python3 --version
# redis-server and redis-benchmark by name, through the bundle's own libraries; taskset too
# where util-linux is missing (the bench scripts pin with it).
shim=$(mktemp -d)
for tool in redis-server redis-benchmark redis-cli; do
    printf '#!/bin/sh\nexec %s/run.sh %s "$@"\n' "$bundle" "$tool" >"$shim/$tool"
    chmod +x "$shim/$tool"
done
if ! command -v taskset >/dev/null; then
    cat >"$shim/taskset" <<'EOF'
#!/usr/bin/env python3
# taskset -c CPUS COMMAND...: the part of util-linux's taskset the bench scripts use.
import os, sys
spec, cmd = sys.argv[2], sys.argv[3:]
cpus = [c for p in spec.split(",") for c in (range(int(p.split("-")[0]), int(p.split("-")[1]) + 1) if "-" in p else [int(p)])]
os.sched_setaffinity(0, cpus)
os.execvp(cmd[0], cmd)
EOF
    chmod +x "$shim/taskset"
fi
export PATH="$shim:$PATH"

# SCALING_BINS: the server binaries in .device-bin to run the scaling script for, in turn (an
# A/B of two builds: copy the other one in as, say, shoal-server-base).
# PERF_MIX=1: first a profile of the server under the GET/SET mix with PERF_TX% (default 10)
# MULTI(5xINCR) units, PERF_THREADS (default 8) cores on CPUs 0.., shoal-loadgen on
# PERF_CLIENT_CPUS (default 8-15): `perf record -e cpu-clock -g` for 5 s, the reports in
# $OUT/perf-mix.txt. Needs .perf-bundle (scripts/perf-bundle.sh) and a server stripped with
# --strip-debug, so its functions have names.
if [ -n "${PERF_MIX:-}" ]; then
    threads=${PERF_THREADS:-8}
    port=7399
    taskset -c "0-$((threads - 1))" "$bin/shoal-server" --port $port --threads "$threads" --save "" >/dev/null 2>&1 &
    server=$!
    sleep 2
    clients=()
    for cpu in $(python3 -c "import sys; sys.path.insert(0, 'bench'); from benchlib import cpu_list; print(*cpu_list('${PERF_CLIENT_CPUS:-8-15}'))"); do
        taskset -c "$cpu" "$bin/shoal-loadgen" -p $port --workload mixed --tx-percent "${PERF_TX:-10}" --tx-cores "$threads" \
            -c 32 -r 100000 -d 64 --seconds 9 --seed "$cpu" --csv >"$OUT/perf-loadgen-$cpu.txt" 2>&1 &
        clients+=($!)
    done
    sleep 2
    data=$(mktemp)
    "$PWD/.perf-bundle/perf" record -e cpu-clock -g -p "$server" -o "$data" -- sleep 5 2>&1 | tail -1
    wait "${clients[@]}"
    kill "$server"
    wait "$server" 2>/dev/null
    {
        echo "== by symbol, self"
        "$PWD/.perf-bundle/perf" report -i "$data" --no-children --sort symbol --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | sed 's/[ -]*$//' | head -120
        echo "== by symbol, with children"
        "$PWD/.perf-bundle/perf" report -i "$data" --children --sort symbol --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | sed 's/[ -]*$//' | head -120
    } >"$OUT/perf-mix.txt"
    rm -f "$data"
    tail -3 "$OUT"/perf-loadgen-*.txt
    [ -n "${PERF_ONLY:-}" ] && exit 0
fi

[ -n "${SKIP_SCALING:-}" ] && SCALING_BINS=" "
for server in ${SCALING_BINS:-shoal-server}; do
    echo "== $server"
    # shellcheck disable=SC2086
    python3 -u bench/scaling.py --shoal "$bin/$server" --loadgen "$bin/shoal-loadgen" ${SCALING_ARGS:-} 2>&1 | tee -a "$OUT/scaling.txt"
done
[ -n "${SKIP_COMPARE:-}" ] && exit 0
# One core against Redis with a client that keeps up at pipeline 1 (8 threads on CPUs 8-15):
# issue 2's and issue 3's per-core ratios, which the 2-core VM cannot show at P1.
for suite in ${COMPARE_SUITES:-strings types}; do
    # shellcheck disable=SC2086
    python3 -u bench/compare.py --shoal "$bin/shoal-server" --suite $suite --threads 1 --rounds 1 \
        --server-cpus 0 --client-cpus 8-15 --client-threads 8 --requests 50000 ${COMPARE_ARGS:-} 2>&1 | tee "$OUT/compare-$suite.txt"
done
[ -n "${SKIP_PUBSUB:-}" ] && exit 0
# shellcheck disable=SC2086
python3 -u bench/pubsub.py --shoal "$bin/shoal-server" --load "$bin/shoal-pubsub-load" \
    ${PUBSUB_ARGS:---threads 1,8 --server-cpus 0-7 --client-cpus 8 --rounds 1 --seconds 2} 2>&1 | tee "$OUT/pubsub.txt"
