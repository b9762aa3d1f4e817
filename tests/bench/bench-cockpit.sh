#!/bin/bash
# The web console's benchmark: HOSTS simulated hosts of 8 GPUs (bench-hosts.sh, as bench-cluster.sh), the
# aggregator over them with VMS VMs in its registry (one GPU each, a fifth of them on), cockpit-ws with a local session and
# headless Chromium (tests/browser): the cluster page's first complete render and the time from a
# PropertiesChanged signal to the changed row on screen, both measured in the browser (bench-cockpit.py).
# Prints figures; not a timed test. Usage: bench-cockpit.sh BUILD-DIR [HOSTS (100)] [VMS (2000)] [CHANGES (40)]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:?usage: bench-cockpit.sh BUILD-DIR [HOSTS] [VMS] [CHANGES]}" && pwd)
export BENCH_HOSTS_N=${2:-100} BENCH_VMS=${3:-2000} BENCH_CHANGES=${4:-40}
export GPUPASSD="$build/agent/host/gpupassd" GPUPASSCTL="$build/agent/ctl/gpupassctl"
export GPUPASS_CLUSTERD="$build/agent/cluster/gpupass-clusterd"
export GPUPASS_SOURCE_ROOT="$(cd "$here/../.." && pwd)" GPUPASS_SIMHOST="$build/tests/sim/gpupass-simhost"
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
source "$GPUPASS_SOURCE_ROOT/tests/integration/cluster-lib.sh"
source "$GPUPASS_SOURCE_ROOT/tests/browser/browser-lib.sh"
source "$GPUPASS_SOURCE_ROOT/tests/bench/bench-hosts.sh"

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
# Hosts of 64 CPUs and 512 GiB, so that a fifth of the VMs fit on them with their GPUs.
start_bench_hosts "$BENCH_HOSTS_N" "$(sized "$here/fixtures/eight-gpu.ini" 64 524288)"
start_bus open
start_clusterd agg "${BENCH_HOSTS[@]}"
hosts_up() { cluster ListHosts | grep -o '"up"' | wc -l; }
wait_until 120 "the aggregator to see $BENCH_HOSTS_N hosts up" output_is "$BENCH_HOSTS_N" hosts_up || true
echo "aggregator up with $(cluster ListHosts | grep -o '"up"' | wc -l) hosts"
install_package
start_cockpit root
TEST_DIR="$TEST_DIR" PYTHONPATH="$GPUPASS_SOURCE_ROOT/tests/browser" "$PYTHON" -u "$here/bench-cockpit.py"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
