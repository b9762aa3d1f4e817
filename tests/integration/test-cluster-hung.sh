#!/bin/bash
# An agent that hangs (SIGSTOP: it holds its bus name and answers nothing) while the aggregator connects:
# the aggregator's calls time out after sd-bus's 25 s, the host is shown unreachable with the reason, the
# other host and the aggregator itself go on serving, and the host comes back once the agent runs again.
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
finish
