#!/bin/bash
# The group a display device shares with a PCIe-to-PCI bridge and a NIC, on the real kernel.
# - Not viable while the NIC is on e1000 (the agent says so, Prepare refused).
# - The operator unbinds the NIC: the agent follows the uevent. The 6.1 kernel still finds the group not
#   viable, because the bridge is bound to shpchp, a driver that does not declare driver_managed_dma
#   (pcieport and pci-stub do): VFIO_GROUP_GET_STATUS reports it not viable, and so does the agent, naming
#   the bridge and shpchp (this suite found the agent ignoring bridges; fixed).
# - With the bridge unbound too, the kernel's VFIO gives the device: Prepare, open, ReturnToHost.
# - Rebinding the bridge and the NIC makes the group not viable again.
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
A=0000:01:01.0 NIC=0000:01:02.0 BRIDGE=0000:00:04.0
ids="$(sed 's/0x//' /sys/bus/pci/devices/$A/vendor):$(sed 's/0x//' /sys/bus/pci/devices/$A/device)"
kernel_opens() { # the kernel's VFIO: group viable and the device given (as root)
        local out
        out=$("$GPUPASS_VM_CLIENT" open "$G" $A 2>&1) || true
        echo "$out" | sed 's/^/# vfio-client: /' >&2
        [[ $out == *"ids $ids"* ]]
}
start_bus policy
start_agent
P=$(gpu_path $A)
G=$(gpu_prop $A IommuGroup)
echo "# group $G: $(ls /sys/kernel/iommu_groups/$G/devices | tr '\n' ' ')"
assert_contains "$(gpu_prop $A Problem)" "$NIC is bound to host driver e1000" "not viable while the NIC is on e1000"
expect_error org.gpupass.Error.GroupNotViable "$NIC is bound to host driver e1000" -- "$P" org.gpupass.agent1.Gpu Prepare

# The NIC unbound, the bridge still on shpchp.
sysfs_write /sys/bus/pci/drivers/e1000/unbind $NIC
assert_eq "none" "$(sysfs_driver $NIC)" "the operator unbound the NIC"
assert_eq "shpchp" "$(sysfs_driver $BRIDGE)" "the bridge is on shpchp"
problem_names() { output_has "$1" gpu_prop $A Problem; } # TEXT: the GPU's Problem holds it
problem_leaves() { ! problem_names "$1"; }
wait_until 20 "$A's Problem to no longer name e1000" problem_leaves e1000 || true
assert_not_contains "$(gpu_prop $A Problem)" "e1000" "the agent followed the NIC's unbind uevent"
problem=$(gpu_prop $A Problem)
echo "# Problem with the NIC unbound and the bridge on shpchp: $problem"
assert_contains "$problem" "$BRIDGE is bound to host driver shpchp" "the group is reported not viable while the bridge is bound to shpchp"
rc=0
out=$(busctl --system call org.gpupass.agent1 "$P" org.gpupass.agent1.Gpu Prepare 2>&1) || rc=$?
echo "# Prepare with the bridge on shpchp: rc $rc $out"
assert_eq 1 "$rc" "Prepare refused while the bridge is bound to shpchp (the kernel would not give the device)"
assert_contains "$out" "$BRIDGE is bound to host driver shpchp" "the refusal names the bridge and shpchp"
if [ $rc -eq 0 ]; then
        assert_eq "vfio-pci" "$(sysfs_driver $A)" "(Prepare bound the display device to vfio-pci)"
        kernel_opens && fail "the kernel's VFIO gave the device with the bridge on shpchp" ||
                pass "the kernel's VFIO reports group $G not viable with the bridge on shpchp (VFIO_GROUP_GET_STATUS)"
        out=$(busctl --system call org.gpupass.agent1 "$P" org.gpupass.agent1.Gpu ReturnToHost 2>&1) &&
                pass "ReturnToHost (of the unusable group)" || fail "ReturnToHost: $out"
fi

# The bridge unbound too: the kernel's rule satisfied.
sysfs_write /sys/bus/pci/drivers/shpchp/unbind $BRIDGE
assert_eq "none" "$(sysfs_driver $BRIDGE)" "the operator unbound the bridge from shpchp"
out=$(busctl --system call org.gpupass.agent1 "$P" org.gpupass.agent1.Gpu Prepare 2>&1) && pass "Prepare" || fail "Prepare: $out"
assert_eq "vfio-pci" "$(sysfs_driver $A)" "the display device is on vfio-pci"
assert_eq "vfio-pci" "$(sysfs_override $A)" "its driver_override reads vfio-pci"
assert_eq "none none" "$(sysfs_driver $NIC) $(sysfs_driver $BRIDGE)" "NIC and bridge left unbound (never assigned)"
assert_eq "(null) (null)" "$(sysfs_override $NIC) $(sysfs_override $BRIDGE)" "their driver_override untouched"
assert_eq '"vfio"' "$(gpu_prop $A State)" "State vfio"
kernel_opens && pass "the kernel's VFIO finds group $G viable (bridge and NIC unbound) and gives the device ($ids)" ||
        fail "the kernel's VFIO did not give the device with bridge and NIC unbound"
out=$(busctl --system call org.gpupass.agent1 "$P" org.gpupass.agent1.Gpu ReturnToHost 2>&1) && pass "ReturnToHost" || fail "ReturnToHost: $out"
assert_eq "bochs-drm" "$(sysfs_driver $A)" "the display device is back on bochs-drm"
assert_eq "(null)" "$(sysfs_override $A)" "driver_override reads (null)"
assert_eq '"host"' "$(gpu_prop $A State)" "State host"

# Bridge and NIC back on their drivers: not viable again.
sysfs_write /sys/bus/pci/drivers/shpchp/bind $BRIDGE
sysfs_write /sys/bus/pci/drivers/e1000/bind $NIC
assert_eq "shpchp e1000" "$(sysfs_driver $BRIDGE) $(sysfs_driver $NIC)" "the operator rebound the bridge and the NIC"
wait_until 20 "$A's Problem to name e1000" problem_names e1000 || true
assert_contains "$(gpu_prop $A Problem)" "$NIC is bound to host driver e1000" "the agent followed the bind uevent: not viable again"
expect_error org.gpupass.Error.GroupNotViable "$NIC is bound to host driver e1000" -- "$P" org.gpupass.agent1.Gpu Prepare
finish
