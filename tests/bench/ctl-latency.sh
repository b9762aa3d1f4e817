#!/bin/bash
# What one gpupassctl command costs an operator or a script: N calls each of list (table), list
# --json=short, show --json=short and list over -H (an "ssh" that runs systemd-stdio-bridge into the
# same local bus, so only the bridge is added, not a network). Prints milliseconds per call.
# Usage: tests/bench/ctl-latency.sh [CALLS] [BUILD]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${2:-$root/build}
if [ -z "${GPUPASS_SIMHOST_CTL:-}" ]; then
        exec "$build/tests/sim/gpupass-simhost" "$root/tests/sim/fixtures/multi-gpu.ini" -- \
                env GPUPASSD="$build/agent/host/gpupassd" GPUPASSCTL="$build/agent/ctl/gpupassctl" \
                GPUPASS_SIMHOST="$build/tests/sim/gpupass-simhost" GPUPASS_SOURCE_ROOT="$root" \
                bash "$0" "${1:-200}" "$build"
fi
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
calls=$1
start_bus policy
start_agent
mkdir -p "$TEST_DIR/bin"
printf '#!/bin/bash\nexec systemd-stdio-bridge --bus-path=%q\n' "$DBUS_SYSTEM_BUS_ADDRESS" >"$TEST_DIR/bin/ssh"
chmod +x "$TEST_DIR/bin/ssh"
export PATH="$TEST_DIR/bin:$PATH"
measure() { # label args...
        local label=$1 start end; shift
        ctl "$@" >/dev/null
        start=$(date +%s%N)
        for _ in $(seq "$calls"); do ctl "$@" >/dev/null; done
        end=$(date +%s%N)
        printf '%-36s %6.2f ms per call (%d calls)\n' "$label" "$(awk -v d=$((end - start)) -v n="$calls" 'BEGIN { print d / n / 1e6 }')" "$calls"
}
measure "list (table, 6 GPUs)" list
measure "list --json=short" list --json=short
measure "show 3b:00.0 --json=short" show 3b:00.0 --json=short
measure "-H (ssh bridge) list" -H bench list
measure "--help (no bus)" --help
