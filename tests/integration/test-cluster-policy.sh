#!/bin/bash
# The aggregator's bus policy file on a default-deny system bus: root owns the name and acts; everyone
# reads; an unprivileged caller's changes are refused by the bus.
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
source "$GPUPASS_SOURCE_ROOT/tests/integration/cluster-lib.sh"
NOBODY="--reuid=65534 --regid=65534 --clear-groups"
start_bus policy "$GPUPASS_SOURCE_ROOT/dbus/org.gpupass.cluster1.conf"
# No hosts: only the bus policy is under test.
start_clusterd agg
uuid=$(cluster CreateVm sut vm-1 1 1024 | cut -d'"' -f2)
assert_eq 36 "${#uuid}" "root owns the name and creates a VM"
for m in ListHosts ListGpus ListVms; do
        out=$(as_user "$NOBODY" busctl --system call org.gpupass.cluster1 $CM org.gpupass.cluster1.Manager $m 2>&1) &&
                pass "an unprivileged user calls $m" || fail "$m as nobody: $out"
done
# The per-VM objects: listed, read and their signals received by anyone.
vmpath=$(as_user "$NOBODY" busctl --system tree --list org.gpupass.cluster1 2>&1 | grep "^$CM/vm/" || true)
out=$(as_user "$NOBODY" busctl --system get-property org.gpupass.cluster1 "$vmpath" org.gpupass.cluster1.Vm Name 2>&1)
assert_eq 's "vm-1"' "$out" "an unprivileged user lists the VM objects and reads their properties"
out=$(as_user "$NOBODY" busctl --system call org.gpupass.cluster1 $CM org.freedesktop.DBus.ObjectManager \
        GetManagedObjects 2>&1)
assert_contains "$out" "org.gpupass.cluster1.Vm" "an unprivileged user calls GetManagedObjects"
out=$(as_user "$NOBODY" busctl --system introspect org.gpupass.cluster1 $CM 2>&1)
assert_contains "$out" "org.gpupass.cluster1.Manager" "an unprivileged user introspects"
for call in "CreateVm sut vm-2 1 1024" "DeleteVm s vm-1" "SetVmGpus ss vm-1 1:X" "PowerOn s vm-1" "PowerOff s vm-1" \
            "EnterHostMaintenance s h" "SetVmResources sut vm-1 2 2048" "Migrate s vm-1"; do
        set -- $call
        assert_refused org.freedesktop.DBus.Error.AccessDenied "" --as "$NOBODY" -- org.gpupass.cluster1 $CM \
                org.gpupass.cluster1.Manager "$@"
done
assert_contains "$(cluster ListVms)" "a(ssutsssss) 1 \"$uuid\" \"vm-1\" 1 1024" "the registry is unchanged"
finish
