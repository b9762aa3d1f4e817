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
        wait_until --while "$!" 60 "host $1's agent to own org.gpupass.agent1" \
                name_owned org.gpupass.agent1 "--address=unix:path=$TEST_DIR/$1/bus" && return 0
        echo "host $1 did not start"; cat "$TEST_DIR/$1/agent.log"; exit 1
}
stop_host() { # name: the host goes away (a reboot): its agent and its bus
        local pid
        pid=$(eval echo "\$HOST_PID_$1")
        kill "$pid"; wait "$pid" 2>/dev/null || true
}
kill_agent() { # name: only the host's agent goes away (its bus stays): the aggregator sees its name leave
        kill "$(cat "$TEST_DIR/$1/agent.pid")"
}
host_ctl() { # name verb args...: that simulated host's control socket (hotplug, reflash, failing resets)
        local h=$1; shift
        "$GPUPASS_SIMHOST" ctl "$(cat "$TEST_DIR/$h/simhost.ctl")" "$@" >/dev/null
}
unplug_m60() { # name: the M60 at 3b:00.0 and its HDMI audio leave the host's bus (a removal or a reflash begins)
        host_ctl "$1" remove 0000:3b:00.1
        host_ctl "$1" remove 0000:3b:00.0
}
plug_m60_compute() { # name: the M60 at 3b:00.0 and its HDMI audio come back, in compute mode (reflashed)
        host_ctl "$1" add 0000:3b:00.0 vendor=0x10de device=0x13f2 subsystem_vendor=0x10de subsystem_device=0x115e \
                class=0x030200 revision=0xa1 iommu_group=12 driver=nouveau
        host_ctl "$1" add 0000:3b:00.1 vendor=0x10de device=0x0fbb class=0x040300 iommu_group=12 driver=snd_hda_intel
}
# host_monitor NAME LOG: records the messages to and from the agent on that host's bus into $TEST_DIR/LOG
# (start_monitor), e.g. to see the aggregator's call reach the agent.
host_monitor() {
        start_monitor "$2" org.gpupass.agent1 "--address=unix:path=$TEST_DIR/$1/bus"
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
# bus DBUS_SYSTEM_BUS_ADDRESS names, connected to those hosts (one never started stays unreachable); waits
# for its name. Its log is TEST_DIR/NAME.log, its PID CLUSTERD_PID[NAME].
declare -gA CLUSTERD_PID=()
start_clusterd() {
        local name=$1 h; shift
        mkdir -p "$TEST_DIR/$name/etc"
        { printf '[Cluster]\nAdminGroup=gpupass\n'
          for h in "$@"; do printf '\n[Host %s]\nAddress=unix:path=%s/%s/bus\n' "$h" "$TEST_DIR" "$h"
                  [ "${CLUSTER_RUNTIME:-none}" == none ] || libvirt_runtime "$h"; done
        } >"$TEST_DIR/$name/etc/clusterd.conf"
        run_clusterd "$name"
}
# CLUSTER_RUNTIME=libvirt: each host runs its VMs on libvirt's test driver, one file per host (its domains
# live in the aggregator's connection; TEST_DIR/libvirt-inside.sock stops one "from inside": libvirt-inside.c).
libvirt_runtime() { # host: its clusterd.conf runtime lines, and its test driver file
        [ -e "$TEST_DIR/$1/libvirt.xml" ] || printf '<node/>\n' >"$TEST_DIR/$1/libvirt.xml"
        printf 'Runtime=libvirt\nLibvirtUri=test://%s/%s/libvirt.xml\n' "$TEST_DIR" "$1"
}
libvirt_inside() { # verb host uuid -> libvirt's answer on the aggregator's own connection to that host's file
        python3 - "$TEST_DIR/libvirt-inside.sock" "$1 test://$TEST_DIR/$2/libvirt.xml $3" <<'EOP'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall((sys.argv[2] + "\n").encode())
print(s.recv(4096).decode().strip())
EOP
}
run_clusterd() { # name: the aggregator of TEST_DIR/NAME/etc (written by start_clusterd or the test), waits for its name
        local inside=()
        [ "${CLUSTER_RUNTIME:-none}" == none ] || inside=("LD_PRELOAD=$GPUPASS_LIBVIRT_INSIDE"
                                                           "GPUPASS_LIBVIRT_INSIDE_SOCKET=$TEST_DIR/libvirt-inside.sock")
        env "${inside[@]}" CONFIGURATION_DIRECTORY="$TEST_DIR/$1/etc" STATE_DIRECTORY="$TEST_DIR/$1/state" "$GPUPASS_CLUSTERD" \
                2>>"$TEST_DIR/$1.log" &
        CLUSTERD_PID[$1]=$!
        PIDS+=("$!")
        wait_until --while "${CLUSTERD_PID[$1]}" 60 "gpupass-clusterd $1 to own org.gpupass.cluster1" \
                name_owned org.gpupass.cluster1 && return 0
        echo "gpupass-clusterd did not start:"; cat "$TEST_DIR/$1.log"; exit 1
}
stop_clusterd() { # name: that aggregator exits (SIGTERM; only ours, not a parallel test's), its name leaves the bus
        kill "${CLUSTERD_PID[$1]}"; wait "${CLUSTERD_PID[$1]}" || true
        wait_until 30 "org.gpupass.cluster1 to leave the bus" output_is "b false" cluster_name_owned && return 0
        echo "org.gpupass.cluster1 still owned after gpupass-clusterd $1 exited"; exit 1
}
cluster_name_owned() { # -> "b true" while an aggregator owns its name on the bus
        busctl --system call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus NameHasOwner s org.gpupass.cluster1 2>/dev/null || true
}
cluster() { busctl --system call org.gpupass.cluster1 $CM org.gpupass.cluster1.Manager "$@"; }
wait_listed() { # method pattern: the aggregator's METHOD (ListHosts, ListVms, ListGpus) output matches the shell glob *PATTERN*, up to 30 s
        wait_until 30 "$1 to list $2" output_matches "$2" cluster "$1"
}
wait_hosts() { wait_listed ListHosts "$1"; } # pattern in ListHosts output, up to 30 s
wait_vms() { wait_listed ListVms "$1"; } # pattern in ListVms output, up to 30 s
wait_gpus() { wait_listed ListGpus "$1"; } # pattern in ListGpus output, up to 30 s
wait_host() { # name [state]: ListHosts shows that host in STATE (default up), up to 30 s
        wait_hosts "\"$1\" \"unix:path=$TEST_DIR/$1/bus\" \"${2:-up}\""
}
# cexpect ERROR MESSAGE-PART -- METHOD SIGNATURE ARGS...: assert_refused, by the aggregator's Manager.
cexpect() {
        local name=$1 part=$2
        shift 3
        assert_refused "$name" "$part" -- org.gpupass.cluster1 $CM org.gpupass.cluster1.Manager "$@"
}
sized() { # fixture cpus memory-mib -> a copy of the fixture in TEST_DIR whose host has that size (sysfs)
        local out
        out="$TEST_DIR/$(basename "$1" .ini)-$2cpu-$3mib.ini"
        sed -e "/^\[host\]/a cpus=$2\nmemory_mib=$3" "$1" >"$out"
        echo "$out"
}
