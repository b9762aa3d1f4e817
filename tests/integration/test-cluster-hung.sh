#!/bin/bash
# An agent that hangs (SIGSTOP: it holds its bus name and answers nothing) while the aggregator connects:
# the aggregator's calls time out after sd-bus's 25 s, the host is shown unreachable with the reason, the
# other host and the aggregator itself go on serving, and the host comes back once the agent runs again.
# Then the start-up's hold: a PowerOn while a host is connecting waits for it (at most 10 s).
# (A timed-out call's callback dropping the connection used to make sd-bus abort the whole aggregator.)
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
source "$GPUPASS_SOURCE_ROOT/tests/integration/cluster-lib.sh"

start_host alpha "$FIX/multi-gpu.ini"
start_host beta "$FIX/single.ini"
hung=$(cat "$TEST_DIR/alpha/agent.pid")
kill -STOP "$hung"
# Whatever happens, the stopped agent must be able to receive the SIGTERM of the cleanup.
trap 'kill -CONT "$hung" 2>/dev/null || true; cleanup' EXIT
start_bus open
start_clusterd agg alpha beta
wait_host beta && pass "the host that answers is up at once" || fail "beta not up: $(cluster ListHosts)"
hosts=$(cluster ListHosts)
assert_contains "$hosts" "\"alpha\" \"unix:path=$TEST_DIR/alpha/bus\" \"connecting\"" "the hung host is still connecting"
# A PowerOn now waits for the hung host at most 10 s, then is placed without it.
cluster CreateVm sut bounded 1 1024 >/dev/null
cluster SetVmGpus ss bounded "1:NVIDIA Tesla M60" >/dev/null
out=$(cluster PowerOn s bounded 2>&1) || true
assert_contains "$out" '"beta" 1 "0000:3b:00.0"' "a PowerOn during the hung host's connection is placed after the 10 s bound"
assert_contains "$(cat "$TEST_DIR/agg.log")" "Hosts still connecting after 10 s" "the aggregator says it stopped waiting"

timed_out="\"alpha\" \"unix:path=$TEST_DIR/alpha/bus\" \"unreachable\" \"Method call timed out\""
# sd-bus's method call timeout is 25 s.
wait_until 60 "the hung host's calls to time out" output_has "$timed_out" cluster ListHosts || true
hosts=$(cluster ListHosts 2>&1 || true)
assert_contains "$hosts" "$timed_out" "after the timeout the hung host is unreachable, with the reason"
assert_eq "b true" "$(cluster_name_owned)" "the aggregator survives the timed-out calls"
assert_contains "$hosts" "\"beta\" \"unix:path=$TEST_DIR/beta/bus\" \"up\"" "the other host stays up"
assert_contains "$(cluster ListGpus)" '"beta"' "the other host's GPUs are still in the view"

kill -CONT "$hung"
wait_host alpha && pass "the agent runs again: its host is up again" || fail "alpha not back: $(cluster ListHosts)"
assert_contains "$(cluster ListGpus)" '"alpha"' "and its GPUs are in the view"

# Start-up: a PowerOn that comes while a host is still connecting waits for it (placement does not know
# that host yet) instead of refusing with "alpha: connecting". The VM needs alpha's compute-mode GPU.
cluster CreateVm sut early 1 1024 >/dev/null
cluster SetVmGpus ss early "1:NVIDIA Tesla M60.compute" >/dev/null
stop_clusterd agg
kill -STOP "$hung"
run_clusterd agg
start_monitor cluster-monitor.log org.gpupass.cluster1
cluster PowerOn s early >"$TEST_DIR/early.out" 2>&1 &
early=$!
# The aggregator has the PowerOn once the bus routed it there and a later call of ours is answered.
wait_for_log "$TEST_DIR/cluster-monitor.log" "Member=PowerOn" || fail "the PowerOn did not reach the bus"
cluster ListVms >/dev/null
kill -0 "$early" 2>/dev/null && pass "the PowerOn is not answered while alpha is connecting" ||
        fail "the PowerOn was answered while alpha was connecting: $(cat "$TEST_DIR/early.out")"
assert_contains "$(cluster ListHosts)" "\"alpha\" \"unix:path=$TEST_DIR/alpha/bus\" \"connecting\"" \
        "after a restart of the aggregator, alpha (stopped) is connecting"
kill -CONT "$hung"
if wait "$early"; then
        assert_contains "$(cat "$TEST_DIR/early.out")" '"alpha" 1 "0000:86:00.0"' \
                "the PowerOn that came while alpha was connecting waited for it and was placed there"
else
        fail "the PowerOn that came while alpha was connecting was refused: $(cat "$TEST_DIR/early.out")"
fi
assert_contains "$(cat "$TEST_DIR/agg.log")" "the reconciles that waited for them start" "the aggregator says the PowerOn waited"
finish
