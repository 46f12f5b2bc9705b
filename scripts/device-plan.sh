#!/usr/bin/env bash
# Every measurement still owed to the open issues, in one call of the `device` tool (16 cores,
# about 15 minutes of device time a task, machine start included, so one call is what there
# is). Runs scripts/device-scaling.sh once per part, most important first, each part's files
# in its own folder under $OUT, and skips a part that would not finish before DEADLINE_S
# (default 540) seconds from the start. Prepare as scripts/device-scaling.sh says (.device-bin,
# .redis-bundle, .perf-bundle), then: device run `scripts/device-plan.sh`, carrying those three.
#
#   part          issue  what
#   scaling       2      SET/GET P1 and P16 with shoal-loadgen, 1, 2, 4 and 8 cores (~80 s)
#   mix           4      GET/SET with 10% MULTI(5xINCR) over 8 cores, two rounds (~45 s)
#   types         3      the data-type rows below 1.2x at one core, against Redis, runs of
#                        2-8 s (the fifteenth session's 1 s runs moved 20-40%) (~140 s)
#   pubsub        6      the Pub/Sub workloads, 1 and 8 cores (~45 s)
#   perf-mix      4      perf profile of the 10% mix over 8 cores (~20 s)
#   mix-spin      4      the mix with SHOAL_SPIN_WAIT_US=50 (~45 s)
#   pubsub-spin   6      Pub/Sub with SHOAL_SPIN_WAIT_US=50, then SHOAL_SPIN_US=50 (~90 s)
#
# PARTS="mix pubsub" runs only those, in that order. Try it here with small settings:
#   SMALL=1 DEADLINE_S=300 scripts/device-plan.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d)}
deadline=${DEADLINE_S:-540}
start=$(date +%s)

# Estimated seconds of each part, to skip what cannot finish in time.
declare -A cost=([scaling]=80 [mix]=45 [types]=140 [pubsub]=45 [perf-mix]=20 [mix-spin]=45 [pubsub-spin]=90)

if [ -n "${SMALL:-}" ]; then
    # Two CPUs: one for the servers, one for the clients.
    scaling_args="--threads 1,2 --client loadgen --client-cpus 1 --client-threads 1 --seconds 1 --rounds 1 --skip-mix"
    mix_args="--threads 2 --client-cpus 1 --client-threads 1 --seconds 1 --rounds 1 --mix-only"
    pubsub_args="--threads 1,2 --server-cpus 0 --client-cpus 1 --rounds 1 --seconds 1"
    types_args="--rounds 1 --requests 3000 --client-cpus 1 --client-threads 1"
    perf_env=(PERF_THREADS=2 PERF_CLIENT_CPUS=1)
else
    scaling_args="--threads 1,2,4,8 --client loadgen --skip-mix --rounds 1"
    mix_args="--threads 8 --mix-only --rounds 2"
    pubsub_args="--threads 1,8 --server-cpus 0-7 --client-cpus 8 --rounds 1 --seconds 2"
    types_args="--rounds 2 --requests 30000"
    perf_env=()
fi

# Runs device-scaling.sh with the environment given, its files in $OUT/NAME.
run_part() {
    local name=$1
    shift
    mkdir -p "$OUT/$name"
    echo "=== $name ($(($(date +%s) - start)) s in)"
    env OUT="$OUT/$name" "$@" bash scripts/device-scaling.sh 2>&1 | tee "$OUT/$name/log.txt" | grep -v '^round'
}

for part in ${PARTS:-scaling mix types pubsub perf-mix mix-spin pubsub-spin}; do
    elapsed=$(($(date +%s) - start))
    if [ $((elapsed + ${cost[$part]:-60})) -gt "$deadline" ]; then
        echo "=== $part skipped: $elapsed s in, about ${cost[$part]:-60} s more would pass ${deadline} s"
        continue
    fi
    case $part in
        scaling) run_part scaling SKIP_COMPARE=1 SCALING_ARGS="$scaling_args" ;;
        mix) run_part mix SKIP_COMPARE=1 SCALING_ARGS="$mix_args" ;;
        types)
            run_part types SKIP_SCALING=1 SKIP_PUBSUB=1 COMPARE_SUITES=types \
                COMPARE_ARGS="$types_args --only LPUSH,LPOP,SADD,SPOP,HSET,ZADD,PFADD"
            ;;
        mix-spin) run_part mix-spin SKIP_COMPARE=1 SHOAL_SPIN_WAIT_US=50 SCALING_ARGS="$mix_args" ;;
        pubsub) run_part pubsub SKIP_SCALING=1 COMPARE_SUITES=" " PUBSUB_ARGS="$pubsub_args" ;;
        pubsub-spin)
            run_part pubsub-spin-wait SKIP_SCALING=1 COMPARE_SUITES=" " SHOAL_SPIN_WAIT_US=50 PUBSUB_ARGS="$pubsub_args"
            run_part pubsub-spin SKIP_SCALING=1 COMPARE_SUITES=" " SHOAL_SPIN_US=50 PUBSUB_ARGS="$pubsub_args"
            ;;
        perf-mix) run_part perf-mix "${perf_env[@]}" PERF_MIX=1 PERF_ONLY=1 ;;
        *) echo "=== unknown part $part" ;;
    esac
done
echo "=== done in $(($(date +%s) - start)) s; files in $OUT"
