#!/bin/bash
# Smoke: the guest sees the emulated devices, IOMMU groups and drivers as the host's kernel made them.
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
assert_eq "true" "$([ -d /sys/kernel/iommu_groups/0 ] && echo true)" "IOMMU groups exist"
finish
