#!/bin/bash
# A host without an IOMMU: GPUs are listed, none can be prepared or claimed.
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
start_bus policy
start_agent
A=0000:3b:00.0
assert_eq 'b false' "$(busctl --system get-property org.gpupass.agent1 /org/gpupass/agent1 org.gpupass.agent1.Manager IommuEnabled)" "IommuEnabled false"
assert_eq "-1" "$(gpu_prop $A IommuGroup)" "no group"
assert_eq '"unavailable"' "$(gpu_prop $A State)" "unavailable"
expect_error org.gpupass.Error.NoIommu "0000:3b:00.0 is in no IOMMU group" -- "$(gpu_path $A)" org.gpupass.agent1.Gpu Prepare
expect_error org.gpupass.Error.NoIommu "no IOMMU group" -- "$(gpu_path $A)" org.gpupass.agent1.Gpu Claim s $VM1
assert_eq "nouveau" "$(sysfs_driver $A)" "untouched"
finish
