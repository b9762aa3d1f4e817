#!/bin/bash
# A call waiting for an agent is always answered, never left to the client's timeout: when the host's
# connection is lost in the middle of a Claim (HostUnreachable; what it may hold is released when the host is
# back), and when the aggregator stops with a PowerOn waiting (an error at once; the next aggregator adopts
# the claim the agent completed, since the VM is still wanted on).
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
source "$GPUPASS_SOURCE_ROOT/tests/integration/cluster-lib.sh"
ALPHA_FIX=$(sized "$FIX/multi-gpu.ini" 16 65536)
BETA_FIX=$(sized "$FIX/single.ini" 4 8192)
start_host alpha "$ALPHA_FIX"
start_host beta "$BETA_FIX"
start_bus open
start_clusterd agg alpha beta
wait_host alpha && wait_host beta && pass "alpha and beta up" || fail "hosts: $(cluster ListHosts)"

power_on_bg() { # vm: PowerOn in the background, its answer in TEST_DIR/VM.out: sets POWER_PID
        busctl --system call org.gpupass.cluster1 $CM org.gpupass.cluster1.Manager PowerOn s "$1" \
                >"$TEST_DIR/$1.out" 2>&1 &
        POWER_PID=$!
}
answered() { # vm what: the PowerOn failed with the aggregator's answer, not the client's call timeout
        if wait "$POWER_PID"; then fail "$2: PowerOn of $1 succeeded: $(cat "$TEST_DIR/$1.out")"; return; fi
        assert_not_contains "$(cat "$TEST_DIR/$1.out")" "timed out" "$2: answered, not timed out"
}

# The host goes away while the agent binds the GPU for the Claim (a slow driver unbind).
u1=$(cluster CreateVm sut lost-1 1 1024 | cut -d'"' -f2)
cluster SetVmGpus ss lost-1 "=alpha/0000:86:00.0" >/dev/null
host_ctl alpha unbind-delay 3000
host_monitor alpha lost-1-calls.log
power_on_bg lost-1
# In the middle of the Claim once it has reached alpha's agent (whose unbind then takes 3 s).
wait_until 20 "the Claim for lost-1 on alpha" file_has "$TEST_DIR/lost-1-calls.log" "Member=Claim" ||
        fail "the PowerOn of lost-1 sent no Claim"
stop_host alpha
answered lost-1 "host lost during the Claim"
assert_contains "$(cat "$TEST_DIR/lost-1.out")" "Lost host alpha" "the answer names the host lost"
start_host alpha "$ALPHA_FIX"
wait_host alpha && pass "alpha back" || fail "alpha: $(cluster ListHosts)"
wait_vms "\"lost-1\" 1 1024 \"=alpha/0000:86:00.0\" \"\" \"off\" \"alpha\"" && pass "lost-1 ends off" ||
        fail "lost-1: $(cluster ListVms)"
assert_eq '""' "$(host_owner alpha 0000:86:00.0)" "nothing of lost-1 is held on alpha once it is back"

# The aggregator stops (SIGTERM) while a PowerOn waits for the agent.
u2=$(cluster CreateVm sut stop-1 1 1024 | cut -d'"' -f2)
cluster SetVmGpus ss stop-1 "=beta/0000:3b:00.0" >/dev/null
host_ctl beta unbind-delay 2000
host_monitor beta stop-1-calls.log
power_on_bg stop-1
wait_until 20 "the Claim for stop-1 on beta" file_has "$TEST_DIR/stop-1-calls.log" "Member=Claim" ||
        fail "the PowerOn of stop-1 sent no Claim"
kill "${CLUSTERD_PID[agg]}"
answered stop-1 "aggregator stopped during the PowerOn"
assert_contains "$(cat "$TEST_DIR/stop-1.out")" "gpupass-clusterd is stopping" "the answer says the aggregator stopped"
wait "${CLUSTERD_PID[agg]}" 2>/dev/null || true
wait_until 30 "org.gpupass.cluster1 to leave the bus" output_is "b false" cluster_name_owned
host_ctl beta unbind-delay 0
# Usually the agent finishes the Claim it was asked for (its bind was under way) and the next aggregator
# adopts it; if the agent had not yet checked the caller when the aggregator left, it refused the Claim
# and the next aggregator claims the GPU itself. Either way stop-1, still wanted on, ends on, once.
wait_until 30 "beta's agent to hold the GPU for stop-1" output_is "\"$u2\"" host_owner beta 0000:3b:00.0 ||
        echo "# the agent refused the Claim (its caller had left): the next aggregator claims it"
run_clusterd agg
wait_vms "\"stop-1\" 1 1024 \"=beta/0000:3b:00.0\" \"\" \"on\" \"beta\"" &&
        pass "the next aggregator finishes the PowerOn (the claim adopted)" || fail "stop-1: $(cluster ListVms)"
assert_eq "\"$u2\"" "$(host_owner beta 0000:3b:00.0)" "beta's agent holds the GPU for stop-1, once"

# A claim of a VM this registry does not know is foreign: shown on the Host object, never released.
FOREIGN=5d41402a-bc4b-4a76-9719-d911017c5920
p=$(host_call alpha call org.gpupass.agent1 /org/gpupass/agent1 org.gpupass.agent1.Manager GetGpu s 0000:3c:00.0 | cut -d'"' -f2)
host_call alpha call org.gpupass.agent1 "$p" org.gpupass.agent1.Gpu Claim s "$FOREIGN"
host_prop() { busctl --system get-property org.gpupass.cluster1 "$CM/host/$1" org.gpupass.cluster1.Host "$2"; }
wait_until 20 "alpha's ForeignClaims" output_is "a(ss) 1 \"0000:3c:00.0\" \"$FOREIGN\"" host_prop alpha ForeignClaims &&
        pass "alpha's ForeignClaims lists the foreign claim" ||
        fail "ForeignClaims: $(host_prop alpha ForeignClaims)"
stop_clusterd agg
run_clusterd agg
wait_host alpha && pass "alpha up for a new aggregator" || fail "alpha: $(cluster ListHosts)"
# The new aggregator has read alpha's claims and judged this one foreign (the claims of VMs it knows are the
# only ones it reconciles): from then on it would have released it, had it judged otherwise.
wait_until 20 "the new aggregator's ForeignClaims of alpha" \
        output_is "a(ss) 1 \"0000:3c:00.0\" \"$FOREIGN\"" host_prop alpha ForeignClaims &&
        pass "the new aggregator lists the foreign claim" || fail "ForeignClaims: $(host_prop alpha ForeignClaims)"
assert_eq "\"$FOREIGN\"" "$(host_owner alpha 0000:3c:00.0)" "the foreign claim is still held after the start-up"
finish
