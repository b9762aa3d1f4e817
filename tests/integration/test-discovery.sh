#!/bin/bash
# Discovery over the multi-GPU host: every property, as busctl shows it, and the manager's view.
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
start_bus policy
start_agent

M=/org/gpupass/agent1
assert_eq 'b true' "$(busctl --system get-property org.gpupass.agent1 $M org.gpupass.agent1.Manager IommuEnabled)" "IommuEnabled"
assert_eq 'b false' "$(busctl --system get-property org.gpupass.agent1 $M org.gpupass.agent1.Manager Maintenance)" "Maintenance off"
assert_contains "$(busctl --system get-property org.gpupass.agent1 $M org.gpupass.agent1.Manager Version)" 's "0.' "Version"
assert_contains "$(busctl --system get-property org.gpupass.agent1 $M org.gpupass.agent1.Manager Hostname)" "s \"$(hostname)\"" "Hostname"
assert_eq "u $(nproc)" "$(busctl --system get-property org.gpupass.agent1 $M org.gpupass.agent1.Manager CpuCount)" "CpuCount"
assert_contains "$(busctl --system get-property org.gpupass.agent1 $M org.gpupass.agent1.Manager MemoryMiB)" "t " "MemoryMiB"
assert_eq "s \"$(cat /etc/machine-id)\"" "$(busctl --system get-property org.gpupass.agent1 $M org.gpupass.agent1.Manager MachineId)" "MachineId"

# Six display functions; bridges, NIC and audio are not GPUs.
list=$(busctl --system call org.gpupass.agent1 $M org.gpupass.agent1.Manager ListGpus)
assert_contains "$list" 'a(osssssssiiasbbs) 6 ' "ListGpus lists the 6 GPUs"
assert_not_contains "$list" '"0000:5e:01.0" "' "the NIC is not a GPU"
assert_contains "$list" '"0000:3b:00.0" "NVIDIA Tesla M60" "graphics" "host" "nouveau" "" "" 12 0 1 "0000:3b:00.1" false false ""' "ListGpus entry of the M60 with its audio companion"

# Every property of the M60 with its HDMI audio.
A=0000:3b:00.0
assert_eq 's "0000:3b:00.0"' "$(busctl --system get-property org.gpupass.agent1 "$(gpu_path $A)" org.gpupass.agent1.Gpu Address)" "Address with domain"
assert_eq "4318" "$(gpu_prop $A VendorId)" "VendorId 0x10de"
assert_eq "5106" "$(gpu_prop $A DeviceId)" "DeviceId 0x13f2"
assert_eq "4318" "$(gpu_prop $A SubsystemVendorId)" "SubsystemVendorId"
assert_eq "4446" "$(gpu_prop $A SubsystemDeviceId)" "SubsystemDeviceId 0x115e"
assert_eq "196608" "$(gpu_prop $A Class)" "Class 0x030000"
assert_eq "161" "$(gpu_prop $A Revision)" "Revision 0xa1"
assert_eq '"NVIDIA Tesla M60"' "$(gpu_prop $A Model)" "Model from pci.ids"
assert_eq '"graphics"' "$(gpu_prop $A Mode)" "Mode graphics"
assert_eq '""' "$(gpu_prop $A SerialNumber)" "no serial number"
assert_eq "12" "$(gpu_prop $A IommuGroup)" "IommuGroup"
assert_eq '1 "0000:3b:00.1"' "$(gpu_prop $A Companions)" "the HDMI audio function is its companion"
assert_eq '"nouveau"' "$(gpu_prop $A Driver)" "Driver"
assert_eq '"host"' "$(gpu_prop $A State)" "State host"
assert_eq '""' "$(gpu_prop $A Owner)" "no Owner"
assert_eq "false" "$(gpu_prop $A NeedsReconfiguration)" "NeedsReconfiguration"
assert_eq "false" "$(gpu_prop $A BootVga)" "BootVga false"
assert_eq "0" "$(gpu_prop $A NumaNode)" "NumaNode"
assert_eq '""' "$(gpu_prop $A Problem)" "no Problem"
assert_eq '""' "$(gpu_prop $A PreviousModel)" "no PreviousModel"
assert_eq '"flr bus"' "$(gpu_prop $A ResetMethod)" "ResetMethod from sysfs reset_method"

# Compute mode and a serial number.
assert_eq '"NVIDIA Tesla M60.compute"' "$(gpu_prop 0000:86:00.0 Model)" "compute mode appends .compute"
assert_eq '"compute"' "$(gpu_prop 0000:86:00.0 Mode)" "Mode compute"
assert_eq '"01-23-45-67-89-ab-cd-ef"' "$(gpu_prop 0000:86:00.0 SerialNumber)" "Device Serial Number from config space"
assert_eq '"NVIDIA Tesla T4.compute"' "$(gpu_prop 0000:5e:00.0 Model)" "T4 in compute mode"

# What cannot be passed through, and why.
assert_eq "true" "$(gpu_prop 0000:03:00.0 BootVga)" "the boot VGA is flagged"
assert_eq '"unavailable"' "$(gpu_prop 0000:03:00.0 State)" "boot VGA unavailable"
assert_eq '"ASPEED Graphics Family"' "$(gpu_prop 0000:03:00.0 Model)" "ASPEED model name"
# A GPU the kernel cannot reset: visible before anyone claims it.
assert_eq '""' "$(gpu_prop 0000:03:00.0 ResetMethod)" "ResetMethod empty without sysfs reset_method"
assert_contains "$(ctl show 0000:03:00.0)" "ResetMethod: - (warning: the kernel has no way to reset this GPU" \
        "gpupassctl show warns that it cannot be reset"
assert_contains "$(ctl show $A)" "ResetMethod: flr bus" "gpupassctl show prints the reset methods"
assert_contains "$(cat "$TEST_DIR/agent.log")" "GPU 0000:03:00.0 has no reset method" "the agent says so at discovery"
assert_not_contains "$(cat "$TEST_DIR/agent.log")" "GPU $A has no reset method" "and only for that one"
assert_eq "-1" "$(gpu_prop 0000:d8:00.0 IommuGroup)" "no IOMMU group"
assert_contains "$(gpu_prop 0000:d8:00.0 Problem)" "no IOMMU group" "Problem says no IOMMU group"
assert_contains "$(gpu_prop 0000:5e:00.0 Problem)" "0000:5e:01.0 is bound to host driver igb" "Problem names the NIC and its driver"
assert_eq "0" "$(gpu_prop 0000:5e:00.0 Companions)" "a NIC in another slot is no companion"

# Objects, ObjectManager, lookups.
tree=$(busctl --system tree org.gpupass.agent1)
assert_contains "$tree" "/org/gpupass/agent1/gpu/_30000_3a3b_3a00_2e0" "busctl tree shows the GPU objects"
managed=$(busctl --system call org.gpupass.agent1 $M org.freedesktop.DBus.ObjectManager GetManagedObjects)
assert_contains "$managed" '"org.gpupass.agent1.Gpu"' "GetManagedObjects carries the Gpu interface"
assert_eq "$(gpu_path 3b:00.0)" "$(gpu_path 0000:3b:00.0)" "GetGpu accepts the short address"
expect_error org.gpupass.Error.InvalidArgument "'0000:3b:00' is not a PCI address" -- $M org.gpupass.agent1.Manager GetGpu s 0000:3b:00
expect_error org.gpupass.Error.NotFound "No GPU at 0000:3b:00.1" -- $M org.gpupass.agent1.Manager GetGpu s 0000:3b:00.1
introspect=$(busctl --system introspect org.gpupass.agent1 "$(gpu_path $A)" org.gpupass.agent1.Gpu)
for member in Prepare ReturnToHost Claim Release OpenVfio AllowUser; do
        assert_contains "$introspect" ".$member" "Gpu has method $member"
done

# gpupassctl shows the same.
out=$(ctl list)
assert_contains "$out" "0000:5e:00.0  NVIDIA Tesla T4.compute" "gpupassctl list"
assert_contains "$out" "6 GPUs listed." "gpupassctl legend"
assert_not_contains "$(ctl --no-legend list)" "ADDRESS" "--no-legend"
finish
