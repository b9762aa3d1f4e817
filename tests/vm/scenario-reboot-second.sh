#!/bin/bash
# Scenario 4, second boot of the reboot stand-in: a fresh kernel (every device back on its host driver,
# vfio-pci not loaded), a qxl (1b36:0100) where the first boot had a bochs-display (1234:1111), and the
# agent's state directory as the first boot left it. The agent must report the identity change at
# start-up, keep both claims (the changed GPU's marked for reconfiguration) and take both groups back
# to vfio-pci for their VMs.
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
A=0000:00:03.0
H=0000:02:00.0
state=$RESULTS/agent-state
[ -s "$state/agent.state" ] && pass "the first boot's agent.state is on the share" || fail "no $state/agent.state"
echo "# at boot: $H $(cat /sys/bus/pci/devices/$H/vendor):$(cat /sys/bus/pci/devices/$H/device) on $(basename "$(readlink /sys/bus/pci/devices/$H/driver)"), $A on $(basename "$(readlink /sys/bus/pci/devices/$A/driver)")"
assert_eq "0x1b36:0x0100" "$(cat /sys/bus/pci/devices/$H/vendor):$(cat /sys/bus/pci/devices/$H/device)" "the kernel enumerated the qxl at $H"
ln -s "$state" "$TEST_DIR/state"
start_bus policy
# Before the agent: IdentityChanged for changes found at start-up comes right after it takes its name.
start_monitor
start_agent
assert_eq '"Red Hat QXL paravirtual graphic card"' "$(gpu_prop $H Model)" "$H Model is the new device's (pci.ids' name for 1b36:0100)"
assert_eq '"PCI 1234:1111"' "$(gpu_prop $H PreviousModel)" "$H PreviousModel is the first boot's device"
wait_for_log "$TEST_DIR/monitor.log" 'Member=IdentityChanged' && pass "IdentityChanged emitted at start-up" || fail "no IdentityChanged at start-up"
log=$(cat "$TEST_DIR/monitor.log")
assert_contains "$log" "OBJECT_PATH \"$(gpu_path $H)\";" "IdentityChanged names $H"
assert_contains "$log" 'STRING "PCI 1234:1111";' "IdentityChanged carries the old model"
assert_contains "$log" 'STRING "Red Hat QXL paravirtual graphic card";' "IdentityChanged carries the new model"
grep -A6 'Member=IdentityChanged' "$TEST_DIR/monitor.log" | grep -E 'OBJECT_PATH|STRING' | sed 's/^ */# signal: /'
for pair in "$A $VM1 false" "$H $VM2 true"; do
        set -- $pair
        echo "# $1: State $(gpu_prop $1 State), Owner $(gpu_prop $1 Owner), NeedsReconfiguration $(gpu_prop $1 NeedsReconfiguration), driver $(basename "$(readlink /sys/bus/pci/devices/$1/driver)")"
        assert_eq "\"$2\"" "$(gpu_prop $1 Owner)" "$1 still claimed by VM $2 after the reboot"
        assert_eq '"claimed"' "$(gpu_prop $1 State)" "$1 State claimed"
        assert_eq "$3" "$(gpu_prop $1 NeedsReconfiguration)" "$1 NeedsReconfiguration $3"
        assert_eq "vfio-pci" "$(basename "$(readlink /sys/bus/pci/devices/$1/driver)")" "$1 taken back to vfio-pci for its VM (sysfs)"
done
assert_eq "vfio-pci" "$(basename "$(readlink /sys/bus/pci/devices/0000:00:03.1/driver)")" "its companion 00:03.1 too"
finish
