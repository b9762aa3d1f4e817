#!/bin/bash
# Scenario 1 on the real kernel: the GPUs, groups and companions as the kernel reports them; the boot VGA
# and the group shared with a NIC refused.
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
start_bus policy
start_agent
kernel_group() { basename "$(readlink /sys/bus/pci/devices/$1/iommu_group)"; }

list=$(busctl --system call org.gpupass.agent1 /org/gpupass/agent1 org.gpupass.agent1.Manager ListGpus)
echo "# $list"
assert_contains "$list" "a(osssssssiiasbbs) 4 " "four display devices found"
for a in 0000:00:02.0 0000:00:03.0 0000:01:01.0 0000:02:00.0; do
        assert_eq "$(kernel_group $a)" "$(gpu_prop $a IommuGroup)" "IOMMU group of $a as the kernel reports it"
done
assert_eq '1 "0000:00:03.1"' "$(gpu_prop 0000:00:03.0 Companions)" "the audio function is the companion of 00:03.0"
assert_eq "$(kernel_group 0000:00:03.0)" "$(kernel_group 0000:00:03.1)" "(the kernel put both in one group)"
assert_eq "1" "$(cat /sys/bus/pci/devices/0000:00:02.0/boot_vga)" "the kernel marks 00:02.0 boot_vga"
assert_eq "true" "$(gpu_prop 0000:00:02.0 BootVga)" "BootVga"
expect_error org.gpupass.Error.BootDevice "0000:00:02.0 is the boot VGA device" -- "$(gpu_path 0000:00:02.0)" org.gpupass.agent1.Gpu Prepare
assert_eq "e1000" "$(sysfs_driver 0000:01:02.0)" "the NIC behind the bridge is on e1000"
assert_contains "$(gpu_prop 0000:01:01.0 Problem)" "0000:01:02.0 is bound to host driver e1000" "the shared group is reported not viable"
expect_error org.gpupass.Error.GroupNotViable "0000:01:02.0 is bound to host driver e1000" -- "$(gpu_path 0000:01:01.0)" org.gpupass.agent1.Gpu Prepare
assert_eq "bochs-drm" "$(sysfs_driver 0000:01:01.0)" "nothing touched"
finish
