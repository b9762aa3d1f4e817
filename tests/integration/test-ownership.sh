#!/bin/bash
# Claims: exclusive, owned by the VM, on disk before the reply, kept across crashes, hot removal and
# corruption; maintenance; the VFIO calls where there is no VFIO.
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
start_bus policy
start_agent
A=0000:3b:00.0
P=$(gpu_path $A)
STATE=$TEST_DIR/state/agent.state
G=org.gpupass.agent1.Gpu
M=/org/gpupass/agent1

expect_error org.gpupass.Error.InvalidArgument "'not-a-uuid' is not a VM UUID" -- "$P" $G Claim s not-a-uuid
# Release is idempotent for a VM: a group nobody holds is released, which is what was asked.
out=$(busctl --system call org.gpupass.agent1 "$P" $G Release s $VM1 2>&1) && pass "Release of an unclaimed GPU succeeds" ||
        fail "Release of an unclaimed GPU: $out"

# Claim prepares the group first, all of it, and records the claim before replying.
out=$(busctl --system call org.gpupass.agent1 "$P" $G Claim s $VM1 2>&1) && pass "Claim by VM1" || fail "Claim: $out"
assert_eq "\"$VM1\"" "$(gpu_prop $A Owner)" "Owner is VM1"
assert_eq '"claimed"' "$(gpu_prop $A State)" "State claimed"
assert_eq "vfio-pci" "$(sysfs_driver $A)" "Claim bound the GPU to vfio-pci"
assert_eq "vfio-pci" "$(sysfs_driver 0000:3b:00.1)" "and its companion"
assert_contains "$(cat "$STATE")" "claim $A $VM1 - 0" "the claim is in the state file when Claim returns"
out=$(busctl --system call org.gpupass.agent1 "$P" $G Claim s $VM1 2>&1) && pass "Claim again by the owner is a no-op" || fail "$out"
expect_error org.gpupass.Error.Busy "0000:3b:00.0 is claimed by VM $VM1" -- "$P" $G Claim s $VM2
expect_error org.gpupass.Error.NotOwner "claimed by VM $VM1, not by VM $VM2" -- "$P" $G Release s $VM2
expect_error org.gpupass.Error.Busy "release it first" -- "$P" $G ReturnToHost
expect_error org.gpupass.Error.NotOwner "not by VM $VM2" -- "$P" $G OpenVfio s $VM2

# The simulated host has no /dev/vfio: the VFIO calls say so (they are proven on a real kernel, tests/vm).
expect_error org.gpupass.Error.VfioUnavailable "No VFIO device node for IOMMU group 12" -- "$P" $G OpenVfio s $VM1
expect_error org.gpupass.Error.VfioUnavailable "/dev/vfio/12" -- "$P" $G AllowUser su $VM1 1000

# The claim belongs to the VM, not to the connection, and survives a crash of the agent.
crash_agent
start_agent
assert_eq "\"$VM1\"" "$(gpu_prop $A Owner)" "the claim survives SIGKILL and restart"
assert_eq "vfio-pci" "$(sysfs_driver $A)" "still on vfio-pci after restart"

# Release resets the functions (the sysfs reset here) and frees the group; it stays on vfio-pci.
out=$(busctl --system call org.gpupass.agent1 "$P" $G Release s $VM1 2>&1) && pass "Release by the owner" || fail "Release: $out"
assert_eq '""' "$(gpu_prop $A Owner)" "no Owner after Release"
assert_eq '"vfio"' "$(gpu_prop $A State)" "State vfio after Release"
assert_not_contains "$(cat "$STATE")" "claim " "the release is on disk"
out=$(busctl --system call org.gpupass.agent1 "$P" $G Release s $VM1 2>&1) && pass "Release again by the same VM succeeds" ||
        fail "Release again: $out"
out=$(busctl --system call org.gpupass.agent1 "$P" $G Claim s $VM2 2>&1) && pass "another VM may claim it now" || fail "$out"
out=$(busctl --system call org.gpupass.agent1 "$P" $G Release s $VM2 2>&1) && pass "and release it" || fail "$out"

# While a VM's own Release runs (a slow reset), its Release again succeeds (the group is no longer its) and
# its Claim is Busy (the group is not free yet): the aggregator never takes a reset in progress for a claim.
busctl --system call org.gpupass.agent1 "$P" $G Claim s $VM1 >/dev/null
simctl reset-delay 2000
start_monitor release-calls.log
busctl --system call org.gpupass.agent1 "$P" $G Release s $VM1 >"$TEST_DIR/release.out" 2>&1 &
release=$!
# The Release has reached the agent (its reset then takes 2 s): the bus delivers the calls below after it.
wait_until 20 "the Release to reach the agent" file_has "$TEST_DIR/release-calls.log" "Member=Release" ||
        fail "the Release did not reach the agent"
expect_error org.gpupass.Error.Busy "VM $VM1 is releasing IOMMU group 12" -- "$P" $G Claim s $VM1
out=$(busctl --system call org.gpupass.agent1 "$P" $G Release s $VM1 2>&1) &&
        pass "Release by the same VM during its release succeeds" || fail "Release during the release: $out"
if wait $release; then pass "the first Release completes"; else fail "the first Release: $(cat "$TEST_DIR/release.out")"; fi
simctl reset-delay 0
assert_eq '""' "$(gpu_prop $A Owner)" "no Owner once the reset is done"
out=$(busctl --system call org.gpupass.agent1 "$P" $G Claim s $VM1 2>&1) && pass "the VM may claim it again after its release" ||
        fail "Claim after the release: $out"
busctl --system call org.gpupass.agent1 "$P" $G Release s $VM1 >/dev/null

# Maintenance refuses new claims, persists, and is on disk before the reply.
busctl --system call org.gpupass.agent1 $M org.gpupass.agent1.Manager SetMaintenance b true
assert_contains "$(cat "$STATE")" "maintenance 1" "maintenance is on disk"
expect_error org.gpupass.Error.InMaintenance "in maintenance" -- "$(gpu_path 0000:3c:00.0)" $G Claim s $VM1
expect_error org.gpupass.Error.InvalidArgument "not a VM UUID" -- "$(gpu_path 0000:3c:00.0)" $G Claim s bad
crash_agent
start_agent
assert_eq 'b true' "$(busctl --system get-property org.gpupass.agent1 $M org.gpupass.agent1.Manager Maintenance)" "maintenance survives a restart"
ctl maintenance off
assert_contains "$(cat "$STATE")" "maintenance 0" "maintenance off on disk"

# A claimed GPU that disappears stays claimed ("missing") and is never handed to another VM.
C=0000:3c:00.0
busctl --system call org.gpupass.agent1 "$(gpu_path $C)" $G Claim s $VM1
simctl remove $C
wait_prop $C State '"missing"' || true
assert_eq '"missing"' "$(gpu_prop $C State)" "a claimed GPU that vanished is missing"
assert_eq "\"$VM1\"" "$(gpu_prop $C Owner)" "and keeps its owner"
expect_error org.gpupass.Error.Busy "claimed by VM $VM1" -- "$(gpu_path $C)" $G Claim s $VM2
simctl add $C vendor=0x10de device=0x13f2 subsystem_vendor=0x10de subsystem_device=0x115e class=0x030000 revision=0xa1 iommu_group=13 driver=nouveau
wait_prop $C State '"claimed"' || true
assert_eq '"claimed"' "$(gpu_prop $C State)" "back on the bus, it is still VM1's"
assert_eq "\"$VM1\"" "$(gpu_prop $C Owner)" "owner unchanged after it came back"

# Absent at start-up: the claim is kept with a placeholder object.
stop_agent
simctl remove $C
start_agent
assert_eq '"missing"' "$(gpu_prop $C State)" "a claimed GPU absent at start-up is listed as missing"
assert_eq "\"$VM1\"" "$(gpu_prop $C Owner)" "with its owner"
assert_contains "$(gpu_prop $C Problem)" "missing from the host" "Problem says so"
out=$(busctl --system call org.gpupass.agent1 "$(gpu_path $C)" $G Release s $VM1 2>&1) && pass "the owner may release a missing GPU" || fail "$out"
assert_not_contains "$(busctl --system call org.gpupass.agent1 $M org.gpupass.agent1.Manager ListGpus)" "$C" "a released missing GPU is gone"

# A group half bound by a crash is completed: back to the host when nobody claimed it.
stop_agent
sysfs_write /sys/bus/pci/devices/$A/driver_override vfio-pci
sysfs_write /sys/bus/pci/drivers/vfio-pci/unbind $A
sysfs_write /sys/bus/pci/drivers_probe $A
sysfs_write /sys/bus/pci/devices/0000:3b:00.1/driver_override "
"
sysfs_write /sys/bus/pci/drivers/vfio-pci/unbind 0000:3b:00.1
sysfs_write /sys/bus/pci/drivers_probe 0000:3b:00.1
assert_eq "vfio-pci snd_hda_intel" "$(sysfs_driver $A) $(sysfs_driver 0000:3b:00.1)" "setup: group 12 half bound"
start_agent
assert_eq "nouveau snd_hda_intel" "$(sysfs_driver $A) $(sysfs_driver 0000:3b:00.1)" "an unclaimed half-bound group is returned to the host"

# A corrupt state file is detected, kept aside, reported, and nothing is handed out until an operator acts.
busctl --system call org.gpupass.agent1 "$P" $G Claim s $VM2
stop_agent
sed -i "s/$VM2/$VM1/" "$STATE"
start_agent
assert_contains "$(busctl --system get-property org.gpupass.agent1 $M org.gpupass.agent1.Manager StateProblem)" "was corrupt" "StateProblem reports the corruption"
assert_eq 'b true' "$(busctl --system get-property org.gpupass.agent1 $M org.gpupass.agent1.Manager Maintenance)" "maintenance is forced on"
assert_eq 1 "$(ls "$TEST_DIR"/state/agent.state.corrupt-* | wc -l)" "the corrupt file is kept for the operator"
expect_error org.gpupass.Error.InMaintenance "maintenance" -- "$P" $G Claim s $VM1
ctl maintenance off
assert_eq 's ""' "$(busctl --system get-property org.gpupass.agent1 $M org.gpupass.agent1.Manager StateProblem)" "turning maintenance off acknowledges it"
finish
