#!/bin/bash
# The aggregator's flows over a simulated cluster: a host that goes away and comes back (with and without its
# agent's state, in maintenance, reflashed), maintenance that waits for every release (and a refused one).
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
source "$GPUPASS_SOURCE_ROOT/tests/integration/cluster-lib.sh"

# Hosts of different sizes, as their kernels report them (sysfs: cpu/online, memory blocks).
ALPHA_FIX=$(sized "$FIX/multi-gpu.ini" 16 65536)
BETA_FIX=$(sized "$FIX/single.ini" 4 8192)
start_host alpha "$ALPHA_FIX"
start_host beta "$BETA_FIX"
start_bus open
start_clusterd agg alpha beta
LOG=$TEST_DIR/agg.log
drop_claims() { # host: its agent's state file without claims (checksum redone), as if they were released unseen
        local f
        for f in "$TEST_DIR/$1"/state/*; do
                python3 - "$f" <<'EOP'
import sys, zlib
p = sys.argv[1]
lines = [l for l in open(p).read().splitlines(True) if not l.startswith(("claim ", "checksum "))]
body = "".join(lines)
open(p, "w").write(body + "checksum %08x\n" % zlib.crc32(body.encode()))
EOP
        done
}
wait_host alpha && wait_host beta && pass "alpha and beta up" || fail "hosts: $(cluster ListHosts)"

hosts=$(cluster ListHosts)
assert_contains "$hosts" "\"alpha\" \"unix:path=$TEST_DIR/alpha/bus\" \"up\" \"\" 16 65536 " "alpha: 16 CPUs, 64 GiB, from its sysfs"
assert_contains "$hosts" "\"beta\" \"unix:path=$TEST_DIR/beta/bus\" \"up\" \"\" 4 8192 " "beta: 4 CPUs, 8 GiB"
# Placement by size: beta's M60 is free, but only alpha has room for 6 vCPUs; 12 GiB fit nowhere but alpha.
cluster CreateVm sut wide-1 6 2048 >/dev/null
cluster SetVmGpus ss wide-1 "1:NVIDIA Tesla M60" >/dev/null
cluster SetVmAffinity sas wide-1 1 beta
cexpect org.gpupass.Error.NoHostAvailable "beta: needs 6 vCPUs, 4 free" -- PowerOn s wide-1
cluster SetVmAffinity sas wide-1 0
cluster SetVmResources sut wide-1 2 12288
cluster SetVmAffinity sas wide-1 1 beta
cexpect org.gpupass.Error.NoHostAvailable "beta: needs 12 GiB, 8 GiB free" -- PowerOn s wide-1
cluster SetVmAffinity sas wide-1 2 alpha beta
assert_contains "$(cluster PowerOn s wide-1 2>&1)" 'sas "alpha" 1 ' "a VM too big for beta goes to alpha"
cluster PowerOff s wide-1 >/dev/null
cluster DeleteVm s wide-1 >/dev/null

# A VM on beta.
u=$(cluster CreateVm sut web-1 1 1024 | cut -d'"' -f2)
cluster SetVmGpus ss web-1 "1:NVIDIA Tesla M60" >/dev/null
cluster SetVmAffinity sas web-1 1 beta
assert_eq 'sas "beta" 1 "0000:3b:00.0"' "$(cluster PowerOn s web-1 2>&1)" "web-1 runs on beta"
ON="\"web-1\" 1 1024 \"1:NVIDIA Tesla M60\" \"beta\" \"on\" \"beta\" \"\""

# beta reboots; its agent keeps its claims (its state): web-1 still runs there, nothing is done.
stop_host beta
wait_host beta unreachable && pass "beta unreachable while it reboots" || fail "beta: $(cluster ListHosts)"
assert_contains "$(cluster ListVms)" "$ON" "web-1 stays recorded on beta while beta is unreachable"
start_host beta "$BETA_FIX"
wait_host beta && pass "beta back" || fail "beta: $(cluster ListHosts)"
wait_for_log "$LOG" "VM web-1 still holds its GPUs on host beta" && pass "the aggregator sees web-1's claim kept" ||
        fail "no check of web-1 after beta came back"
assert_contains "$(cluster ListVms)" "$ON" "web-1 still on beta, unchanged"
assert_eq "\"$u\"" "$(host_owner beta 0000:3b:00.0)" "beta's agent still holds the GPU for web-1"

# beta reboots and loses its state: web-1 no longer runs, and is powered on again there automatically.
stop_host beta
rm -rf "$TEST_DIR/beta/state"
start_host beta "$BETA_FIX"
wait_for_log "$LOG" "VM web-1 no longer runs on host beta (its claims are gone); powering it on again there" &&
        pass "the aggregator finds web-1's claims gone" || fail "web-1's lost claims not noticed"
wait_vms "$ON" && pass "web-1 powered on again on beta" || fail "web-1: $(cluster ListVms)"
assert_eq "\"$u\"" "$(host_owner beta 0000:3b:00.0)" "a new claim for web-1 on beta's fresh agent"

# Claims gone, but beta comes back in maintenance: off, flagged for its maintenance's end, then on again.
host_call beta call org.gpupass.agent1 /org/gpupass/agent1 org.gpupass.agent1.Manager SetMaintenance b true
stop_host beta
drop_claims beta
start_host beta "$BETA_FIX"
wait_vms "\"web-1\" 1 1024 \"1:NVIDIA Tesla M60\" \"beta\" \"off\" \"beta\" \"restart:beta\"" &&
        pass "back in maintenance without its claims: web-1 off, to be restarted on beta" || fail "web-1: $(cluster ListVms)"
assert_eq '""' "$(host_owner beta 0000:3b:00.0)" "and not powered on during the maintenance"
assert_eq "as 1 \"$u\"" "$(cluster ExitHostMaintenance s beta 2>&1)" "ExitHostMaintenance names web-1"
wait_vms "$ON" && pass "web-1 on beta again after the maintenance" || fail "web-1: $(cluster ListVms)"

# beta comes back reflashed (its M60 now in compute mode) without web-1's claim: flagged, stays off.
stop_host beta
drop_claims beta
sed -e 's/^class=0x030000/class=0x030200/' "$BETA_FIX" >"$TEST_DIR/beta-compute.ini"
start_host beta "$TEST_DIR/beta-compute.ini"
wait_vms "\"web-1\" 1 1024 \"1:NVIDIA Tesla M60\" \"beta\" \"off\" \"beta\" \"reconfigure:NVIDIA Tesla M60.compute\"" &&
        pass "reflashed while away: web-1 off, flagged, no restart" || fail "web-1: $(cluster ListVms)"
# The aggregator's decision about web-1 when beta reports the reflash: wanted off, flagged (logged); the
# reconcile that follows records it off (ListVms above). A power-on would have been under way by then.
wait_for_log "$LOG" "VM $u needs its GPU configuration redone: 0000:3b:00.0 on beta is now NVIDIA Tesla M60.compute" &&
        pass "the aggregator decides about web-1: its GPU configuration needs redoing" ||
        fail "no decision about web-1 logged"
assert_not_contains "$(cluster ListVms)" "$ON" "a flagged VM is not recorded on"
assert_eq '""' "$(host_owner beta 0000:3b:00.0)" "a flagged VM is never powered on automatically"
cluster SetVmGpus ss web-1 "1:NVIDIA Tesla M60.compute" >/dev/null
assert_contains "$(cluster PowerOn s web-1 2>&1)" 'sas "beta" 1 ' "web-1 powers on once its GPUs are set again"

# Maintenance waits for every release: one VM whose VMM still holds its group (the reset is refused, Busy)
# stays on, and the host does not go into maintenance.
m1=$(cluster CreateVm sut m-1 1 1024 | cut -d'"' -f2)
m2=$(cluster CreateVm sut m-2 1 1024 | cut -d'"' -f2)
cluster SetVmGpus ss m-1 "=alpha/0000:3b:00.0" >/dev/null
cluster SetVmGpus ss m-2 "=alpha/0000:3c:00.0" >/dev/null
assert_contains "$(cluster PowerOn s m-1 2>&1)" 'sas "alpha" 1 "0000:3b:00.0"' "m-1 on alpha"
assert_contains "$(cluster PowerOn s m-2 2>&1)" 'sas "alpha" 1 "0000:3c:00.0"' "m-2 on alpha"
host_ctl alpha fail-reset 0000:3c:00.0 16
cexpect org.gpupass.Error.Busy "Host alpha does not go into maintenance: VM m-2 stays on: IOMMU group" -- EnterHostMaintenance s alpha
vms=$(cluster ListVms)
assert_contains "$vms" "\"m-1\" 1 1024 \"=alpha/0000:3b:00.0\" \"\" \"off\" \"alpha\" \"restart:alpha\"" "m-1 released and off, to come back"
assert_contains "$vms" "\"m-2\" 1 1024 \"=alpha/0000:3c:00.0\" \"\" \"on\" \"alpha\" \"\"" "m-2 whose release was refused stays on"
assert_eq "\"$m2\"" "$(host_owner alpha 0000:3c:00.0)" "alpha's agent still holds m-2's GPU"
assert_eq '""' "$(host_owner alpha 0000:3b:00.0)" "and released m-1's before the answer"
wait_host alpha && pass "alpha is not in maintenance" || fail "alpha: $(cluster ListHosts)"
# The VMM lets go: maintenance goes ahead, powering off m-2 only (m-1 is off already).
host_ctl alpha fail-reset 0000:3c:00.0 -
assert_eq "as 1 \"$m2\"" "$(cluster EnterHostMaintenance s alpha 2>&1)" "EnterHostMaintenance answers with m-2 once its release is done"
assert_contains "$(cluster ListVms)" "\"m-2\" 1 1024 \"=alpha/0000:3c:00.0\" \"\" \"off\" \"alpha\" \"restart:alpha\"" "m-2 recorded off only after its release"
assert_eq '""' "$(host_owner alpha 0000:3c:00.0)" "the agent released m-2's GPU before the answer"
wait_host alpha maintenance && pass "alpha in maintenance" || fail "alpha: $(cluster ListHosts)"
out=$(cluster ExitHostMaintenance s alpha 2>&1)
assert_contains "$out" "as 2 " "ExitHostMaintenance powers both on again"
wait_vms "\"m-2\" 1 1024 \"=alpha/0000:3c:00.0\" \"\" \"on\" \"alpha\" \"\"" && pass "m-2 on again" || fail "m-2: $(cluster ListVms)"
wait_vms "\"m-1\" 1 1024 \"=alpha/0000:3b:00.0\" \"\" \"on\" \"alpha\" \"\"" && pass "m-1 on again" || fail "m-1: $(cluster ListVms)"

# Bad input: each refusal is a named error saying what was wrong, and the registry stays as it was.
before=$(cluster ListVms)
refused() { # ERROR MESSAGE-PART -- METHOD SIGNATURE ARGS...: refused, registry unchanged
        cexpect "$@"
        assert_eq "$before" "$(cluster ListVms)" "registry unchanged after the refused $4"
}
refused org.gpupass.Error.NotFound "No VM 'no-such-vm' in the registry" -- PowerOn s no-such-vm
refused org.gpupass.Error.NotFound "No VM 'no-such-vm' in the registry" -- PowerOff s no-such-vm
refused org.gpupass.Error.NotFound "No VM '0f8fad5b-d9cb-469f-a165-70867728950e'" -- DeleteVm s 0f8fad5b-d9cb-469f-a165-70867728950e
refused org.gpupass.Error.InvalidArgument "'0f8fad5b-d9cb-469f-a165-70867728950z' is not a valid UUID" -- PowerOn s 0f8fad5b-d9cb-469f-a165-70867728950z
refused org.gpupass.Error.InvalidArgument "is not a valid UUID" -- DeleteVm s 0F8FAD5B-D9CB-469F-A165-7086772895G0
refused org.gpupass.Error.InvalidArgument "has the shape of a UUID" -- CreateVm sut 0f8fad5b-d9cb-469f-a165-70867728950e 1 1024
refused org.gpupass.Error.InvalidArgument "A VM named 'web-1' exists already" -- CreateVm sut web-1 1 1024
refused org.gpupass.Error.InvalidArgument "4294967295 vCPUs: a VM has 1 to 4096" -- CreateVm sut x 4294967295 1024
refused org.gpupass.Error.InvalidArgument "MiB of memory: a VM has 64 MiB to 64 TiB" -- CreateVm sut x 1 63
refused org.gpupass.Error.InvalidArgument "0 vCPUs" -- SetVmResources sut m-1 0 1024
refused org.gpupass.Error.InvalidArgument "18446744073709551615 MiB of memory: a VM has 64 MiB to 64 TiB" -- SetVmResources sut m-1 1 18446744073709551615
cluster PowerOff s m-1 >/dev/null
before=$(cluster ListVms)
refused org.gpupass.Error.InvalidArgument "Bad GPU request for VM m-1: no host in the cluster has a GPU 'NVIDIA Tesla Z99' (models: " -- SetVmGpus ss m-1 "1:NVIDIA Tesla Z99"
refused org.gpupass.Error.InvalidArgument "no host 'omega' in the cluster" -- SetVmGpus ss m-1 "=omega/0000:3b:00.0"
refused org.gpupass.Error.InvalidArgument "host alpha has no GPU 0000:99:00.0" -- SetVmGpus ss m-1 "=alpha/0000:99:00.0"
refused org.gpupass.Error.InvalidArgument "Bad GPU request" -- SetVmGpus ss m-1 "65:NVIDIA Tesla M60"
refused org.gpupass.Error.InvalidArgument "Bad GPU request" -- SetVmGpus ss m-1 "1:"
refused org.gpupass.Error.NotFound "Host omega is not in the cluster" -- EnterHostMaintenance s omega
refused org.gpupass.Error.NotFound "Host omega is not in the cluster" -- ExitHostMaintenance s omega
refused org.gpupass.Error.NotFound "Host omega is not in the cluster" -- SetVmAffinity sas m-1 1 omega

# A PowerOn in flight (a slow driver unbind on the way to vfio-pci): a second PowerOn, DeleteVm and
# SetVmGpus of that VM are Busy, so that no claim is left to a VM deleted or placed twice.
s1=$(cluster CreateVm sut slow-1 1 1024 | cut -d'"' -f2)
cluster SetVmGpus ss slow-1 "=alpha/0000:86:00.0" >/dev/null
host_ctl alpha unbind-delay 1500
start_monitor alpha-monitor.log org.gpupass.agent1 --address="unix:path=$TEST_DIR/alpha/bus"
cluster PowerOn s slow-1 >"$TEST_DIR/slow-1.out" 2>&1 &
slow=$!
# In flight once its Claim has reached alpha's agent (whose unbind then takes 1.5 s).
wait_until 20 "the aggregator's Claim for slow-1 on alpha" file_has "$TEST_DIR/alpha-monitor.log" "Member=Claim" ||
        fail "the PowerOn of slow-1 sent no Claim"
cexpect org.gpupass.Error.Busy "VM slow-1 is being powered on already" -- PowerOn s slow-1
cexpect org.gpupass.Error.Busy "VM slow-1 is being powered on; power it off first" -- DeleteVm s slow-1
cexpect org.gpupass.Error.Busy "VM slow-1 is being powered on: its GPUs are being claimed" -- SetVmGpus ss slow-1 "1:NVIDIA Tesla M60"
wait $slow || true
host_ctl alpha unbind-delay 0
assert_eq 'sas "alpha" 1 "0000:86:00.0"' "$(cat "$TEST_DIR/slow-1.out")" "the first PowerOn of slow-1 completes"
assert_eq "\"$s1\"" "$(host_owner alpha 0000:86:00.0)" "slow-1 holds its GPU, once"

echo "--- clusterd log ---" | sed 's/^/# /'
sed 's/^/# /' "$LOG"
finish
