#!/bin/bash
# Scenario 2 on the real kernel: vfio-pci loaded by the agent, the group bound, claimed, used by an
# unprivileged process through OpenVfio and through AllowUser, released with reset, returned.
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
A=0000:00:03.0
AUDIO=0000:00:03.1
assert_eq "no" "$([ -d /sys/bus/pci/drivers/vfio-pci ] && echo yes || echo no)" "vfio-pci is not loaded before the agent needs it"
start_bus policy
start_agent
P=$(gpu_path $A)
G=$(gpu_prop $A IommuGroup)

out=$(busctl --system call org.gpupass.agent1 "$P" org.gpupass.agent1.Gpu Prepare 2>&1) && pass "Prepare" || fail "Prepare: $out"
assert_eq "yes" "$([ -d /sys/module/vfio_pci ] && echo yes || echo no)" "the agent loaded vfio-pci (libkmod)"
assert_eq "vfio-pci" "$(sysfs_driver $A)" "the display device is on vfio-pci (sysfs)"
assert_eq "vfio-pci" "$(sysfs_driver $AUDIO)" "its audio function too"
assert_eq "vfio-pci vfio-pci" "$(sysfs_override $A) $(sysfs_override $AUDIO)" "driver_override of both reads vfio-pci"
assert_eq '"vfio"' "$(gpu_prop $A State)" "State vfio"
assert_eq '"vfio-pci"' "$(gpu_prop $A Driver)" "Driver vfio-pci"
assert_eq "yes" "$([ -c /dev/vfio/$G ] && echo yes || echo no)" "the kernel created /dev/vfio/$G"

out=$(busctl --system call org.gpupass.agent1 "$P" org.gpupass.agent1.Gpu Claim s $VM1 2>&1) && pass "Claim" || fail "Claim: $out"
expect_error org.gpupass.Error.Busy "claimed by VM $VM1" -- "$P" org.gpupass.agent1.Gpu Claim s $VM2
ids="$(sed 's/0x//' /sys/bus/pci/devices/$A/vendor):$(sed 's/0x//' /sys/bus/pci/devices/$A/device)"

out=$("$GPUPASS_VM_CLIENT" openvfio $A $VM1 2>&1) || true
echo "$out" | sed 's/^/# /'
assert_contains "$out" "ids $ids uid 65534" "OpenVfio: an unprivileged process reads the IDs through VFIO"
expect_error org.gpupass.Error.NotOwner "not by VM $VM2" -- "$P" org.gpupass.agent1.Gpu OpenVfio s $VM2

out=$(busctl --system call org.gpupass.agent1 "$P" org.gpupass.agent1.Gpu AllowUser su $VM1 65534 2>&1) && pass "AllowUser" || fail "AllowUser: $out"
assert_eq "65534" "$(stat -c %u /dev/vfio/$G)" "/dev/vfio/$G belongs to the granted uid"
out=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$GPUPASS_VM_CLIENT" open $G $A 2>&1) || true
echo "$out" | sed 's/^/# /'
assert_contains "$out" "ids $ids uid 65534" "AllowUser: the granted uid opens /dev/vfio/$G itself and reads the IDs"

out=$(busctl --system call org.gpupass.agent1 "$P" org.gpupass.agent1.Gpu Release s $VM1 2>&1) && pass "Release (with reset where supported)" || fail "Release: $out"
grep -E "released|reset" "$TEST_DIR/agent.log" | sed 's/^/# /'
assert_eq '""' "$(gpu_prop $A ResetMethod)" "ResetMethod of $A is empty: the kernel has no reset_method for it"
assert_contains "$(cat "$TEST_DIR/agent.log")" "released by VM $VM1, 0 device(s) reset" "so its release reset nothing"
assert_eq "0" "$(stat -c %u /dev/vfio/$G)" "the grant is gone: /dev/vfio/$G is root's again"
assert_eq '""' "$(gpu_prop $A Owner)" "no owner"
out=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$GPUPASS_VM_CLIENT" open $G $A 2>&1) && fail "nobody can still open the group" || pass "the former grantee can no longer open /dev/vfio/$G"

out=$(busctl --system call org.gpupass.agent1 "$P" org.gpupass.agent1.Gpu ReturnToHost 2>&1) && pass "ReturnToHost" || fail "ReturnToHost: $out"
assert_eq "bochs-drm" "$(sysfs_driver $A)" "the display device left vfio-pci (bochs-drm again)"
assert_eq "snd_hda_intel" "$(sysfs_driver $AUDIO)" "the audio function left vfio-pci (snd_hda_intel again)"
assert_eq "(null)" "$(sysfs_override $A)" "driver_override of the display device reads (null)"
assert_eq "(null)" "$(sysfs_override $AUDIO)" "driver_override of the audio function reads (null)"
assert_eq '"host"' "$(gpu_prop $A State)" "State host"
assert_eq '"bochs-drm"' "$(gpu_prop $A Driver)" "Driver bochs-drm"
assert_eq "no" "$([ -e /dev/vfio/$G ] && echo yes || echo no)" "the kernel removed /dev/vfio/$G"

# Release's reset on a device the kernel can reset: the bochs-display alone behind root port rp1 (a bus reset).
B=0000:02:00.0
assert_eq "bus" "$(cat /sys/bus/pci/devices/$B/reset_method)" "(the kernel offers a bus reset for $B)"
assert_eq '"bus"' "$(gpu_prop $B ResetMethod)" "ResetMethod of $B is the kernel's"
out=$(busctl --system call org.gpupass.agent1 "$(gpu_path $B)" org.gpupass.agent1.Gpu Claim s $VM2 2>&1) && pass "Claim $B" || fail "Claim $B: $out"
out=$(busctl --system call org.gpupass.agent1 "$(gpu_path $B)" org.gpupass.agent1.Gpu Release s $VM2 2>&1) &&
        pass "Release $B" || fail "Release $B: $out"
grep "released by VM $VM2" "$TEST_DIR/agent.log" | sed 's/^/# /'
assert_contains "$(cat "$TEST_DIR/agent.log")" "released by VM $VM2, 1 device(s) reset" "the release reset $B (VFIO_DEVICE_RESET, bus)"
assert_eq '"vfio"' "$(gpu_prop $B State)" "and left it on vfio-pci, unclaimed"
finish
