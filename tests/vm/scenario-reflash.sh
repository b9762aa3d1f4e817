#!/bin/bash
# Scenario 3 on the real kernel: the hot-pluggable display device is removed and a device of another
# class/ID is added at the same address through QMP (the host does it on request); the agent sees the
# real uevents and emits IdentityChanged with the old and new model names.
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
A=0000:02:00.0  # the display device on the hot-plug root port
start_bus policy
start_agent
start_monitor
old=$(gpu_prop $A Model)
echo "# before: $old"
touch "$RESULTS/request-reflash"
for _ in $(seq 1800); do [ -f "$RESULTS/reflash-done" ] && break; sleep 0.1; done
assert_eq "yes" "$([ -f "$RESULTS/reflash-done" ] && echo yes || echo no)" "the host swapped the device through QMP (bochs-display out, qxl in)"
for _ in $(seq 300); do
        [ -d /sys/bus/pci/devices/$A ] && [ "$(gpu_prop $A Model 2>/dev/null || true)" != "$old" ] && break
        sleep 0.1
done
new=$(gpu_prop $A Model || true)
echo "# after: $new"
assert_not_contains "$new" "$old" "the model changed with the new device"
wait_for_log "$TEST_DIR/monitor.log" 'Member=IdentityChanged' && pass "IdentityChanged emitted from real uevents" || fail "no IdentityChanged"
assert_contains "$(cat "$TEST_DIR/monitor.log")" "STRING $old;" "IdentityChanged names the old model"
assert_eq "$old" "$(gpu_prop $A PreviousModel)" "PreviousModel"
finish
