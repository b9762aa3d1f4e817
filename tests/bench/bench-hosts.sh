# shellcheck shell=bash
# Shared by the aggregator benchmarks (after lib.sh): COUNT simulated hosts from one fixture, each gpupass-simhost
# with its own dbus-daemon and gpupassd (integration/cluster-host.sh) under $TEST_DIR/NAME, started ten at a
# time (the machine is small, and a host that starts slowly is not what is measured); names in HOST_NAMES.
host_ready() { # name: its agent owns its name
        [ "$(busctl --address="unix:path=$TEST_DIR/$1/bus" call org.freedesktop.DBus /org/freedesktop/DBus \
                org.freedesktop.DBus NameHasOwner s org.gpupass.agent1 2>/dev/null)" == "b true" ]
}
start_bench_hosts() { # fixture count
        local i h g
        HOST_NAMES=()
        for i in $(seq 0 $(($2 - 1))); do
                h=$(printf 'h%03d' "$i")
                HOST_NAMES+=("$h")
                mkdir -p "$TEST_DIR/$h"
                "$GPUPASS_SIMHOST" "$1" -- bash "$GPUPASS_SOURCE_ROOT/tests/integration/cluster-host.sh" "$TEST_DIR/$h" &
                PIDS+=($!)
                if [ $((i % 10)) -eq 9 ]; then
                        for g in "${HOST_NAMES[@]: -10}"; do
                                for _ in $(seq 600); do host_ready "$g" && break; sleep 0.05; done
                        done
                fi
        done
        for h in "${HOST_NAMES[@]}"; do
                for _ in $(seq 600); do host_ready "$h" && break; sleep 0.05; done
                host_ready "$h" || { echo "agent of $h did not start"; cat "$TEST_DIR/$h/agent.log"; exit 1; }
        done
}
