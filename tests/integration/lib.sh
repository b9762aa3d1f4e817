# shellcheck shell=bash
# Shared by the integration tests: a private dbus-daemon, gpupassd on it, and assertions.
# The integration tests run inside gpupass-simhost (the simulated PCI host), so /sys there is the
# testbed's; tests/vm runs the same helpers in a QEMU guest against the real kernel.
set -euo pipefail

: "${GPUPASSD:?GPUPASSD must point to the gpupassd binary}"
: "${GPUPASSCTL:?}"
: "${GPUPASS_SOURCE_ROOT:?}"
source "$GPUPASS_SOURCE_ROOT/tests/integration/wait.sh"
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
        rm -f "$TEST_DIR/bus" # a previous bus's, if it left it: the wait below is for this one's
        dbus-daemon --config-file="$conf" --nofork --nopidfile 2>"$TEST_DIR/bus.log" &
        BUS_PID=$!
        PIDS+=("$BUS_PID")
        export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$TEST_DIR/bus"
        wait_until --while "$BUS_PID" 20 "dbus-daemon's socket $TEST_DIR/bus" test -S "$TEST_DIR/bus" && return 0
        echo "dbus-daemon did not start:"; cat "$TEST_DIR/bus.log"; exit 1
}

# name_owned NAME [BUSCTL-BUS-OPTION]: someone owns NAME on the system bus (or the bus the option names,
# e.g. --address=unix:path=...).
name_owned() {
        output_is "b true" busctl "${2:---system}" call org.freedesktop.DBus /org/freedesktop/DBus \
                org.freedesktop.DBus NameHasOwner s "$1"
}

# stop_bus: the bus of start_bus exits (its socket goes with it), to start another.
stop_bus() {
        kill "$BUS_PID"
        wait "$BUS_PID" || true
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
        wait_until --while "$AGENT_PID" 60 "gpupassd to own org.gpupass.agent1" name_owned org.gpupass.agent1 &&
                return 0
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

# start_monitor [LOG NAME [BUSCTL-OPTION...]]: records the messages to and from NAME (busctl monitor) into
# $TEST_DIR/LOG; by default the agent's, on the system bus, into monitor.log. Returns once the monitor
# records: busctl drops what reaches it before the bus has told it that it is a monitor (even after it
# says "Monitoring bus message stream."), so a probe (Peer.Ping to NAME at /org/gpupass/MonitorProbe, which
# the bus shows the monitor whether or not NAME has an owner) is repeated until it is in LOG.
start_monitor() {
        local log=$TEST_DIR/${1:-monitor.log} name=${2:-org.gpupass.agent1}
        shift $(($# < 2 ? $# : 2))
        if [ $# -eq 0 ]; then
                set -- --system
        fi
        busctl "$@" monitor "$name" >"$log" 2>&1 &
        MONITOR_PID=$!
        PIDS+=("$MONITOR_PID")
        wait_until --while "$MONITOR_PID" 20 "busctl monitor to record messages to $name" \
                monitor_probe "$log" "$name" "$@" || exit 1
}
monitor_probe() { # LOG NAME BUSCTL-OPTION...: one probe call to NAME; true once LOG holds a probe
        local log=$1 name=$2
        shift 2
        busctl "$@" call "$name" /org/gpupass/MonitorProbe org.freedesktop.DBus.Peer Ping >/dev/null 2>&1 || true
        file_has "$log" MonitorProbe
}

# monitor_barrier: returns once monitor.log (start_monitor without arguments) holds the agent's answer to a
# call made now; whatever the agent sent before that answer (a signal) is there too, as one sender's
# messages keep their order. A check that a signal was NOT sent comes after this.
monitor_barrier() {
        local mark
        mark=barrier-$((++MONITOR_BARRIERS))
        busctl --system call org.gpupass.agent1 /org/gpupass/agent1 org.gpupass.agent1.Manager GetGpu s "$mark" \
                >/dev/null 2>&1 || true
        wait_until 20 "the agent's answer to GetGpu $mark in monitor.log" file_has "$TEST_DIR/monitor.log" "'$mark'"
}
MONITOR_BARRIERS=0

# wait_for_log FILE PATTERN: a line of FILE matches PATTERN, up to 20 s (the machine may be loaded).
wait_for_log() {
        wait_until 20 "'$2' in ${1##*/}" file_has "$1" "$2"
}

ctl() { "$GPUPASSCTL" "$@"; }

VM1=0f8fad5b-d9cb-469f-a165-70867728950e
VM2=7c9e6679-7425-40de-944b-e07fc1f90ae7

pass() { CHECKS=$((CHECKS + 1)); echo "ok - $*"; }
# TAP: meson counts both (a failed check is "not ok", the test fails by finish's exit status too).
fail() { CHECKS=$((CHECKS + 1)); FAILURES=$((FAILURES + 1)); echo "not ok - $*"; }

assert_eq() { # expected actual what
        if [ "$1" == "$2" ]; then pass "$3"; else fail "$3: expected [$1], got [$2]"; fi
}
assert_contains() { # haystack needle what; an empty needle fails (it is in everything: an unset variable)
        if [ -z "$2" ]; then
                fail "$3: nothing to look for in [$1]"
        elif [[ "$1" == *"$2"* ]]; then
                pass "$3"
        else
                fail "$3: [$2] not in [$1]"
        fi
}
assert_not_contains() { # haystack needle what; an empty haystack fails (a command that printed nothing, failing)
        if [ -z "$1" ]; then
                fail "$3: nothing to look for [$2] in"
        elif [[ "$1" != *"$2"* ]]; then
                pass "$3"
        else
                fail "$3: [$2] unexpectedly in [$1]"
        fi
}

gpu_path() { # address -> object path, asked from the agent itself
        busctl --system call org.gpupass.agent1 /org/gpupass/agent1 org.gpupass.agent1.Manager GetGpu s "$1" |
                sed -e 's/^o "\(.*\)"$/\1/'
}

gpu_prop() { # address property -> value as busctl prints it, without the type
        busctl --system get-property org.gpupass.agent1 "$(gpu_path "$1")" org.gpupass.agent1.Gpu "$2" |
                sed -e 's/^[a-z]* //'
}

# wait_prop ADDRESS PROPERTY VALUE: the agent follows uevents asynchronously; wait up to 20 s for it.
wait_prop() {
        wait_until 20 "$2 of $1 to be $3" output_is "$3" gpu_prop "$1" "$2"
}

sysfs_driver() { # address -> driver bound now, read from (simulated) sysfs
        local link=/sys/bus/pci/devices/$1/driver
        if [ -L "$link" ]; then basename "$(readlink "$link")"; else echo none; fi
}

# as_user SETPRIV-OPTIONS COMMAND [ARGS...]: COMMAND as another user, as setpriv(1) OPTIONS (one string) say,
# and without the simulated host's LD_PRELOAD: a D-Bus client needs no simulated kernel, and ld.so, running
# as that user, cannot read the build's preload library in a checkout below a 0700 directory (/root, a
# mktemp -d). COMMAND itself may be there: setpriv keeps root's capabilities up to its execve().
as_user() {
        local opts=$1
        shift
        # shellcheck disable=SC2086 # the setpriv options are one string on purpose
        env -u LD_PRELOAD setpriv $opts -- "$@"
}

_dbus_type() { # one basic type code -> dbus-send's name for it, in the caller's _type
        case $1 in
        s) _type=string ;; o) _type=objpath ;; g) _type=signature ;; b) _type=boolean ;;
        y) _type=byte ;; n) _type=int16 ;; q) _type=uint16 ;; i) _type=int32 ;; u) _type=uint32 ;;
        x) _type=int64 ;; t) _type=uint64 ;; d) _type=double ;; *) return 1 ;;
        esac
}
# dbus_send_args ARRAY SIGNATURE ARGS...: busctl's arguments (basic types, arrays and dictionaries of
# them, variants) as dbus-send's typed ones, into the array named ARRAY; returns 1 for what dbus-send
# cannot express (structs, nested containers).
dbus_send_args() {
        local -n _out=$1
        local sig=$2 i=0 c n k _type
        shift 2
        _out=()
        while [ $i -lt ${#sig} ]; do
                c=${sig:$i:1}
                if [ "$c" == a ] && [ "${sig:$((i + 1)):1}" == "{" ] && [ "${sig:$((i + 4)):1}" == "}" ]; then
                        local kt vt items=
                        _dbus_type "${sig:$((i + 2)):1}" || return 1
                        kt=$_type
                        _dbus_type "${sig:$((i + 3)):1}" || return 1
                        vt=$_type
                        n=$1
                        shift
                        for ((k = 0; k < n; k++)); do
                                items+="${items:+,}$1,$2"
                                shift 2
                        done
                        _out+=("dict:$kt:$vt:$items")
                        i=$((i + 5))
                elif [ "$c" == a ]; then
                        local items=
                        _dbus_type "${sig:$((i + 1)):1}" || return 1
                        n=$1
                        shift
                        for ((k = 0; k < n; k++)); do
                                items+="${items:+,}$1"
                                shift
                        done
                        _out+=("array:$_type:$items")
                        i=$((i + 2))
                elif [ "$c" == v ]; then
                        _dbus_type "$1" || return 1
                        _out+=("variant:$_type:$2")
                        shift 2
                        i=$((i + 1))
                else
                        _dbus_type "$c" || return 1
                        _out+=("$_type:$1")
                        shift
                        i=$((i + 1))
                fi
        done
}

# assert_refused ERROR MESSAGE-PART [--as SETPRIV-OPTIONS] -- DESTINATION PATH INTERFACE METHOD [SIGNATURE ARGS...]
# One check: the call (arguments as busctl takes them; made once, with dbus-send, which prints the error's
# name where busctl prints only its message) fails with exactly the D-Bus error ERROR and a message that
# contains MESSAGE-PART. A success, another error or another message fails the check, saying which.
assert_refused() {
        local name=$1 part=$2 as= out rc=0 msg
        shift 2
        if [ "$1" == --as ]; then
                as=$2
                shift 2
        fi
        if [ "$1" != -- ] || [ $# -lt 5 ]; then
                fail "assert_refused: usage: ERROR PART [--as OPTIONS] -- DEST PATH INTERFACE METHOD [SIG ARGS...]"
                return
        fi
        local dest=$2 path=$3 iface=$4 method=$5
        shift 5
        local what="$method refused with $name${part:+, saying \"$part\"}"
        local -a args=() call
        if [ $# -gt 0 ] && ! dbus_send_args args "$@"; then
                fail "$what: dbus-send cannot pass arguments of signature $1"
                return
        fi
        call=(dbus-send --system --print-reply --dest="$dest" "$path" "$iface.$method" "${args[@]}")
        if [ -n "$as" ]; then
                out=$(as_user "$as" "${call[@]}" 2>&1) || rc=$?
        else
                out=$("${call[@]}" 2>&1) || rc=$?
        fi
        if [ $rc -eq 0 ]; then
                fail "$what: it succeeded: $out"
        elif [[ $'\n'"$out" != *$'\n'"Error $name: "* ]]; then
                fail "$what: $out"
        else
                msg=${out#*"Error $name: "}
                if [[ "$msg" == *"$part"* ]]; then pass "$what"; else fail "$what: the message is [$msg]"; fi
        fi
}

# expect_error NAME MESSAGE-PART [--as SETPRIV-OPTIONS] -- PATH INTERFACE METHOD [SIGNATURE ARGS...]:
# assert_refused, by the agent.
expect_error() {
        local name=$1 part=$2
        shift 2
        local -a as=()
        if [ "$1" == --as ]; then
                as=(--as "$2")
                shift 2
        fi
        shift # --
        assert_refused "$name" "$part" "${as[@]}" -- org.gpupass.agent1 "$@"
}

finish() {
        echo "1..$CHECKS"
        if [ "$FAILURES" -ne 0 ]; then
                echo "# $FAILURES of $CHECKS checks failed"
                exit 1
        fi
        exit 0
}
