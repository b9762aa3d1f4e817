#!/bin/bash
# Prepare and ReturnToHost the kernel's way, every refusal, and the rollback of a half-done group.
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
start_bus policy
start_agent
start_monitor

A=0000:3b:00.0
AUDIO=0000:3b:00.1
P=$(gpu_path $A)

# Prepare binds the whole group: the GPU and its HDMI audio.
out=$(busctl --system call org.gpupass.agent1 "$P" org.gpupass.agent1.Gpu Prepare 2>&1) && pass "Prepare of $A" || fail "Prepare of $A: $out"
assert_eq "vfio-pci" "$(sysfs_driver $A)" "the GPU is on vfio-pci (sysfs driver link)"
assert_eq "vfio-pci" "$(sysfs_driver $AUDIO)" "its audio companion is on vfio-pci"
assert_eq "vfio-pci" "$(sysfs_override $A)" "driver_override of the GPU names vfio-pci"
assert_eq '"vfio"' "$(gpu_prop $A State)" "State vfio"
assert_eq '"vfio-pci"' "$(gpu_prop $A Driver)" "Driver vfio-pci"
wait_for_log "$TEST_DIR/monitor.log" '"State"' && pass "PropertiesChanged for State seen" || fail "no PropertiesChanged for State"
out=$(busctl --system call org.gpupass.agent1 "$P" org.gpupass.agent1.Gpu Prepare 2>&1) && pass "Prepare again is a no-op" || fail "second Prepare: $out"

# ReturnToHost: override cleared with a newline, unbind, probe: the host drivers take them back.
out=$(ctl return 3b:00.0 2>&1) && pass "ReturnToHost (gpupassctl return)" || fail "return: $out"
assert_eq "nouveau" "$(sysfs_driver $A)" "the GPU is back on nouveau"
assert_eq "snd_hda_intel" "$(sysfs_driver $AUDIO)" "the audio function is back on snd_hda_intel"
assert_eq "(null)" "$(sysfs_override $A)" "driver_override cleared"
assert_eq "(null)" "$(sysfs_override $AUDIO)" "companion driver_override cleared"
assert_eq '"host"' "$(gpu_prop $A State)" "State host"

# Refusals, each naming the device and the reason; nothing is touched.
expect_error org.gpupass.Error.BootDevice "0000:03:00.0 is the boot VGA device" -- "$(gpu_path 0000:03:00.0)" org.gpupass.agent1.Gpu Prepare
assert_eq "ast" "$(sysfs_driver 0000:03:00.0)" "the boot VGA stays on ast"
expect_error org.gpupass.Error.NoIommu "0000:d8:00.0 is in no IOMMU group" -- "$(gpu_path 0000:d8:00.0)" org.gpupass.agent1.Gpu Prepare
expect_error org.gpupass.Error.GroupNotViable "0000:5e:01.0 is bound to host driver igb" -- "$(gpu_path 0000:5e:00.0)" org.gpupass.agent1.Gpu Prepare
assert_eq "nouveau" "$(sysfs_driver 0000:5e:00.0)" "the T4 is untouched"
assert_eq "igb" "$(sysfs_driver 0000:5e:01.0)" "the NIC is untouched"
assert_eq "(null)" "$(sysfs_override 0000:5e:00.0)" "no override left on the T4"
assert_eq "pcieport" "$(sysfs_driver 0000:5d:00.0)" "the bridge is untouched"

# Once the NIC is off its host driver the group is viable; the NIC is not assigned, the bridge neither.
sysfs_write /sys/bus/pci/drivers/igb/unbind 0000:5e:01.0
wait_prop 0000:5e:00.0 Problem '""' || true
assert_eq '""' "$(gpu_prop 0000:5e:00.0 Problem)" "the Problem clears when the NIC is unbound (uevent followed)"
assert_eq '"host"' "$(gpu_prop 0000:5e:00.0 State)" "the T4 is no longer unavailable"
out=$(ctl prepare 0000:5e:00.0 2>&1) && pass "Prepare of the T4 with the NIC unbound" || fail "Prepare T4: $out"
assert_eq "vfio-pci" "$(sysfs_driver 0000:5e:00.0)" "the T4 is on vfio-pci"
assert_eq "none" "$(sysfs_driver 0000:5e:01.0)" "the NIC stays unbound (not assigned)"
assert_eq "pcieport" "$(sysfs_driver 0000:5d:00.0)" "the bridge stays on pcieport"

# A probe that fails half-way: the whole group goes back as it was.
simctl fail-probe $AUDIO vfio-pci
rc=0; out=$(ctl prepare $A 2>&1) || rc=$?
assert_eq 1 "$rc" "gpupassctl exits 1 on a failed Prepare"
assert_contains "$out" "0000:3b:00.1 did not bind to vfio-pci" "the error names the function that did not bind"
assert_contains "$out" "org.gpupass.Error.BindFailed" "BindFailed"
assert_eq "nouveau" "$(sysfs_driver $A)" "rollback: the GPU is back on nouveau"
assert_eq "snd_hda_intel" "$(sysfs_driver $AUDIO)" "rollback: the audio function is back on snd_hda_intel"
assert_eq "(null)" "$(sysfs_override $A)" "rollback: no override left on the GPU"
assert_eq "(null)" "$(sysfs_override $AUDIO)" "rollback: no override left on the audio function"
assert_eq '"host"' "$(gpu_prop $A State)" "rollback: State host"
simctl fail-probe $AUDIO -

# A GPU whose host driver is not loaded comes back unbound, and says so.
simctl driver-unload nouveau
out=$(ctl prepare 3c:00.0 2>&1) && pass "Prepare of an unbound GPU" || fail "Prepare unbound: $out"
assert_eq "vfio-pci" "$(sysfs_driver 0000:3c:00.0)" "an unbound GPU binds to vfio-pci"
out=$(ctl return 3c:00.0 2>&1) && pass "ReturnToHost without a host driver" || fail "return: $out"
assert_eq "none" "$(sysfs_driver 0000:3c:00.0)" "no host driver: unbound"
assert_eq '""' "$(gpu_prop 0000:3c:00.0 Driver)" "Driver empty"
assert_eq '"host"' "$(gpu_prop 0000:3c:00.0 State)" "State host"

# Rescan re-reads everything and changes nothing.
out=$(ctl rescan 2>&1) && pass "Rescan" || fail "Rescan: $out"
assert_contains "$(ctl list)" "6 GPUs listed." "still 6 GPUs after Rescan"
finish
