#!/bin/bash
# The aggregator's benchmark: HOSTS simulated hosts (fixtures/eight-gpu.ini, each gpupass-simhost with its
# own dbus-daemon and gpupassd, as in integration/cluster), then gpupass-clusterd over all of them: load
# time and change-to-view latency (cluster-bench.c). Prints figures; not a timed test.
# Usage: bench-cluster.sh BUILD-DIR [HOSTS (100)] [CHANGES (40)]
# CLUSTERD_WRAPPER (absolute path first, e.g. "/usr/bin/strace -f -tt -o /tmp/clusterd.strace") runs
# gpupass-clusterd under a profiler.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:?usage: bench-cluster.sh BUILD-DIR [HOSTS] [CHANGES]}" && pwd)
hosts=${2:-100}
changes=${3:-40}
export GPUPASSD="$build/agent/host/gpupassd" GPUPASSCTL="$build/agent/ctl/gpupassctl"
export GPUPASS_SOURCE_ROOT="$(cd "$here/../.." && pwd)" GPUPASS_SIMHOST="$build/tests/sim/gpupass-simhost"
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"

source "$GPUPASS_SOURCE_ROOT/tests/bench/bench-hosts.sh"
start_bench_hosts "$hosts"
names=("${BENCH_HOSTS[@]}")

start_bus open
mkdir -p "$TEST_DIR/etc"
{
        printf '[Cluster]\nAdminGroup=gpupass\n'
        for h in "${names[@]}"; do printf '[Host %s]\nAddress=unix:path=%s/%s/bus\n' "$h" "$TEST_DIR" "$h"; done
} >"$TEST_DIR/etc/clusterd.conf"
# Whose CPU the load costs: the agents, their buses and the aggregator's bus (cluster-bench reads them).
{
        for h in "${names[@]}"; do echo "agents $(cat "$TEST_DIR/$h/agent.pid")"; done
        pgrep -f -- "--config-file=$TEST_DIR/h" | sed 's/^/agent-buses /'
        echo "cluster-bus ${PIDS[-1]}"
} >"$TEST_DIR/pids"
CONFIGURATION_DIRECTORY="$TEST_DIR/etc" STATE_DIRECTORY="$TEST_DIR/cluster-state" BENCH_PIDS="$TEST_DIR/pids" \
        "$build/tests/bench/cluster-bench" "$hosts" 8 "$changes" "unix:path=$TEST_DIR/h000/bus" h000 0000:17:00.0 \
        ${CLUSTERD_WRAPPER:-} "$build/agent/cluster/gpupass-clusterd" 2>>"$TEST_DIR/clusterd.log" || { cat "$TEST_DIR/clusterd.log"; exit 1; }
