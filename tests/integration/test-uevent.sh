#!/bin/bash
# Binding changes made outside gpupass (an operator's own sysfs writes, a driver's probe) are followed from the
# bind/unbind uevents alone: the GPU's Driver, State and Problem, for the GPU itself and for every other member
# of its IOMMU group (a companion, a NIC sharing the group), also after a member left and came back.
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
start_bus open
start_agent
start_monitor

A=0000:3b:00.0
AUDIO=0000:3b:00.1
T4=0000:5e:00.0
NIC=0000:5e:01.0

# The GPU unbound by hand: Driver empties (a PropertiesChanged carrying it), the GPU stays on the host side.
sysfs_write /sys/bus/pci/drivers/nouveau/unbind $A
wait_prop $A Driver '""' && pass "Driver empty after a manual unbind" || fail "Driver after unbind: $(gpu_prop $A Driver)"
assert_eq '"host"' "$(gpu_prop $A State)" "an unbound GPU with its companion on the host driver is State host"
wait_for_log "$TEST_DIR/monitor.log" '"Driver"' && pass "PropertiesChanged carries Driver" || fail "no PropertiesChanged for Driver"

# Bound to vfio-pci by hand, function by function: the group counts as on vfio-pci only once the companion is too,
# and the companion's own uevents are what tell.
sysfs_write /sys/bus/pci/devices/$A/driver_override vfio-pci
sysfs_write /sys/bus/pci/drivers/vfio-pci/bind $A
wait_prop $A Driver '"vfio-pci"' && pass "Driver vfio-pci after a manual bind" || fail "Driver after bind: $(gpu_prop $A Driver)"
assert_eq '"host"' "$(gpu_prop $A State)" "GPU on vfio-pci, audio still on snd_hda_intel: State host"
sysfs_write /sys/bus/pci/drivers/snd_hda_intel/unbind $AUDIO
sysfs_write /sys/bus/pci/devices/$AUDIO/driver_override vfio-pci
sysfs_write /sys/bus/pci/drivers/vfio-pci/bind $AUDIO
wait_prop $A State '"vfio"' && pass "State vfio once the companion is on vfio-pci too" ||
        fail "State after the companion's bind: $(gpu_prop $A State)"
sysfs_write /sys/bus/pci/drivers/vfio-pci/unbind $AUDIO
wait_prop $A State '"host"' && pass "State host again when the companion leaves vfio-pci" ||
        fail "State after the companion's unbind: $(gpu_prop $A State)"
out=$(ctl return $A 2>&1) && pass "ReturnToHost puts the hand-made state back" || fail "return: $out"
assert_eq "nouveau" "$(sysfs_driver $A)" "the GPU is on nouveau"
assert_eq "snd_hda_intel" "$(sysfs_driver $AUDIO)" "the audio function is on snd_hda_intel"

# A NIC sharing the T4's group blocks it while on igb, both ways.
assert_contains "$(gpu_prop $T4 Problem)" "$NIC is bound to host driver igb" "the NIC on igb blocks the T4"
sysfs_write /sys/bus/pci/drivers/igb/unbind $NIC
wait_prop $T4 Problem '""' && pass "unbinding the NIC clears the Problem" || fail "Problem: $(gpu_prop $T4 Problem)"
assert_eq '"host"' "$(gpu_prop $T4 State)" "the T4 is State host"
sysfs_write /sys/bus/pci/drivers/igb/bind $NIC
wait_prop $T4 State '"unavailable"' && pass "binding the NIC back makes the T4 unavailable again" ||
        fail "State after the NIC's bind: $(gpu_prop $T4 State)"
assert_contains "$(gpu_prop $T4 Problem)" "$NIC is bound to host driver igb" "the Problem names the NIC again"

# The NIC leaves the bus and comes back (a rescan: add, then igb probes it): its group membership is read again,
# so its later bind/unbind still count for the T4.
sysfs_write /sys/bus/pci/devices/$NIC/remove 1
wait_prop $T4 Problem '""' && pass "the NIC removed: the T4's Problem clears" || fail "Problem: $(gpu_prop $T4 Problem)"
sysfs_write /sys/bus/pci/rescan 1
wait_prop $T4 State '"unavailable"' && pass "the NIC back on igb after a rescan: the T4 is unavailable" ||
        fail "State after the rescan: $(gpu_prop $T4 State)"
sysfs_write /sys/bus/pci/drivers/igb/unbind $NIC
wait_prop $T4 Problem '""' && pass "unbinding the returned NIC clears the Problem" || fail "Problem: $(gpu_prop $T4 Problem)"
out=$(ctl prepare $T4 2>&1) && pass "Prepare of the T4 with the returned NIC unbound" || fail "Prepare: $out"
assert_eq '"vfio"' "$(gpu_prop $T4 State)" "the T4 is State vfio"
finish
