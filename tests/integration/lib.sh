# shellcheck shell=bash
# Shared by the integration tests: a private dbus-daemon, gpupassd on it, and assertions.
# The integration tests run inside gpupass-simhost (the simulated PCI host), so /sys there is the
# testbed's; tests/vm runs the same helpers in a QEMU guest against the real kernel.
set -euo pipefail

: "${GPUPASSD:?GPUPASSD must point to the gpupassd binary}"
: "${GPUPASSCTL:?}"
: "${GPUPASS_SOURCE_ROOT:?}"
TEST_NAME=$(basename "$0" .sh)
TEST_DIR=$(mktemp -d "/tmp/gpupass-${TEST_NAME}.XXXXXX")
# The unprivileged caller must reach the bus socket.
chmod 0755 "$TEST_DIR"
PIDS=()
FAILURES=0
CHECKS=0

cleanup() {
        local pid
        for pid in "${PIDS[@]}"; do
                kill "$pid" 2>/dev/null || true
        done
        wait 2>/dev/null || true
        # On failure, the daemons' logs: the agent's, and a simulated cluster's (cluster-lib.sh) per host and aggregator.
        if [ "$FAILURES" -ne 0 ]; then
                for f in "$TEST_DIR"/*.log "$TEST_DIR"/*/agent.log; do
                        if [ -s "$f" ]; then echo "# --- ${f#"$TEST_DIR"/} ---"; sed 's/^/# /' "$f"; fi
                done
        fi
        # Under meson test --setup=asan the daemons report to their logs, not to the test: any report fails it.
        local reports
        reports=$(grep -rlE "ERROR: (Address|Leak)Sanitizer|runtime error:" --include='*.log' "$TEST_DIR" 2>/dev/null || true)
        if [ -n "$reports" ]; then
                for f in $reports; do echo "--- sanitizer report in ${f#"$TEST_DIR"/} ---"; cat "$f"; done
                rm -rf "$TEST_DIR"
                exit 1
        fi
        rm -rf "$TEST_DIR"
}
trap cleanup EXIT

# start_bus policy|open [POLICY-FILE]: a private dbus-daemon; exports DBUS_SYSTEM_BUS_ADDRESS. The system-like
# bus includes the agent's policy file, or the one named.
start_bus() {
        local kind=$1 template conf="$TEST_DIR/bus.conf"
        local policy=${2:-$GPUPASS_SOURCE_ROOT/dbus/org.gpupass.agent1.conf}
        template="$GPUPASS_SOURCE_ROOT/tests/integration/${kind/policy/system}-bus.conf.in"
        sed -e "s|@SOCKET@|$TEST_DIR/bus|" -e "s|@POLICY@|$policy|" "$template" >"$conf"
        dbus-daemon --config-file="$conf" --nofork --nopidfile 2>"$TEST_DIR/bus.log" &
        PIDS+=($!)
        export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$TEST_DIR/bus"
        for _ in $(seq 100); do
                [ -S "$TEST_DIR/bus" ] && return 0
                sleep 0.05
        done
        echo "dbus-daemon did not start:"; cat "$TEST_DIR/bus.log"; exit 1
}

# start_agent [config text]: gpupassd with its state and configuration in the test directory.
start_agent() {
        mkdir -p "$TEST_DIR/state" "$TEST_DIR/etc"
        if [ $# -gt 0 ]; then
                printf '%s\n' "$1" >"$TEST_DIR/etc/gpupassd.conf"
        fi
        STATE_DIRECTORY="$TEST_DIR/state" CONFIGURATION_DIRECTORY="$TEST_DIR/etc" \
                "$GPUPASSD" 2>>"$TEST_DIR/agent.log" &
        AGENT_PID=$!
        PIDS+=("$AGENT_PID")
        for _ in $(seq 200); do
                if [ "$(busctl --system call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus NameHasOwner s org.gpupass.agent1 2>/dev/null)" == "b true" ]; then
                        return 0
                fi
                if ! kill -0 "$AGENT_PID" 2>/dev/null; then
                        echo "gpupassd exited:"; cat "$TEST_DIR/agent.log"; exit 1
                fi
                sleep 0.05
        done
        echo "gpupassd did not take its bus name:"; cat "$TEST_DIR/agent.log"; exit 1
}

stop_agent() {
        kill "$AGENT_PID"
        wait "$AGENT_PID" || true
}

crash_agent() {
        kill -9 "$AGENT_PID"
        wait "$AGENT_PID" 2>/dev/null || true
}

# simctl VERB ARGS...: the simulated host's control socket (hotplug, reflash, failing probes).
simctl() {
        "${GPUPASS_SIMHOST:?}" ctl "${GPUPASS_SIMHOST_CTL:?run under gpupass-simhost}" "$@" >/dev/null
}

# sysfs_write FILE VALUE: one write(2), as the kernel expects (the shell's own echo goes through stdio).
sysfs_write() {
        printf '%s' "$2" | dd of="$1" bs=4096 status=none
}

sysfs_override() { # address -> driver_override as the kernel prints it
        cat "/sys/bus/pci/devices/$1/driver_override"
}

# start_monitor: records the agent's signals (busctl monitor) into $TEST_DIR/monitor.log.
start_monitor() {
        busctl --system monitor org.gpupass.agent1 >"$TEST_DIR/monitor.log" 2>&1 &
        MONITOR_PID=$!
        PIDS+=("$MONITOR_PID")
        sleep 0.3
}

# wait_for_log FILE PATTERN: up to 5 s.
wait_for_log() {
        for _ in $(seq 100); do
                grep -q -- "$2" "$1" 2>/dev/null && return 0
                sleep 0.05
        done
        return 1
}

ctl() { "$GPUPASSCTL" "$@"; }

VM1=0f8fad5b-d9cb-469f-a165-70867728950e
VM2=7c9e6679-7425-40de-944b-e07fc1f90ae7

pass() { CHECKS=$((CHECKS + 1)); echo "ok - $*"; }
fail() { CHECKS=$((CHECKS + 1)); FAILURES=$((FAILURES + 1)); echo "FAIL - $*"; }

assert_eq() { # expected actual what
        if [ "$1" == "$2" ]; then pass "$3"; else fail "$3: expected [$1], got [$2]"; fi
}
assert_contains() { # haystack needle what
        if [[ "$1" == *"$2"* ]]; then pass "$3"; else fail "$3: [$2] not in [$1]"; fi
}
assert_not_contains() {
        if [[ "$1" != *"$2"* ]]; then pass "$3"; else fail "$3: [$2] unexpectedly in [$1]"; fi
}

gpu_path() { # address -> object path, asked from the agent itself
        busctl --system call org.gpupass.agent1 /org/gpupass/agent1 org.gpupass.agent1.Manager GetGpu s "$1" |
                sed -e 's/^o "\(.*\)"$/\1/'
}

gpu_prop() { # address property -> value as busctl prints it, without the type
        busctl --system get-property org.gpupass.agent1 "$(gpu_path "$1")" org.gpupass.agent1.Gpu "$2" |
                sed -e 's/^[a-z]* //'
}

# wait_prop ADDRESS PROPERTY VALUE: the agent follows uevents asynchronously; wait up to 5 s for it.
wait_prop() {
        for _ in $(seq 100); do
                [ "$(gpu_prop "$1" "$2")" == "$3" ] && return 0
                sleep 0.05
        done
        return 1
}

sysfs_driver() { # address -> driver bound now, read from (simulated) sysfs
        local link=/sys/bus/pci/devices/$1/driver
        if [ -L "$link" ]; then basename "$(readlink "$link")"; else echo none; fi
}

# expect_error NAME MESSAGE-PART [--as USER-SPEC] -- PATH INTERFACE METHOD [SIGNATURE ARGS...]
# Calls once with busctl (must fail, printing MESSAGE-PART) and once with dbus-send, which prints the
# error name that busctl does not show.
expect_error() {
        local name=$1 part=$2 out rc; shift 2
        local -a as=()
        # shellcheck disable=SC2206 # the setpriv options are one string on purpose
        if [ "$1" == "--as" ]; then as=(setpriv $2); shift 2; fi
        [ "$1" == "--" ] && shift
        local path=$1 iface=$2 method=$3; shift 3
        local -a sendargs=()
        if [ $# -gt 0 ]; then
                local sig=$1 i=0; shift
                local -a vals=("$@")
                while [ $i -lt ${#sig} ]; do
                        case ${sig:$i:1} in
                        s) sendargs+=("string:${vals[$i]}") ;;
                        b) sendargs+=("boolean:${vals[$i]}") ;;
                        u) sendargs+=("uint32:${vals[$i]}") ;;
                        esac
                        i=$((i + 1))
                done
                set -- "$sig" "${vals[@]}"
        fi
        rc=0
        out=$("${as[@]}" ${as:+--} busctl --system call org.gpupass.agent1 "$path" "$iface" "$method" "$@" 2>&1) || rc=$?
        if [ $rc -eq 0 ]; then
                fail "$method on $path should fail with $name, succeeded: $out"
                return
        fi
        assert_contains "$out" "$part" "$method refused with message naming '$part'"
        rc=0
        out=$("${as[@]}" ${as:+--} dbus-send --system --print-reply --dest=org.gpupass.agent1 "$path" "$iface.$method" \
                "${sendargs[@]}" 2>&1) || rc=$?
        assert_contains "$out" "Error $name" "$method refused with $name"
}

finish() {
        echo "1..$CHECKS"
        if [ "$FAILURES" -ne 0 ]; then
                echo "# $FAILURES of $CHECKS checks failed"
                exit 1
        fi
        exit 0
}
