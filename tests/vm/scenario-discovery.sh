#!/bin/bash
# Scenario 1 on the real kernel: the GPUs, groups and companions as the kernel reports them; the boot VGA
# and the group shared with a NIC refused, nothing touched.
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
start_bus policy
start_agent
kernel_group() { basename "$(readlink /sys/bus/pci/devices/$1/iommu_group)"; }

list=$(busctl --system call org.gpupass.agent1 /org/gpupass/agent1 org.gpupass.agent1.Manager ListGpus)
echo "# ListGpus: $list"
assert_contains "$list" "a(osssssssiiasbbs) 4 " "four display devices found"

# The agent's list, one line per GPU: address group mode driver companions (from busctl's JSON).
rows=$(busctl --system --json=short call org.gpupass.agent1 /org/gpupass/agent1 org.gpupass.agent1.Manager ListGpus |
        python3 -c 'import json, sys
for g in json.load(sys.stdin)["data"][0]:
    print(g[1], g[8], g[3], g[5], ",".join(g[10]) or "-")')
echo "$rows" | sed 's/^/# agent: /'
# What the kernel says: every function of base class 0x03 is a GPU.
kernel_gpus=$(for d in /sys/bus/pci/devices/*; do
        case $(cat "$d/class") in 0x03*) basename "$d" ;; esac
done)
assert_eq "$(echo "$kernel_gpus" | tr '\n' ' ')" "$(echo "$rows" | cut -d' ' -f1 | sort | tr '\n' ' ')" \
        "the agent lists exactly the kernel's display-class functions"
while read -r a group mode driver _; do
        assert_eq "$(kernel_group "$a")" "$group" "$a: IOMMU group $group is the kernel's (iommu_group link)"
        assert_eq "yes" "$([ -e "/sys/kernel/iommu_groups/$group/devices/$a" ] && echo yes || echo no)" \
                "$a: /sys/kernel/iommu_groups/$group/devices lists it"
        assert_eq "$(sysfs_driver "$a")" "$driver" "$a: Driver is the kernel's driver link"
        case $(cat "/sys/bus/pci/devices/$a/class") in
        0x0300*) want=graphics ;; 0x0302*) want=compute ;; *) want=display ;;
        esac
        assert_eq "$want" "$mode" "$a: Mode from the class the kernel reports ($(cat "/sys/bus/pci/devices/$a/class"))"
done <<<"$rows"

# The companion: the audio function of the same slot, in the same group (as the kernel made it).
assert_eq '1 "0000:00:03.1"' "$(gpu_prop 0000:00:03.0 Companions)" "the audio function is the companion of 00:03.0"
assert_eq "$(kernel_group 0000:00:03.0)" "$(kernel_group 0000:00:03.1)" "(the kernel put both in one group)"
assert_eq "0x0403" "$(cut -c1-6 /sys/bus/pci/devices/0000:00:03.1/class)" "(its class is 0x0403, HD audio)"

# The boot VGA.
assert_eq "1" "$(cat /sys/bus/pci/devices/0000:00:02.0/boot_vga)" "the kernel marks 00:02.0 boot_vga"
assert_eq "true" "$(gpu_prop 0000:00:02.0 BootVga)" "BootVga"
assert_eq "false" "$(gpu_prop 0000:00:03.0 BootVga)" "not BootVga: 00:03.0 (a 0x0380 device has no boot_vga file)"
expect_error org.gpupass.Error.BootDevice "0000:00:02.0 is the boot VGA device" -- "$(gpu_path 0000:00:02.0)" org.gpupass.agent1.Gpu Prepare
assert_eq "bochs-drm" "$(sysfs_driver 0000:00:02.0)" "the boot VGA keeps its driver"
assert_eq "(null)" "$(sysfs_override 0000:00:02.0)" "and its driver_override is untouched"

# The group shared with the bridge and the NIC.
G=$(kernel_group 0000:01:01.0)
echo "# group $G: $(ls /sys/kernel/iommu_groups/$G/devices | tr '\n' ' ')"
assert_eq "$G" "$(kernel_group 0000:01:02.0)" "the NIC is in the display device's group"
assert_eq "e1000" "$(sysfs_driver 0000:01:02.0)" "the NIC behind the bridge is on e1000"
assert_contains "$(gpu_prop 0000:01:01.0 Problem)" "0000:01:02.0 is bound to host driver e1000" "the shared group is reported not viable"
expect_error org.gpupass.Error.GroupNotViable "0000:01:02.0 is bound to host driver e1000" -- "$(gpu_path 0000:01:01.0)" org.gpupass.agent1.Gpu Prepare
for a in 0000:01:01.0 0000:01:02.0 0000:00:04.0; do
        assert_eq "(null)" "$(sysfs_override $a)" "nothing touched: $a driver_override"
done
assert_eq "bochs-drm e1000 shpchp" "$(sysfs_driver 0000:01:01.0) $(sysfs_driver 0000:01:02.0) $(sysfs_driver 0000:00:04.0)" \
        "nothing touched: drivers of the group"
assert_eq "no" "$([ -d /sys/module/vfio_pci ] && echo yes || echo no)" "discovery alone loads no vfio-pci"
finish
