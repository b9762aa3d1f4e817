#!/bin/bash
# A VM holding two GPUs of one IOMMU group: two RTX A6000 behind a switch without ACS, each with its HDMI
# audio, the four functions in one group. PowerOn, PowerOff (the agent lets the group go, the registry says
# off), the next VM takes the group, and at no time does the registry show two VMs on the same GPUs; after an
# aggregator restart (SIGTERM, then SIGKILL) nothing is powered on again that the operator powered off.
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
source "$GPUPASS_SOURCE_ROOT/tests/integration/cluster-lib.sh"
VIEW=$GPUPASS_SOURCE_ROOT/tests/integration/cluster_view.py
A=0000:42:00.0
B=0000:43:00.0

start_host pair "$(sized "$FIX/a6000-pair.ini" 32 131072)"
start_bus open
start_clusterd agg pair
wait_host pair && pass "host pair up" || fail "pair: $(cluster ListHosts)"
start_monitor cmon.log org.gpupass.cluster1 --system --json=short

owners() { python3 "$VIEW" owners "unix:path=$TEST_DIR/pair/bus" | cut -d' ' -f1-2 | tr '\n' ' '; }
vm_power() { # name -> "POWER HOST" from ListVms
        cluster ListVms | grep -o "\"$1\" [0-9]* [0-9]* \"[^\"]*\" \"[^\"]*\" \"[a-z]*\" \"[^\"]*\"" |
                awk '{ print $(NF-1), $NF }' | tr -d '"'
}
no_double_on() { # what: the aggregator's signals so far never had two VMs on with one GPU
        local out
        if out=$(python3 "$VIEW" double-on "$TEST_DIR/cmon.log"); then pass "$1"; else fail "$1: $out"; fi
}

u1=$(cluster CreateVm sut pair-1 8 16384 | cut -d'"' -f2)
cluster SetVmGpus ss pair-1 "2:NVIDIA RTX A6000"
u2=$(cluster CreateVm sut next-1 4 8192 | cut -d'"' -f2)
cluster SetVmGpus ss next-1 "1:NVIDIA RTX A6000"
out=$(cluster PowerOn s pair-1 2>&1) || true
assert_eq "sas \"pair\" 2 \"$A\" \"$B\"" "$out" "pair-1 is given both A6000 of the group"
assert_eq "$A $u1 $B $u1 " "$(owners)" \
        "the agent holds both GPUs of the group for pair-1"
cexpect org.gpupass.Error.NoHostAvailable "pair: no free NVIDIA RTX A6000" -- PowerOn s next-1

out=$(cluster PowerOff s pair-1 2>&1) && pass "PowerOff of pair-1 succeeds" || fail "PowerOff of pair-1: $out"
assert_eq "$A - $B - " "$(owners)" "the agent shows no claim left"
assert_eq "off pair" "$(vm_power pair-1)" "the registry has pair-1 off"
out=$(cluster PowerOn s next-1 2>&1) || true
assert_contains "$out" 'sas "pair" 1 ' "next-1 takes a GPU of the group"
assert_eq "$A $u2 $B $u2 " "$(owners)" "the agent holds the group for next-1"
assert_eq "off pair" "$(vm_power pair-1)" "pair-1 is still off"
no_double_on "the registry never showed two VMs on the same GPUs"

# An aggregator restart adopts next-1's claims and powers nothing on again: pair-1 was powered off.
held_logged() { # N: the aggregators have logged next-1 holding its GPUs on pair at least N times
        [ "$(grep -c "VM next-1 still holds its GPUs on host pair" "$TEST_DIR/agg.log" || true)" -ge "$1" ]
}
state_now() { echo "$(vm_power pair-1)|$(vm_power next-1)|$(owners)"; }
restarts=0
for how in TERM KILL; do
        kill -s $how "${CLUSTERD_PID[agg]}"
        wait "${CLUSTERD_PID[agg]}" 2>/dev/null || true
        wait_until 30 "org.gpupass.cluster1 to leave the bus" output_is "b false" cluster_name_owned || true
        run_clusterd agg
        restarts=$((restarts + 1))
        wait_host pair && pass "SIG$how: pair up again for the new aggregator" || fail "pair: $(cluster ListHosts)"
        # The new aggregator's check of the host: the pass that finds next-1 holding its GPUs is the one that
        # would power pair-1 on again; once it is logged (and a call answered after it), it has decided.
        wait_until 20 "the new aggregator's check of host pair" held_logged "$restarts" &&
                pass "SIG$how: the new aggregator checked host pair" || fail "SIG$how: no check of host pair logged"
        cluster ListVms >/dev/null
        assert_not_contains "$(cat "$TEST_DIR/agg.log")" "VM pair-1 waits for host pair" \
                "SIG$how: pair-1 is not to be powered on again"
        # next-1's own reconcile runs after that pass: for 2 s, nothing changes.
        expect="off pair|on pair|$A $u2 $B $u2 "
        state_changed() { [ "$(state_now)" != "$expect" ]; }
        if wait_until 2 "any change of pair-1, next-1 or the claims" state_changed 2>/dev/null; then
                fail "SIG$how: pair-1 stays off, next-1 stays on with its claims: $(state_now)"
        else
                pass "SIG$how: pair-1 stays off, next-1 stays on with its claims"
        fi
done
out=$(cluster PowerOff s next-1 2>&1) && pass "PowerOff of next-1 after the restarts" || fail "PowerOff of next-1: $out"
assert_eq "$A - $B - " "$(owners)" "no claim left at the end"
finish
