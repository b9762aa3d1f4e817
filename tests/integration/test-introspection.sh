#!/bin/bash
# The introspection XML in dbus/ (installed to dbus-1/interfaces for client generators) is what the
# daemons export: the agent over the simulated host, the aggregator with that agent as its one host and
# one VM, so that every kind of object exists. Drift fails; to accept a change of the API, regenerate:
#   GPUPASS_WRITE_INTROSPECTION=1 meson test -C build introspection
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
source "$GPUPASS_SOURCE_ROOT/tests/integration/cluster-lib.sh"

start_bus open
start_agent
# The aggregator's one host is the agent on this same bus.
mkdir -p "$TEST_DIR/agg/etc"
printf '[Host local]\nAddress=%s\n' "$DBUS_SYSTEM_BUS_ADDRESS" >"$TEST_DIR/agg/etc/clusterd.conf"
run_clusterd agg
wait_hosts '"local" "'"$DBUS_SYSTEM_BUS_ADDRESS"'" "up"' || true
cluster CreateVm sut introspected 2 1024 >/dev/null

mode=check
if [ -n "${GPUPASS_WRITE_INTROSPECTION:-}" ]; then
        mode=write
fi
rc=0
out=$(python3 "$GPUPASS_SOURCE_ROOT/tests/integration/introspection.py" $mode "$GPUPASS_SOURCE_ROOT/dbus" \
        org.gpupass.agent1 org.gpupass.cluster1 2>&1) || rc=$?
while IFS= read -r line; do
        case $line in
        "ok - "*) pass "${line#ok - }" ;;
        "not ok - "*) fail "${line#not ok - }" ;;
        *) echo "# $line" ;;
        esac
done <<<"$out"
assert_eq 0 "$rc" "introspection.py $mode exits 0"
for iface in org.gpupass.agent1.Manager org.gpupass.agent1.Gpu org.gpupass.cluster1.Manager \
             org.gpupass.cluster1.Host org.gpupass.cluster1.Vm; do
        [ -f "$GPUPASS_SOURCE_ROOT/dbus/$iface.xml" ] && pass "dbus/$iface.xml exists" || fail "dbus/$iface.xml missing"
done
finish
