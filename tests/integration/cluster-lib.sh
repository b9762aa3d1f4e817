# shellcheck shell=bash
# Shared by the simulated-cluster tests (after lib.sh): simulated hosts, each with its agent on its own private
# bus (cluster-host.sh under gpupass-simhost), and gpupass-clusterd on the test's bus.
: "${GPUPASS_CLUSTERD:?}"
FIX=$GPUPASS_SOURCE_ROOT/tests/sim/fixtures
CM=/org/gpupass/cluster1

start_host() { # name fixture: the host (its bus, its agent), waits for the agent's name
        mkdir -p "$TEST_DIR/$1"
        "$GPUPASS_SIMHOST" "$2" -- env GPUPASSD="$GPUPASSD" GPUPASS_SOURCE_ROOT="$GPUPASS_SOURCE_ROOT" \
                bash "$GPUPASS_SOURCE_ROOT/tests/integration/cluster-host.sh" "$TEST_DIR/$1" &
        eval "HOST_PID_$1=$!"
        PIDS+=("$!")
        for _ in $(seq 200); do
                [ "$(host_call "$1" call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus NameHasOwner s org.gpupass.agent1 2>/dev/null)" == "b true" ] && return 0
                sleep 0.05
        done
        echo "host $1 did not start"; cat "$TEST_DIR/$1/agent.log"; exit 1
}
stop_host() { # name: the host goes away (a reboot): its agent and its bus
        local pid
        pid=$(eval echo "\$HOST_PID_$1")
        kill "$pid"; wait "$pid" 2>/dev/null || true
}
host_call() { # name busctl-args...
        local h=$1; shift
        busctl --address="unix:path=$TEST_DIR/$h/bus" "$@"
}
host_owner() { # name address -> the owner the agent reports, quoted
        local p
        p=$(host_call "$1" call org.gpupass.agent1 /org/gpupass/agent1 org.gpupass.agent1.Manager GetGpu s "$2" | cut -d'"' -f2)
        host_call "$1" get-property org.gpupass.agent1 "$p" org.gpupass.agent1.Gpu Owner | sed 's/^s //'
}
# start_clusterd NAME HOST...: an aggregator with its configuration and registry under TEST_DIR/NAME, on the
# bus DBUS_SYSTEM_BUS_ADDRESS names, connected to those hosts; waits for its name.
start_clusterd() {
        local name=$1 h; shift
        mkdir -p "$TEST_DIR/$name/etc"
        { printf '[Cluster]\nAdminGroup=gpupass\n'
          for h in "$@"; do printf '\n[Host %s]\nAddress=unix:path=%s/%s/bus\n' "$h" "$TEST_DIR" "$h"; done
        } >"$TEST_DIR/$name/etc/clusterd.conf"
        CONFIGURATION_DIRECTORY="$TEST_DIR/$name/etc" STATE_DIRECTORY="$TEST_DIR/$name/state" "$GPUPASS_CLUSTERD" \
                2>>"$TEST_DIR/$name.log" &
        PIDS+=("$!")
        for _ in $(seq 200); do
                [ "$(busctl --system call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus NameHasOwner s org.gpupass.cluster1 2>/dev/null)" == "b true" ] && return 0
                sleep 0.05
        done
        echo "gpupass-clusterd did not start:"; cat "$TEST_DIR/$name.log"; exit 1
}
cluster() { busctl --system call org.gpupass.cluster1 $CM org.gpupass.cluster1.Manager "$@"; }
wait_hosts() { # pattern in ListHosts output, up to 10 s
        for _ in $(seq 200); do
                [[ "$(cluster ListHosts 2>/dev/null || true)" == *$1* ]] && return 0
                sleep 0.05
        done
        return 1
}
wait_vms() { # pattern in ListVms output, up to 10 s
        for _ in $(seq 200); do
                [[ "$(cluster ListVms 2>/dev/null || true)" == *$1* ]] && return 0
                sleep 0.05
        done
        return 1
}
# cexpect ERROR MESSAGE-PART -- METHOD SIGNATURE ARGS...: refused, busctl shows the message; dbus-send (with
# SENDARGS, its typed arguments) shows the error name.
cexpect() {
        local name=$1 part=$2 out rc=0; shift 3
        out=$(busctl --system call org.gpupass.cluster1 $CM org.gpupass.cluster1.Manager "$@" 2>&1) || rc=$?
        [ $rc -ne 0 ] || { fail "$1 should fail with $name: $out"; return; }
        assert_contains "$out" "$part" "$1 refused: $part"
        out=$(dbus-send --system --print-reply --dest=org.gpupass.cluster1 $CM "org.gpupass.cluster1.Manager.$1" \
                "${SENDARGS[@]}" 2>&1) || true
        assert_contains "$out" "Error $name" "$1 refused with $name"
}
sized() { # fixture cpus memory-mib -> a copy of the fixture in TEST_DIR whose host has that size (sysfs)
        local out
        out="$TEST_DIR/$(basename "$1" .ini)-$2cpu-$3mib.ini"
        sed -e "/^\[host\]/a cpus=$2\nmemory_mib=$3" "$1" >"$out"
        echo "$out"
}
