#!/bin/bash
# The aggregator's PowerOn (poweron-bench.c), over simulated hosts (each gpupass-simhost with its own dbus-daemon
# and gpupassd) and gpupass-clusterd. Prints figures; not a timed test.
#   bench-poweron.sh BUILD-DIR latency [ROUNDS (200)]: one host with four V100; a VM of 1 GPU and one of 4:
#       the whole PowerOn call against the sum of the agent Claims it makes (GPUs already on vfio-pci).
#   bench-poweron.sh BUILD-DIR burst HOSTS [VMS (1000)]: VMS power-ons issued at once, spread over HOSTS hosts
#       of VMS/HOSTS T4 each (1 vCPU, 64 MiB per VM, hosts sized to fit): all answered, VMs/s.
# GPUPASS_BENCH_CLUSTERD_WRAPPER: a command line gpupass-clusterd runs under, e.g. to profile it:
#       GPUPASS_BENCH_CLUSTERD_WRAPPER="valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%p" (its timings
#       are then the wrapper's, not the aggregator's).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:?usage: bench-poweron.sh BUILD-DIR latency [ROUNDS] | burst HOSTS [VMS]}" && pwd)
mode=${2:?latency or burst}
export GPUPASSD="$build/agent/host/gpupassd" GPUPASSCTL="$build/agent/ctl/gpupassctl"
export GPUPASS_SOURCE_ROOT="$(cd "$here/../.." && pwd)" GPUPASS_SIMHOST="$build/tests/sim/gpupass-simhost"
export GPUPASS_CLUSTERD="$build/agent/cluster/gpupass-clusterd"
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
source "$GPUPASS_SOURCE_ROOT/tests/integration/cluster-lib.sh"
source "$here/bench-hosts.sh"
if [ -n "${GPUPASS_BENCH_CLUSTERD_WRAPPER:-}" ]; then
        printf '#!/bin/sh\nexec %s %q "$@"\n' "$GPUPASS_BENCH_CLUSTERD_WRAPPER" "$GPUPASS_CLUSTERD" >"$TEST_DIR/clusterd-wrapped"
        chmod +x "$TEST_DIR/clusterd-wrapped"
        GPUPASS_CLUSTERD="$TEST_DIR/clusterd-wrapped"
fi

t4_fixture() { # gpus cpus memory-mib -> a fixture with that many T4, each alone in its IOMMU group
        local out="$TEST_DIR/t4x$1.ini" i
        {
                printf '[host]\ndrivers=vfio-pci;nouveau\ncpus=%s\nmemory_mib=%s\n' "$2" "$3"
                for i in $(seq 1 "$1"); do
                        printf '\n[device 0000:%02x:00.0]\nvendor=0x10de\ndevice=0x1eb8\nsubsystem_vendor=0x10de\n' "$i"
                        printf 'subsystem_device=0x12a2\nclass=0x030200\nrevision=0xa1\niommu_group=%d\ndriver=nouveau\n' $((100 + i))
                done
        } >"$out"
        echo "$out"
}

case $mode in
latency)
        rounds=${3:-200}
        start_bench_hosts 1 "$(sized "$FIX/four-v100.ini" 24 98304)" ;;
burst)
        hosts=${3:?burst HOSTS [VMS]}
        vms=${4:-1000}
        per=$(((vms + hosts - 1) / hosts))
        start_bench_hosts "$hosts" "$(t4_fixture "$per" "$per" $((per * 128)))" ;;
*)
        echo "unknown mode $mode"; exit 2 ;;
esac
echo "# ${#BENCH_HOSTS[@]} agents up; load average $(cut -d' ' -f1-3 /proc/loadavg)"
# The aggregator's bus lets one client wait for more answers than dbus-daemon's default 128.
sed -e "s|@SOCKET@|$TEST_DIR/bus|" -e 's|</busconfig>|  <limit name="max_replies_per_connection">100000</limit>\n</busconfig>|' \
        "$GPUPASS_SOURCE_ROOT/tests/integration/open-bus.conf.in" >"$TEST_DIR/bus.conf"
dbus-daemon --config-file="$TEST_DIR/bus.conf" --nofork --nopidfile 2>"$TEST_DIR/bus.log" &
PIDS+=($!)
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$TEST_DIR/bus"
wait_until --while $! 20 "dbus-daemon's socket $TEST_DIR/bus" test -S "$TEST_DIR/bus" || exit 1
start_clusterd agg "${BENCH_HOSTS[@]}"
for h in "${BENCH_HOSTS[@]}"; do wait_host "$h" || { echo "$h not up: $(cluster ListHosts)"; exit 1; }; done

case $mode in
latency)
        for n in 1 4; do
                cluster CreateVm sut "bench-$n" 1 1024 >/dev/null
                cluster SetVmGpus ss "bench-$n" "$n:NVIDIA Tesla V100 PCIe 16GB.compute"
                "$build/tests/bench/poweron-bench" latency "$rounds" "bench-$n" "unix:path=$TEST_DIR/h000/bus"
        done ;;
burst)
        "$build/tests/bench/poweron-bench" burst "$vms" "NVIDIA Tesla T4.compute" ;;
esac
echo "# load average $(cut -d' ' -f1-3 /proc/loadavg); clusterd CPU" \
        "$(awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); printf "%.2f s", ($12 + $13) / hz }' "/proc/${CLUSTERD_PID[agg]}/stat")"
