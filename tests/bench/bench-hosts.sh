# shellcheck shell=bash
# Shared by the benchmarks over many simulated hosts (after lib.sh): bench-cluster.sh, bench-cockpit.sh.

bench_host_ready() { # name: its agent owns its name on the host's bus
        name_owned org.gpupass.agent1 "--address=unix:path=$TEST_DIR/$1/bus"
}

# start_bench_hosts N [FIXTURE]: N simulated hosts h000... (fixtures/eight-gpu.ini unless FIXTURE, each
# gpupass-simhost with its own dbus-daemon and gpupassd, as in integration/cluster) under $TEST_DIR; their names
# in BENCH_HOSTS.
start_bench_hosts() {
        local i h g fixture=${2:-$GPUPASS_SOURCE_ROOT/tests/bench/fixtures/eight-gpu.ini}
        BENCH_HOSTS=()
        for i in $(seq 0 $(($1 - 1))); do
                h=$(printf 'h%03d' "$i")
                BENCH_HOSTS+=("$h")
                mkdir -p "$TEST_DIR/$h"
                "$GPUPASS_SIMHOST" "$fixture" -- \
                        bash "$GPUPASS_SOURCE_ROOT/tests/integration/cluster-host.sh" "$TEST_DIR/$h" &
                PIDS+=($!)
                # Ten at a time: the machine is small, and a host that starts slowly is not what is measured.
                if [ $((i % 10)) -eq 9 ]; then
                        for g in "${BENCH_HOSTS[@]: -10}"; do
                                wait_until 30 "the agent of $g" bench_host_ready "$g" || true
                        done
                fi
        done
        for h in "${BENCH_HOSTS[@]}"; do
                wait_until 30 "the agent of $h" bench_host_ready "$h" || { cat "$TEST_DIR/$h/agent.log"; exit 1; }
        done
        echo "$1 agents up"
}
