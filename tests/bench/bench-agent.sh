#!/bin/bash
# The agent's benchmarks on a simulated 8-GPU host (fixtures/eight-gpu.ini), gpupassd on a private
# dbus-daemon (the open bus of the integration tests). They print figures; they are not timed tests.
#   bench-agent.sh BUILD-DIR rtt [COUNT]       ListGpus and property Get round trips vs echo-service (10000)
#   bench-agent.sh BUILD-DIR signal [COUNT]    uevent -> PropertiesChanged latency vs uevent-relay (2000 events
#                                              each; BENCH_NICE=N runs the agent and the relay at nice N)
#   bench-agent.sh BUILD-DIR idle [SECONDS]    wakeups and memory of an idle gpupassd (60 s)
#   bench-agent.sh BUILD-DIR idle-host [SECONDS]   the same on this machine's real /sys, without the simulated
#                                              host's preload (umockdev, GLib): what a real gpupassd costs.
#                                              Read-only: discovery only, an empty state and passthrough.d.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:?usage: bench-agent.sh BUILD-DIR rtt|signal|idle [N]}" && pwd)
what=${2:?rtt, signal or idle}
n=${3:-}

if [ "$what" = idle-host ] && [ -z "${GPUPASS_SOURCE_ROOT:-}" ]; then
        exec env GPUPASSD="${GPUPASSD:-$build/agent/host/gpupassd}" GPUPASSCTL="$build/agent/ctl/gpupassctl" \
                GPUPASS_SOURCE_ROOT="$(cd "$here/../.." && pwd)" bash "$0" "$build" "$what" "$n"
fi
if [ "$what" != idle-host ] && [ -z "${GPUPASS_SIMHOST_CTL:-}" ]; then
        # GPUPASSD may be set to a wrapper (valgrind --tool=callgrind ...) to profile the agent.
        exec env GPUPASSD="${GPUPASSD:-$build/agent/host/gpupassd}" GPUPASSCTL="$build/agent/ctl/gpupassctl" \
                GPUPASS_SOURCE_ROOT="$(cd "$here/../.." && pwd)" GPUPASS_SIMHOST="$build/tests/sim/gpupass-simhost" \
                "$build/tests/sim/gpupass-simhost" "$here/fixtures/eight-gpu.ini" -- bash "$0" "$build" "$what" "$n"
fi

source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
# start_baseline VAR BUS-NAME LOG COMMAND...: the same-run baseline service, its PID in VAR, its log in
# TEST_DIR/LOG.log; waits (up to 5 s) until it owns BUS-NAME.
start_baseline() {
        local var=$1 name=$2 log=$3
        shift 3
        "$@" 2>>"$TEST_DIR/$log.log" &
        printf -v "$var" '%s' "$!"
        PIDS+=("$!")
        wait_until --while "$!" 20 "$name on the bus" name_owned "$name" || exit 1
}
start_bus open
start_agent

case $what in
rtt)
        start_baseline echo_pid org.gpupass.bench.Echo echo "$build/tests/bench/echo-service" org.gpupass.bench.Echo
        "$build/tests/bench/rtt-bench" "${n:-10000}" org.gpupass.bench.Echo "$AGENT_PID" "$echo_pid"
        ;;
signal)
        # BENCH_RELAY may wrap the relay as GPUPASSD wraps the agent (valgrind --tool=callgrind ...).
        start_baseline relay_pid org.gpupass.bench.Relay relay ${BENCH_RELAY:-} "$build/tests/bench/uevent-relay" \
                org.gpupass.bench.Relay 0000:5e:00.0
        if [ -n "${BENCH_NICE:-}" ]; then
                # How an operator would run the agent on a busy host (Nice= in its unit); the relay gets the same.
                renice -n "$BENCH_NICE" -p "$AGENT_PID" "$relay_pid" >/dev/null
                echo "gpupassd and the relay at nice $BENCH_NICE"
        fi
        echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
        "$build/tests/bench/signal-bench" "${n:-2000}" 0000:17:00.0 nouveau 0000:5e:00.0 igb "$AGENT_PID" "$relay_pid"
        echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
        ;;
idle|idle-host)
        bash "$here/idle-agent.sh" "$AGENT_PID" "${n:-60}"
        ;;
*)
        echo "unknown benchmark $what" >&2
        exit 2
        ;;
esac
