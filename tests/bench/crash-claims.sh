#!/bin/bash
# The long crash test (issue: >= 1,000 operations). Usage: tests/bench/crash-claims.sh [OPERATIONS] [BUILD]
# Prints the operation and kill counts and the three counts that must be 0.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${2:-$root/build}
exec "$build/tests/sim/gpupass-simhost" "$root/tests/sim/fixtures/multi-gpu.ini" -- \
        env GPUPASSD="$build/agent/host/gpupassd" GPUPASSCTL="$build/agent/ctl/gpupassctl" \
        GPUPASS_SIMHOST="$build/tests/sim/gpupass-simhost" GPUPASS_SOURCE_ROOT="$root" \
        CRASH_OPERATIONS="${1:-1200}" bash "$root/tests/integration/test-crash.sh"
