#!/bin/bash
# What the per-VM objects cost: gpupass-clusterd (no hosts) over a registry of VMS VMs written straight
# into SQLite, on a private bus; prints the mean time of GetManagedObjects (every Host and Vm object with
# all properties) against ListVms (the same VMs as one array), of one property Get, and of a registry write
# (SetVmResources: the hook reads the old record and emits PropertiesChanged). Each time includes starting
# busctl (the Ping line); the replies are not printed (-q). Usage: tests/bench/cluster-objects.sh [VMS] [BUILD]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${2:-$root/build}
n=${1:-10000}
export GPUPASSD="$build/agent/host/gpupassd" GPUPASSCTL="$build/agent/ctl/gpupassctl" GPUPASS_SOURCE_ROOT="$root"
source "$root/tests/integration/lib.sh"
start_bus open
mkdir -p "$TEST_DIR/etc" "$TEST_DIR/state"
: >"$TEST_DIR/etc/clusterd.conf"
# The schema is the daemon's: start it once to create the file, then fill it while it is stopped.
CONFIGURATION_DIRECTORY="$TEST_DIR/etc" STATE_DIRECTORY="$TEST_DIR/state" "$build/agent/cluster/gpupass-clusterd" \
        2>>"$TEST_DIR/clusterd.log" &
pid=$!
# It requests its name after opening the registry (schema created).
wait_until --while $pid 20 "gpupass-clusterd to own org.gpupass.cluster1" name_owned org.gpupass.cluster1 || exit 1
kill $pid; wait $pid 2>/dev/null || true
wait_until 20 "org.gpupass.cluster1 to leave the bus" output_is "b false" busctl --system call org.freedesktop.DBus \
        /org/freedesktop/DBus org.freedesktop.DBus NameHasOwner s org.gpupass.cluster1 || exit 1
# Prints the first VM's object path (sd_bus_path_encode of its UUID).
vm=$(python3 - "$TEST_DIR/state/vms.db" "$n" <<'PY'
import sqlite3, sys, uuid
db = sqlite3.connect(sys.argv[1])
ids = [str(uuid.uuid4()) for _ in range(int(sys.argv[2]))]
db.executemany("INSERT INTO vms (uuid, name, vcpus, memory_mib, gpus, affinity) VALUES (?, ?, 4, 16384, "
               "'1:NVIDIA Tesla M60', 'alpha,beta')", ((u, "vm-%06d" % i) for i, u in enumerate(ids)))
db.commit()
print("/org/gpupass/cluster1/vm/" + "".join(c if c.isalnum() and (i or not c.isdigit()) else "_%02x" % ord(c)
                                            for i, c in enumerate(ids[0])))
PY
)
CONFIGURATION_DIRECTORY="$TEST_DIR/etc" STATE_DIRECTORY="$TEST_DIR/state" "$build/agent/cluster/gpupass-clusterd" \
        2>>"$TEST_DIR/clusterd.log" &
PIDS+=("$!")
wait_until --while "$!" 60 "gpupass-clusterd with $n VMs to own org.gpupass.cluster1" name_owned org.gpupass.cluster1 || exit 1
mean_ms() { # runs command R times, prints the mean in ms
        local r=$1 t0 t1; shift
        t0=$(date +%s%N)
        for _ in $(seq "$r"); do "$@" >/dev/null; done
        t1=$(date +%s%N)
        awk -v d=$((t1 - t0)) -v r="$r" 'BEGIN { printf "%.1f", d / r / 1e6 }'
}
CM=/org/gpupass/cluster1
k=0
write_vm() { # alternates the vCPUs, so that every write changes the VM and emits
        k=$((k + 1))
        busctl --system call org.gpupass.cluster1 $CM org.gpupass.cluster1.Manager SetVmResources sut "$first" \
                $((k % 2 + 1)) 4096
}
objects=$(busctl --system call org.gpupass.cluster1 $CM org.freedesktop.DBus.ObjectManager GetManagedObjects | cut -d' ' -f2)
first=$(busctl --system get-property org.gpupass.cluster1 "$vm" org.gpupass.cluster1.Vm Uuid | cut -d'"' -f2)
echo "$n VMs, $objects objects from GetManagedObjects"
echo "Ping (busctl start-up):      $(mean_ms 20 busctl --system call org.gpupass.cluster1 $CM org.freedesktop.DBus.Peer Ping) ms"
echo "ListVms:                     $(mean_ms 5 busctl --system call -q org.gpupass.cluster1 $CM org.gpupass.cluster1.Manager ListVms) ms"
echo "GetManagedObjects:           $(mean_ms 5 busctl --system call -q org.gpupass.cluster1 $CM org.freedesktop.DBus.ObjectManager GetManagedObjects) ms"
echo "Get Vm.Power:                $(mean_ms 20 busctl --system get-property org.gpupass.cluster1 "$vm" org.gpupass.cluster1.Vm Power) ms"
echo "SetVmResources (write+emit): $(mean_ms 20 write_vm) ms"
# busctl tree introspects every object: linear when a Vm object's Introspect does not enumerate the others.
echo "busctl tree (every object):  $(mean_ms 1 busctl --system tree org.gpupass.cluster1) ms"
