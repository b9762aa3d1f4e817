#!/bin/bash
# The aggregator over a simulated cluster: three hosts (simulated PCI hosts, each with its agent on its
# own private bus) and gpupass-clusterd on a fourth bus: one view of all GPUs, hosts going away and
# coming back, GPU changes followed live.
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
source "$GPUPASS_SOURCE_ROOT/tests/integration/cluster-lib.sh"

start_host alpha "$FIX/multi-gpu.ini"
start_host beta "$FIX/single.ini"
start_host gamma "$FIX/no-iommu.ini"
start_bus open
# delta is configured but never started: no such bus.
start_clusterd agg alpha beta gamma delta
wait_host alpha || true
wait_host beta || true
wait_host gamma || true
hosts=$(cluster ListHosts)
echo "# $hosts"
assert_contains "$hosts" 'a(ssssutu) 4 ' "ListHosts lists the four configured hosts"
assert_contains "$hosts" "\"alpha\" \"unix:path=$TEST_DIR/alpha/bus\" \"up\" \"\" $(nproc)" "alpha is up, with its CPUs"
assert_contains "$hosts" "\"beta\" \"unix:path=$TEST_DIR/beta/bus\" \"up\"" "beta is up"
assert_contains "$hosts" "\"gamma\" \"unix:path=$TEST_DIR/gamma/bus\" \"up\"" "gamma is up"
assert_contains "$hosts" "\"delta\" \"unix:path=$TEST_DIR/delta/bus\" \"unreachable\"" "delta (no such bus) is unreachable"
assert_contains "$hosts" " 6 \"beta\"" "alpha has 6 GPUs"

gpus=$(cluster ListGpus)
echo "# $gpus"
assert_contains "$gpus" 'a(sssssssbas) 8 ' "ListGpus: the 8 GPUs of the cluster in one view"
assert_contains "$gpus" '"alpha" "0000:86:00.0" "NVIDIA Tesla M60.compute" "compute" "host" "" "" false' "a compute-mode GPU in the view"
assert_contains "$gpus" '"beta" "0000:3b:00.0" "NVIDIA Tesla M60" "graphics" "host"' "beta's GPU in the view"
assert_contains "$gpus" '"gamma" "0000:3b:00.0" "NVIDIA Tesla M60" "graphics" "unavailable"' "gamma's GPU without IOMMU, unavailable"

# A change on a host shows in the view (signals followed, no polling).
P=$(host_call beta call org.gpupass.agent1 /org/gpupass/agent1 org.gpupass.agent1.Manager GetGpu s 0000:3b:00.0 | cut -d'"' -f2)
host_call beta call org.gpupass.agent1 "$P" org.gpupass.agent1.Gpu Claim s $VM1
wait_gpus "\"beta\" \"0000:3b:00.0\" \"NVIDIA Tesla M60\" \"graphics\" \"claimed\" \"$VM1\"" || true
assert_contains "$(cluster ListGpus)" "\"beta\" \"0000:3b:00.0\" \"NVIDIA Tesla M60\" \"graphics\" \"claimed\" \"$VM1\"" "a claim on beta appears in the cluster view"

# Maintenance on a host shows as its state.
host_call beta call org.gpupass.agent1 /org/gpupass/agent1 org.gpupass.agent1.Manager SetMaintenance b true
wait_host beta maintenance && pass "beta in maintenance in the view" || fail "beta maintenance not seen: $(cluster ListHosts)"

# The agent goes away (its host reboots): unreachable, its GPUs shown as last seen; back again: up.
kill_agent beta
wait_host beta unreachable && pass "beta unreachable when its agent leaves" || fail "beta still: $(cluster ListHosts)"
assert_contains "$(cluster ListGpus)" '"beta" "0000:3b:00.0" "NVIDIA Tesla M60" "graphics" "unreachable"' "beta's GPU shown as unreachable"
stop_host beta
start_host beta "$FIX/single.ini"
# Back after its "reboot": the agent kept its maintenance flag and the claim on disk, and the view shows both.
wait_host beta maintenance && pass "beta is back (reconnect with backoff), still in maintenance" || fail "beta not back: $(cluster ListHosts)"
assert_contains "$(cluster ListGpus)" "\"beta\" \"0000:3b:00.0\" \"NVIDIA Tesla M60\" \"graphics\" \"claimed\" \"$VM1\"" "beta's claim survived the reboot and is reloaded"
host_call beta call org.gpupass.agent1 /org/gpupass/agent1 org.gpupass.agent1.Manager SetMaintenance b false
wait_host beta && pass "beta up when its maintenance ends" || fail "beta: $(cluster ListHosts)"
# The VM registry: created, listed, refused with named errors for bad input, registry unchanged.
uuid=$(cluster CreateVm sut train-1 1 2048 | cut -d'"' -f2)
assert_eq 36 "${#uuid}" "CreateVm returns the VM's UUID"
cexpect org.gpupass.Error.InvalidArgument "A VM named 'train-1' exists already" -- CreateVm sut train-1 1 2048
cexpect org.gpupass.Error.InvalidArgument "0 vCPUs: a VM has 1 to 4096" -- CreateVm sut x 0 16384
cexpect org.gpupass.Error.InvalidArgument "MiB of memory: a VM has 64 MiB to 64 TiB" -- CreateVm sut x 4 18446744073709551615
cexpect org.gpupass.Error.InvalidArgument "may only hold letters" -- CreateVm sut bad/name 4 4096
cexpect org.gpupass.Error.InvalidArgument "Bad GPU request: '0:NVIDIA'" -- SetVmGpus ss train-1 0:NVIDIA
cexpect org.gpupass.Error.NotFound "No VM 'no-such-vm'" -- SetVmGpus ss no-such-vm 1:NVIDIA
cexpect org.gpupass.Error.NotFound "No VM 'not-a-vm'" -- DeleteVm s not-a-vm
cluster SetVmGpus ss train-1 "2:NVIDIA Tesla M60|NVIDIA Tesla M60.compute" >/dev/null
vms=$(cluster ListVms)
assert_contains "$vms" "a(ssutsssss) 1 \"$uuid\" \"train-1\" 1 2048 \"2:NVIDIA Tesla M60|NVIDIA Tesla M60.compute\" \"\" \"off\"" "ListVms shows the VM with its GPU request, off"
assert_refused org.gpupass.Error.AccessDenied "uid 65534 may not change the cluster" \
        --as "--reuid=65534 --regid=65534 --clear-groups" -- org.gpupass.cluster1 $CM org.gpupass.cluster1.Manager \
        CreateVm sut sneaky 1 1024
assert_contains "$(cluster ListVms)" "a(ssutsssss) 1 " "the registry is unchanged by refused calls"
# The registry survives a restart of the aggregator.
stop_clusterd agg
run_clusterd agg
assert_contains "$(cluster ListVms)" "\"$uuid\" \"train-1\"" "the VM is still registered after a restart"

# Power-on: placement over the view, claims on the chosen host's agent.
out=$(cluster PowerOn s train-1 2>&1) || true
assert_eq 'sas "alpha" 2 "0000:3b:00.0" "0000:3c:00.0"' "$out" "PowerOn places train-1 on alpha with its two M60s"
for a in 0000:3b:00.0 0000:3c:00.0; do
        assert_eq "\"$uuid\"" "$(host_owner alpha $a)" "the agent on alpha shows $a claimed by train-1"
done
assert_contains "$(cluster ListVms)" "\"on\" \"alpha\"" "the registry records the VM on alpha"
cexpect org.gpupass.Error.VmNotOff "GPUs cannot be added or removed while it runs" -- SetVmGpus ss train-1 1:X
cexpect org.gpupass.Error.VmNotOff "power it off first" -- DeleteVm s train-1
# The pass-through limitations, each a named error with its reason.
for m in Migrate Pause Resume; do
        cexpect org.gpupass.Error.NotSupportedWithGpu "of VM train-1 is not supported" -- $m s train-1
done
cexpect org.gpupass.Error.NotSupportedWithGpu "has no console" -- GetConsole s train-1
cexpect org.gpupass.Error.NotSupportedWithGpu "Memory hot add of VM train-1 is not supported" -- SetVmResources sut train-1 1 4096
cexpect org.gpupass.Error.VmNotOff "change its vCPUs while it is off" -- SetVmResources sut train-1 2 2048
# No host: the VM stays off and the error names each host's reason.
cluster CreateVm sut infer-1 1 1024 >/dev/null
cluster SetVmGpus ss infer-1 "1:NVIDIA Tesla T4" >/dev/null
cexpect org.gpupass.Error.NoHostAvailable "alpha: no free NVIDIA Tesla T4; beta: no free NVIDIA Tesla T4; gamma: no free NVIDIA Tesla T4; delta: unreachable;" -- PowerOn s infer-1
assert_contains "$(cluster ListVms)" "\"infer-1\" 1 1024 \"1:NVIDIA Tesla T4\" \"\" \"off\"" "infer-1 stays off"
cluster CreateVm sut big-1 $(( $(nproc) * 8 )) 1024 >/dev/null
# (train-1 runs on alpha: one of alpha's CPUs is taken.)
cexpect org.gpupass.Error.NoHostAvailable "alpha: needs $(( $(nproc) * 8 )) vCPUs, $(( $(nproc) - 1 )) free; beta: needs $(( $(nproc) * 8 )) vCPUs, $(nproc) free" -- PowerOn s big-1
cluster DeleteVm s big-1 >/dev/null
# PowerOff releases the GPUs on the agent.
out=$(cluster PowerOff s train-1 2>&1) && pass "PowerOff" || fail "PowerOff: $out"
wait_gpus '"alpha" "0000:3b:00.0" "NVIDIA Tesla M60" "graphics" "vfio" ""' || true
assert_contains "$(cluster ListGpus)" '"alpha" "0000:3b:00.0" "NVIDIA Tesla M60" "graphics" "vfio" ""' "the agent released the GPU at PowerOff"
# Without GPUs the console comes back; affinity keeps a VM to its hosts.
cluster SetVmGpus ss train-1 "" >/dev/null
out=$(cluster GetConsole s train-1 2>&1) && pass "GetConsole works once the GPUs are removed" || fail "GetConsole: $out"
cluster SetVmGpus ss infer-1 "1:NVIDIA Tesla M60" >/dev/null
busctl --system call org.gpupass.cluster1 $CM org.gpupass.cluster1.Manager SetVmAffinity sas infer-1 1 gamma
cexpect org.gpupass.Error.NoHostAvailable "alpha: outside affinity; beta: outside affinity; gamma: no free NVIDIA Tesla M60" -- PowerOn s infer-1
busctl --system call org.gpupass.cluster1 $CM org.gpupass.cluster1.Manager SetVmAffinity sas infer-1 1 alpha
out=$(cluster PowerOn s infer-1 2>&1) || true
assert_contains "$out" 'sas "alpha" 1 ' "inside its affinity infer-1 goes to alpha"
cluster PowerOff s infer-1 >/dev/null
out=$(cluster DeleteVm s train-1 2>&1) && pass "DeleteVm" || fail "DeleteVm: $out"
cluster DeleteVm s infer-1 >/dev/null
assert_eq "a(ssutsssss) 0" "$(cluster ListVms)" "registry empty after DeleteVm"

# Host maintenance: its GPU VMs go off, are remembered, and come back on the same host afterwards.
m1=$(cluster CreateVm sut maint-1 1 1024 | cut -d'"' -f2)
cluster SetVmGpus ss maint-1 "1:NVIDIA Tesla M60" >/dev/null
busctl --system call org.gpupass.cluster1 $CM org.gpupass.cluster1.Manager SetVmAffinity sas maint-1 1 alpha
out=$(cluster PowerOn s maint-1 2>&1) || true
assert_contains "$out" 'sas "alpha" 1 ' "maint-1 runs on alpha"
out=$(cluster EnterHostMaintenance s alpha 2>&1) || true
assert_eq "as 1 \"$m1\"" "$out" "EnterHostMaintenance powers off alpha's GPU VMs and names them"
assert_contains "$(cluster ListVms)" "\"maint-1\" 1 1024 \"1:NVIDIA Tesla M60\" \"alpha\" \"off\" \"alpha\" \"restart:alpha\"" "maint-1 is off (last on alpha), to be restarted on alpha"
wait_host alpha maintenance && pass "alpha in maintenance" || fail "alpha: $(cluster ListHosts)"
cexpect org.gpupass.Error.NoHostAvailable "alpha: in maintenance" -- PowerOn s maint-1
out=$(cluster ExitHostMaintenance s alpha 2>&1) || true
assert_eq "as 1 \"$m1\"" "$out" "ExitHostMaintenance names the VMs it powers on again"
wait_vms '"on" "alpha" ""' || true
assert_contains "$(cluster ListVms)" "\"maint-1\" 1 1024 \"1:NVIDIA Tesla M60\" \"alpha\" \"on\" \"alpha\" \"\"" "maint-1 powered on again on alpha automatically"
cluster PowerOff s maint-1 >/dev/null
cluster DeleteVm s maint-1 >/dev/null

# Reflash: a GPU of alpha comes back in compute mode; VMs asking for the old model are flagged.
r1=$(cluster CreateVm sut reflash-1 1 1024 | cut -d'"' -f2)
cluster SetVmGpus ss reflash-1 "1:NVIDIA Tesla M60" >/dev/null
busctl --system call org.gpupass.cluster1 $CM org.gpupass.cluster1.Manager SetVmAffinity sas reflash-1 1 alpha
unplug_m60 alpha
plug_m60_compute alpha
wait_vms "reconfigure:NVIDIA Tesla M60.compute" || true
assert_contains "$(cluster ListVms)" "\"reflash-1\" 1 1024 \"1:NVIDIA Tesla M60\" \"alpha\" \"off\" \"\" \"reconfigure:NVIDIA Tesla M60.compute\"" "reflash-1 is flagged with the new model name"
assert_contains "$(cluster ListGpus)" '"alpha" "0000:3b:00.0" "NVIDIA Tesla M60.compute" "compute"' "the view shows the new model"
cexpect org.gpupass.Error.NeedsReconfiguration "its GPU is now NVIDIA Tesla M60.compute" -- PowerOn s reflash-1
cluster SetVmGpus ss reflash-1 "1:NVIDIA Tesla M60.compute" >/dev/null
assert_not_contains "$(cluster ListVms)" "reconfigure:" "redoing the GPU configuration clears the flag"
out=$(cluster PowerOn s reflash-1 2>&1) || true
assert_contains "$out" 'sas "alpha" 1 ' "reflash-1 powers on with the .compute model"

# gpupassctl's cluster verbs.
out=$(ctl hosts)
assert_contains "$out" "alpha            up" "gpupassctl hosts: alpha up"
assert_contains "$out" "4 hosts listed." "gpupassctl hosts legend"
out=$(ctl gpus)
assert_contains "$out" "alpha        0000:3b:00.0  NVIDIA Tesla M60.compute" "gpupassctl gpus: the reflashed GPU"
assert_contains "$out" "GPUs listed." "gpupassctl gpus legend"
out=$(ctl vms)
assert_contains "$out" "reflash-1        on    none     alpha" "gpupassctl vms: reflash-1 on alpha, no runtime (Runtime=none)"
out=$(ctl hostdev reflash-1)
echo "$out" | sed 's/^/# /'
assert_contains "$out" "-device vfio-pci,host=0000:3b:00.0" "hostdev: the QEMU argument for the GPU"
assert_contains "$out" "-device vfio-pci,host=0000:3b:00.1" "hostdev: and for its HDMI-audio companion"
assert_contains "$out" "bus='0x3b' slot='0x00' function='0x1'" "hostdev: the companion's libvirt element"
assert_contains "$out" "<hostdev mode='subsystem' type='pci' managed='no'>" "hostdev: the libvirt element"
assert_contains "$out" "OpenVfio(\"$r1\")" "hostdev says where the descriptors come from"
rc=0; out=$(ctl power-on no-such-vm 2>&1) || rc=$?
assert_eq 1 "$rc" "gpupassctl power-on of an unknown VM exits 1"
assert_contains "$out" "(org.gpupass.Error.NotFound)" "and names the error"
out=$(ctl power-off reflash-1 2>&1) && pass "gpupassctl power-off" || fail "power-off: $out"
assert_contains "$(ctl vms)" "reflash-1        off" "reflash-1 is off"

# Surprise removal under a running VM: the aggregator shows the GPU missing and still the VM's, never
# places another VM on it, and shows it claimed again when the card is back.
out=$(cluster PowerOn s reflash-1 2>&1) || true
assert_contains "$out" 'sas "alpha" 1 ' "reflash-1 on alpha again"
unplug_m60 alpha
wait_gpus '"alpha" "0000:3b:00.0" "NVIDIA Tesla M60.compute" "compute" "missing"' || true
assert_contains "$(cluster ListGpus)" "\"alpha\" \"0000:3b:00.0\" \"NVIDIA Tesla M60.compute\" \"compute\" \"missing\" \"$r1\"" "the cluster view: missing, still owned by reflash-1"
assert_contains "$(cluster ListVms)" "\"reflash-1\" 1 1024 \"1:NVIDIA Tesla M60.compute\" \"alpha\" \"on\" \"alpha\"" "reflash-1 stays on"
cluster CreateVm sut removal-2 1 1024 >/dev/null
cluster SetVmGpus ss removal-2 "=alpha/0000:3b:00.0" >/dev/null
cexpect org.gpupass.Error.NoHostAvailable "alpha: the requested GPU is not free" -- PowerOn s removal-2
plug_m60_compute alpha
wait_gpus "\"0000:3b:00.0\" \"NVIDIA Tesla M60.compute\" \"compute\" \"claimed\" \"$r1\"" || true
assert_contains "$(cluster ListGpus)" "\"alpha\" \"0000:3b:00.0\" \"NVIDIA Tesla M60.compute\" \"compute\" \"claimed\" \"$r1\"" "back on the bus: claimed by reflash-1 again"
# The agent binds the returned card back to vfio-pci in a job; until it is done, Release answers Busy.
power_off_reflash_1() { out=$(cluster PowerOff s reflash-1 2>&1); } # out: the last answer
wait_until 20 "PowerOff of reflash-1 to succeed" power_off_reflash_1 || true
assert_not_contains "$(cluster ListVms)" '"reflash-1" 1 1024 "1:NVIDIA Tesla M60.compute" "alpha" "on"' "reflash-1 powers off once the card is rebound ($out)"
cluster DeleteVm s removal-2 >/dev/null

echo "--- clusterd log ---" | sed 's/^/# /'
sed 's/^/# /' "$TEST_DIR/agg.log"
finish
