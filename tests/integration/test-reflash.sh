#!/bin/bash
# A GPU reflashed between graphics and compute mode: live (remove + rescan at the same slot, or the same
# serial number at another slot) and across a restart of the agent.
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
start_bus policy
start_agent
start_monitor
G=org.gpupass.agent1.Gpu
M60="vendor=0x10de device=0x13f2 subsystem_vendor=0x10de subsystem_device=0x115e revision=0xa1 driver=nouveau"

# Live, unclaimed: the object comes back with the new identity and the manager says what changed.
C=0000:3c:00.0
simctl remove $C
simctl add $C $M60 class=0x030200 iommu_group=13
wait_prop $C Model '"NVIDIA Tesla M60.compute"' || true
assert_eq '"NVIDIA Tesla M60.compute"' "$(gpu_prop $C Model)" "the model gains .compute"
assert_eq '"compute"' "$(gpu_prop $C Mode)" "Mode compute"
assert_eq '"NVIDIA Tesla M60"' "$(gpu_prop $C PreviousModel)" "PreviousModel keeps the old name"
wait_for_log "$TEST_DIR/monitor.log" 'Member=IdentityChanged' && pass "IdentityChanged emitted" || fail "no IdentityChanged"
log=$(cat "$TEST_DIR/monitor.log")
assert_contains "$log" 'STRING "NVIDIA Tesla M60";' "IdentityChanged carries the old model"
assert_contains "$log" 'STRING "NVIDIA Tesla M60.compute";' "IdentityChanged carries the new model"
assert_contains "$log" "OBJECT_PATH \"$(gpu_path $C)\";" "IdentityChanged names the GPU object"

# Live, claimed: the claim stays, marked for reconfiguration.
A=0000:3b:00.0
busctl --system call org.gpupass.agent1 "$(gpu_path $A)" $G Claim s $VM1
simctl remove 0000:3b:00.1
simctl remove $A
simctl add $A $M60 class=0x030200 iommu_group=12
simctl add 0000:3b:00.1 vendor=0x10de device=0x0fbb class=0x040300 iommu_group=12 driver=snd_hda_intel
wait_prop $A NeedsReconfiguration true || true
assert_eq "true" "$(gpu_prop $A NeedsReconfiguration)" "a claimed GPU that changed identity needs reconfiguration"
assert_eq "\"$VM1\"" "$(gpu_prop $A Owner)" "and keeps its claim"
assert_contains "$(cat "$TEST_DIR/state/agent.state")" "claim $A $VM1 - 1" "the flag is on disk"
out=$(busctl --system call org.gpupass.agent1 "$(gpu_path $A)" $G Release s $VM1 2>&1) && pass "Release" || fail "$out"
assert_eq "false" "$(gpu_prop $A NeedsReconfiguration)" "the flag ends with the claim"

# Across a restart: the agent compares with its inventory and reports after taking its name.
stop_agent
: >"$TEST_DIR/monitor.log"
C2=0000:86:00.0
simctl remove $C2
simctl add $C2 $M60 class=0x030000 iommu_group=40 serial=0x0123456789abcdef
start_agent
assert_eq '"NVIDIA Tesla M60"' "$(gpu_prop $C2 Model)" "back in graphics mode after the 'reboot'"
assert_eq '"NVIDIA Tesla M60.compute"' "$(gpu_prop $C2 PreviousModel)" "the change found at start-up is exposed"
wait_for_log "$TEST_DIR/monitor.log" 'Member=IdentityChanged' && pass "IdentityChanged emitted after start-up" || fail "no IdentityChanged at start-up"

# The same card (serial number) moved to another slot, in compute mode again.
simctl remove $C2
simctl add 0000:af:00.0 $M60 class=0x030200 iommu_group=50 serial=0x0123456789abcdef
wait_prop 0000:af:00.0 PreviousModel '"NVIDIA Tesla M60"' || true
assert_eq '"NVIDIA Tesla M60"' "$(gpu_prop 0000:af:00.0 PreviousModel)" "a moved card is recognised by its serial number"
assert_eq '"NVIDIA Tesla M60.compute"' "$(gpu_prop 0000:af:00.0 Model)" "with its new model"

# A claim clears PreviousModel: the VM was configured for the GPU as it is now.
busctl --system call org.gpupass.agent1 "$(gpu_path $C)" $G Claim s $VM2
assert_eq '""' "$(gpu_prop $C PreviousModel)" "PreviousModel cleared by a new claim"
# ... also on disk: the next start does not report the change again (the aggregator would flag the VM).
stop_agent
start_agent
assert_eq '""' "$(gpu_prop $C PreviousModel)" "PreviousModel still cleared after a restart"
assert_eq "\"$VM2\"" "$(gpu_prop $C Owner)" "and the claim kept"
finish
