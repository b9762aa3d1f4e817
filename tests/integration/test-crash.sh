#!/bin/bash
# The crash test, short: SIGKILL at random points during concurrent mixed operations; no group with two
# owners, no acknowledged claim lost, no group half bound. tests/bench/crash-claims.sh runs the long one.
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
start_bus policy
mkdir -p "$TEST_DIR/state"
# The checker first, on made-up histories: a real double owner must fail it, a legal interleaving must not.
selftest=$(/usr/bin/python3 "$GPUPASS_SOURCE_ROOT/tests/bench/crash-claims.py" --self-test 2>&1) || true
echo "$selftest" | sed 's/^/# /'
assert_contains "$selftest" "self-test: ok" "the checker flags double owners and accepts legal interleavings"
out=$(/usr/bin/python3 "$GPUPASS_SOURCE_ROOT/tests/bench/crash-claims.py" "$GPUPASSD" "$TEST_DIR/state" \
        "${CRASH_OPERATIONS:-200}" 2>&1) || true
echo "$out" | sed 's/^/# /'
assert_contains "$out" "double-owner groups: 0" "no group with two owners"
assert_contains "$out" "lost claims: 0" "no acknowledged claim lost"
assert_contains "$out" "half-bound groups: 0" "no group half bound"
finish
