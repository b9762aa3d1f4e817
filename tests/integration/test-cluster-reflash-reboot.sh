#!/bin/bash
# A GPU reflashed and reflashed back, then claimed by a VM: the claim means the VM was configured for the GPU as
# it is now, so the host's reboot (its agent keeps its state) neither flags that VM nor powers it off.
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
source "$GPUPASS_SOURCE_ROOT/tests/integration/cluster-lib.sh"
G=0000:3c:00.0
M60="vendor=0x10de device=0x13f2 subsystem_vendor=0x10de subsystem_device=0x115e revision=0xa1 driver=nouveau"
FIXTURE=$(sized "$FIX/multi-gpu.ini" 16 65536)
reflash() { # class: the GPU leaves the bus and comes back with that class; waits for the agent's new model
        host_ctl alpha remove $G
        host_ctl alpha add $G $M60 class="$1" iommu_group=13
        wait_gpus "\"alpha\" \"$G\" \"$2\"" || fail "alpha $G not shown as $2: $(cluster ListGpus)"
}
gpu_field() { # n: the Nth quoted field of alpha's $G line in ListGpus
        cluster ListGpus | grep -o "\"alpha\" \"$G\" [^]]*" | head -1 | cut -d'"' -f"$1"
}

start_host alpha "$FIXTURE"
start_bus open
start_clusterd agg alpha
wait_host alpha && pass "alpha up" || fail "alpha: $(cluster ListHosts)"
reflash 0x030200 "NVIDIA Tesla M60.compute"
reflash 0x030000 "NVIDIA Tesla M60"
assert_eq "NVIDIA Tesla M60.compute" "$(gpu_field 14)" "the agent reports the previous model"
u=$(cluster CreateVm sut render 2 4096 | cut -d'"' -f2)
cluster SetVmGpus ss render "=alpha/$G"
assert_eq "sas \"alpha\" 1 \"$G\"" "$(cluster PowerOn s render 2>&1)" "render runs on the GPU as it is now"
assert_eq "" "$(gpu_field 14)" "its claim clears the previous model"

stop_host alpha
start_host alpha "$FIXTURE"
wait_host alpha && pass "alpha back after its reboot" || fail "alpha: $(cluster ListHosts)"
assert_eq "" "$(gpu_field 14)" "the previous model stays cleared across the agent's restart"
# The start-up check of the host runs after it is up: for 2 s, render stays on, unflagged.
render_now() { cluster ListVms | grep -o '"render" 2 4096 "[^"]*" "" "[a-z]*" "alpha" "[^"]*"'; }
expect="\"render\" 2 4096 \"=alpha/$G\" \"\" \"on\" \"alpha\" \"\""
render_changed() { [ "$(render_now)" != "$expect" ]; }
if wait_until 2 "any change of render" render_changed 2>/dev/null; then
        fail "render stays on, not flagged: $(render_now)"
else
        pass "render stays on, not flagged"
fi
assert_eq "\"$u\"" "$(host_owner alpha $G)" "alpha's agent still holds the GPU for render"
finish
