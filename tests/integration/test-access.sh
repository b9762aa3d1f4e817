#!/bin/bash
# Who may do what: the bus policy file on a default-deny bus, and the daemon's own check behind it.
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
NOBODY="--reuid=65534 --regid=65534 --clear-groups"
M=/org/gpupass/agent1

# refuse_all ERROR MESSAGE: every mutating call, made as nobody, is refused with ERROR.
refuse_all() {
        local error=$1 message=$2 call path method iface
        for call in "$P Prepare" "$P ReturnToHost" "$P Claim s $VM1" "$P Release s $VM1" "$P OpenVfio s $VM1" \
                    "$P AllowUser su $VM1 1000" "$M Rescan" "$M SetMaintenance b true"; do
                set -- $call
                path=$1 method=$2; shift 2
                if [ "$path" == "$M" ]; then iface=org.gpupass.agent1.Manager; else iface=org.gpupass.agent1.Gpu; fi
                expect_error "$error" "$message" --as "$NOBODY" -- "$path" "$iface" "$method" "$@"
        done
}

start_bus policy
start_agent
P=$(gpu_path 0000:3c:00.0)

# Reading is open to everyone.
out=$(as_user "$NOBODY" busctl --system get-property org.gpupass.agent1 "$P" org.gpupass.agent1.Gpu Model 2>&1)
assert_eq 's "NVIDIA Tesla M60"' "$out" "an unprivileged user reads properties"
out=$(as_user "$NOBODY" busctl --system call org.gpupass.agent1 $M org.gpupass.agent1.Manager ListGpus 2>&1)
assert_contains "$out" "a(osssssssiiasbbs) 6" "an unprivileged user calls ListGpus"
out=$(as_user "$NOBODY" busctl --system call org.gpupass.agent1 $M org.gpupass.agent1.Manager GetGpu s 3c:00.0 2>&1)
assert_eq "o \"$P\"" "$out" "an unprivileged user calls GetGpu"
out=$(as_user "$NOBODY" busctl --system call org.gpupass.agent1 $M org.freedesktop.DBus.ObjectManager GetManagedObjects 2>&1)
assert_contains "$out" "org.gpupass.agent1.Gpu" "an unprivileged user calls GetManagedObjects"
out=$(as_user "$NOBODY" busctl --system introspect org.gpupass.agent1 "$P" 2>&1)
assert_contains "$out" "org.gpupass.agent1.Gpu" "an unprivileged user introspects"
out=$(as_user "$NOBODY" "$GPUPASSCTL" list 2>&1)
assert_contains "$out" "6 GPUs listed." "gpupassctl list works unprivileged"

# Every mutating call is refused by the bus policy for an unprivileged caller; nothing changes.
refuse_all org.freedesktop.DBus.Error.AccessDenied ""
assert_eq "nouveau" "$(sysfs_driver 0000:3c:00.0)" "nothing was bound"
assert_eq '""' "$(gpu_prop 0000:3c:00.0 Owner)" "nothing was claimed"
assert_eq 'b false' "$(busctl --system get-property org.gpupass.agent1 $M org.gpupass.agent1.Manager Maintenance)" "maintenance unchanged"
rc=0; as_user "$NOBODY" "$GPUPASSCTL" prepare 3c:00.0 >/dev/null 2>&1 || rc=$?
assert_eq 1 "$rc" "gpupassctl prepare as nobody exits 1"
stop_agent

# On a bus that lets anyone call anything, the daemon refuses by itself, naming the uid; the
# configured admin group (gid 100 here) may act.
stop_bus
start_bus open
start_agent "[Agent]
AdminGroup=100"
P=$(gpu_path 0000:3c:00.0)
refuse_all org.gpupass.Error.AccessDenied "uid 65534 may not change GPU state"
assert_eq "nouveau" "$(sysfs_driver 0000:3c:00.0)" "still nothing bound"
# The caller check comes before the argument check: a malformed VM is still AccessDenied.
expect_error org.gpupass.Error.AccessDenied "may not change" --as "$NOBODY" -- "$P" org.gpupass.agent1.Gpu Claim s not-a-uuid

out=$(as_user "--reuid=65534 --regid=65534 --groups=100" busctl --system call org.gpupass.agent1 $M \
        org.gpupass.agent1.Manager SetMaintenance b true 2>&1) && pass "a member of the admin group may act" || fail "admin group member refused: $out"
assert_eq 'b true' "$(busctl --system get-property org.gpupass.agent1 $M org.gpupass.agent1.Manager Maintenance)" "maintenance set by the admin group member"
out=$(as_user "--reuid=65534 --regid=100 --clear-groups" busctl --system call org.gpupass.agent1 $M \
        org.gpupass.agent1.Manager SetMaintenance b false 2>&1) && pass "primary group counts too" || fail "primary admin group refused: $out"
out=$(as_user "--reuid=65534 --regid=100 --clear-groups" busctl --system call org.gpupass.agent1 "$P" \
        org.gpupass.agent1.Gpu Prepare 2>&1) && pass "the admin group prepares a GPU" || fail "admin Prepare: $out"
assert_eq "vfio-pci" "$(sysfs_driver 0000:3c:00.0)" "prepared by the admin group"
finish
