#!/bin/bash
# Surprise removal: a claimed GPU (a whole card: GPU and HDMI-audio companion) vanishes from the bus while
# the agent runs. The claim stays, on disk too, through later saves and a restart; the GPU is listed as
# missing with its owner and a Problem; nobody else gets it; when it is back it is the owner's again.
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
start_bus policy
start_agent
A=0000:3b:00.0
AUDIO=0000:3b:00.1
P=$(gpu_path $A)
STATE=$TEST_DIR/state/agent.state
G=org.gpupass.agent1.Gpu
M=/org/gpupass/agent1
MI=org.gpupass.agent1.Manager

busctl --system call org.gpupass.agent1 "$P" $G Claim s $VM1
assert_eq "vfio-pci vfio-pci" "$(sysfs_driver $A) $(sysfs_driver $AUDIO)" "setup: card claimed by VM1, on vfio-pci"
start_monitor

# The card goes: companion first, then the GPU, as the kernel removes a slot's functions.
simctl remove $AUDIO
simctl remove $A
wait_prop $A State '"missing"' || true
assert_eq '"missing"' "$(gpu_prop $A State)" "the vanished GPU is missing"
assert_eq "\"$VM1\"" "$(gpu_prop $A Owner)" "its Owner is kept"
assert_contains "$(gpu_prop $A Problem)" "missing from the host" "Problem says it is missing"
assert_contains "$(busctl --system call org.gpupass.agent1 $M $MI ListGpus)" "$A" "ListGpus still lists it"
assert_eq "$P" "$(busctl --system call org.gpupass.agent1 $M $MI GetGpu s $A | cut -d'"' -f2)" "GetGpu still finds it"
monitor_barrier || fail "the monitor did not record the agent's answer"
assert_not_contains "$(cat "$TEST_DIR/monitor.log")" "GpuRemoved" "no GpuRemoved signal for a claimed GPU"
assert_contains "$(cat "$STATE")" "claim $A $VM1 " "the claim is still on disk"
assert_contains "$(cat "$TEST_DIR/agent.log")" "Claimed GPU $A (VM $VM1) disappeared" "the agent logs the disappearance"

# Nobody else gets it, and the claim is not the caller's to take over.
expect_error org.gpupass.Error.Busy "claimed by VM $VM1" -- "$P" $G Claim s $VM2
expect_error org.gpupass.Error.NotOwner "not by VM $VM2" -- "$P" $G Release s $VM2
expect_error org.gpupass.Error.NotFound "missing from the host (claimed by VM $VM1)" -- "$P" $G ReturnToHost

# Later saves of the state file keep it: another claim and a maintenance toggle rewrite the file.
C=0000:3c:00.0
busctl --system call org.gpupass.agent1 "$(gpu_path $C)" $G Claim s $VM2
busctl --system call org.gpupass.agent1 $M $MI SetMaintenance b true
busctl --system call org.gpupass.agent1 $M $MI SetMaintenance b false
assert_contains "$(cat "$STATE")" "claim $A $VM1 " "the missing GPU's claim survives later saves"
assert_contains "$(cat "$STATE")" "claim $C $VM2 " "next to the new claim"

# A restart while it is still gone: the claim comes back from disk, still missing.
crash_agent
start_agent
assert_eq '"missing"' "$(gpu_prop $A State)" "after a restart it is still missing"
assert_eq "\"$VM1\"" "$(gpu_prop $A Owner)" "still owned by VM1"

# The card comes back (the kernel would probe the host driver again): it is VM1's, on vfio-pci.
simctl add $A vendor=0x10de device=0x13f2 subsystem_vendor=0x10de subsystem_device=0x115e class=0x030000 revision=0xa1 iommu_group=12 driver=nouveau
simctl add $AUDIO vendor=0x10de device=0x0fbb subsystem_vendor=0x10de subsystem_device=0x115e class=0x040300 revision=0xa1 iommu_group=12 driver=snd_hda_intel
wait_prop $A State '"claimed"' || true
assert_eq '"claimed"' "$(gpu_prop $A State)" "back on the bus, it is claimed again"
assert_eq "\"$VM1\"" "$(gpu_prop $A Owner)" "by VM1"
assert_eq '""' "$(gpu_prop $A Problem)" "no Problem any more"
group_drivers() { echo "$(sysfs_driver $A) $(sysfs_driver $AUDIO)"; }
wait_until 20 "the returned card to be on vfio-pci" output_is "vfio-pci vfio-pci" group_drivers || true
assert_eq "vfio-pci vfio-pci" "$(group_drivers)" "the returned card is on vfio-pci, not the host driver"
# The rebind is a job on the group; until it has finished, Release answers Busy (named, retryable).
release_answered() { # Release by VM1, answered other than "in progress" (rc and out are the answer)
        rc=0
        out=$(busctl --system call org.gpupass.agent1 "$P" $G Release s $VM1 2>&1) || rc=$?
        [ $rc -eq 0 ] || [[ "$out" != *"in progress"* ]]
}
wait_until 20 "Release to be answered other than 'in progress'" release_answered || true
[ $rc -eq 0 ] && pass "the owner releases it as usual" || fail "Release: $out"
assert_not_contains "$(cat "$STATE")" "claim $A " "the release is on disk"
finish
