#!/bin/bash
# The test helpers themselves: a check that must fail, fails. Each assert helper, wait_until's timeout and
# its --while, and the refusal helper given a success, another error, another message or arguments
# dbus-send cannot pass (agent and aggregator), run in a subshell whose counts are its own: it must record
# exactly one failure, and a test with a failed check must exit non-zero. And the passing cases, so that a
# helper that always fails is caught too. Runs under gpupass-simhost, as the integration tests do.
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
source "$GPUPASS_SOURCE_ROOT/tests/integration/cluster-lib.sh"
NOBODY="--reuid=65534 --regid=65534 --clear-groups"
M=/org/gpupass/agent1
MI=org.gpupass.agent1.Manager

# counted COMMAND...: the check COMMAND in a subshell with counts of its own; prints its output (on one
# line) and then "checks=N failures=N".
counted() {
        local out
        out=$(CHECKS=0 FAILURES=0
              "$@" 2>&1
              echo "checks=$CHECKS failures=$FAILURES")
        echo "${out//$'\n'/ | }"
}
# must pass|fail WHAT COMMAND...: COMMAND records exactly one check, printed as such, passed or failed.
must() {
        local want=$1 what=$2 out line=ok failures=0
        shift 2
        if [ "$want" == fail ]; then
                line="not ok"
                failures=1
        fi
        out=$(counted "$@")
        if [[ "$out" == *"$line - "*"checks=1 failures=$failures" ]]; then
                pass "$what: ${want}s"
        else
                fail "$what: should record one check that ${want}s: $out"
        fi
}
must_fail() { must fail "$@"; }
must_pass() { must pass "$@"; }

# The assert helpers.
must_fail "assert_eq, different" assert_eq a b "x"
must_pass "assert_eq, equal" assert_eq a a "x"
must_fail "assert_eq, a prefix is not equal" assert_eq abc ab "x"
must_fail "assert_contains, absent" assert_contains "haystack" "needle" "x"
must_pass "assert_contains, present" assert_contains "a needle here" "needle" "x"
must_fail "assert_contains, a glob is not a pattern" assert_contains "abc" "a*c" "x"
must_fail "assert_contains, an empty needle (an unset variable)" assert_contains "abc" "" "x"
must_fail "assert_not_contains, present" assert_not_contains "a needle here" "needle" "x"
must_pass "assert_not_contains, absent" assert_not_contains "haystack" "needle" "x"
must_fail "assert_not_contains, an empty haystack (a command that printed nothing)" assert_not_contains "" "needle" "x"
must_fail "fail" fail "x"

# A test with a failed check exits non-zero at finish, and reports how many failed.
rc=0
out=$(bash -c 'source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"; pass one; fail two; finish' 2>&1) || rc=$?
assert_eq 1 "$rc" "finish exits 1 after a failed check"
assert_contains "$out" "# 1 of 2 checks failed" "finish says how many checks failed"
rc=0
out=$(bash -c 'source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"; pass one; finish' 2>&1) || rc=$?
assert_eq 0 "$rc" "finish exits 0 when every check passed"
assert_contains "$out" "1..1" "finish prints the TAP plan"

# wait_until: bounded, says what it waited for; stops when the process it watches is gone; returns once the
# condition holds.
start=${EPOCHREALTIME//[!0-9]/}
rc=0
out=$(wait_until 1 "the moon" false 2>&1) || rc=$?
took=$(( (${EPOCHREALTIME//[!0-9]/} - start) / 1000 ))
assert_eq 1 "$rc" "wait_until returns 1 when the time is up"
assert_contains "$out" "timed out after 1 s waiting for the moon" "wait_until names what it waited for"
if [ "$took" -ge 1000 ] && [ "$took" -lt 10000 ]; then
        pass "wait_until waited its 1 s (${took} ms)"
else
        fail "wait_until 1 took ${took} ms"
fi
sleep 0.1 &
gone=$!
wait "$gone"
rc=0
out=$(wait_until --while "$gone" 30 "the tide" false 2>&1) || rc=$?
assert_eq 1 "$rc" "wait_until --while returns 1 when the process has exited"
assert_contains "$out" "process $gone exited while waiting for the tide" "wait_until --while says so"
(sleep 0.3; : >"$TEST_DIR/later") &
rc=0
wait_until 20 "a file created in 0.3 s" test -e "$TEST_DIR/later" || rc=$?
assert_eq 0 "$rc" "wait_until returns 0 once the condition holds"
if output_is "b" echo "a"; then fail "output_is: a is not b"; else pass "output_is: another output fails"; fi
if output_is "a" false; then fail "output_is: a failed command"; else pass "output_is: a failed command fails"; fi
if output_has "needle" echo "haystack"; then fail "output_has: absent"; else pass "output_has: absent fails"; fi
if output_has "a*c" echo "abc"; then fail "output_has: a*c is not a pattern"; else pass "output_has: fixed string"; fi
if output_matches "a[bc]d" echo "aed"; then fail "output_matches: a[bc]d"; else pass "output_matches: no match fails"; fi
if output_matches "a[bc]d" echo "xacdx"; then pass "output_matches: a glob"; else fail "output_matches: a[bc]d in xacdx"; fi
if file_has "$TEST_DIR/none" x; then fail "file_has: no file"; else pass "file_has: no file fails"; fi

# as_user: the other user, without the simulated host's preload (that its library is readable only by
# root is what the 0700-checkout run checks).
assert_eq "65534 unset" "$(as_user "$NOBODY" sh -c 'echo "$(id -u) ${LD_PRELOAD-unset}"')" \
        "as_user runs as that user, without LD_PRELOAD"

# The refusal helper, against the agent (on an open bus, so that the agent's own check names the caller).
start_bus open
start_agent
must_pass "assert_refused, the right error and message" assert_refused org.gpupass.Error.NotFound \
        "No GPU at 0000:3b:00.1" -- org.gpupass.agent1 $M $MI GetGpu s 0000:3b:00.1
must_fail "assert_refused, given a success" assert_refused org.gpupass.Error.NotFound "" \
        -- org.gpupass.agent1 $M $MI GetGpu s 0000:3b:00.0
must_fail "assert_refused, given another error" assert_refused org.gpupass.Error.NotFound "" \
        -- org.gpupass.agent1 $M $MI GetGpu s 0000:3b:00
must_fail "assert_refused, an error whose name starts with the one expected" assert_refused org.gpupass.Error.Not "" \
        -- org.gpupass.agent1 $M $MI GetGpu s 0000:3b:00.1
must_fail "assert_refused, another message" assert_refused org.gpupass.Error.NotFound "No GPU at 0000:3b:00.2" \
        -- org.gpupass.agent1 $M $MI GetGpu s 0000:3b:00.1
must_fail "assert_refused, arguments dbus-send cannot pass" assert_refused org.gpupass.Error.NotFound "" \
        -- org.gpupass.agent1 $M $MI GetGpu "(ss)" a b
must_fail "assert_refused without --" assert_refused org.gpupass.Error.NotFound "" org.gpupass.agent1 $M $MI GetGpu
must_pass "assert_refused --as, called as that user" assert_refused org.gpupass.Error.AccessDenied \
        "uid 65534 may not change" --as "$NOBODY" -- org.gpupass.agent1 $M $MI SetMaintenance b true
must_fail "assert_refused --as, given a call the user may make" assert_refused org.gpupass.Error.AccessDenied "" \
        --as "$NOBODY" -- org.gpupass.agent1 $M $MI GetGpu s 0000:3b:00.0
must_fail "expect_error, given a success" expect_error org.gpupass.Error.NotFound "" -- $M $MI GetGpu s 0000:3b:00.0
must_pass "expect_error, the right error" expect_error org.gpupass.Error.InvalidArgument "is not a PCI address" \
        -- $M $MI GetGpu s 3b
assert_eq 'b false' "$(busctl --system get-property org.gpupass.agent1 $M $MI Maintenance)" \
        "the refused SetMaintenance changed nothing"

# dbus_send_args: busctl's syntax to dbus-send's, for each kind of argument the tests pass.
dbus_send_args converted "sutbasa{ss}v" x 1 2 true 2 a b 1 k v s hello
assert_eq "string:x uint32:1 uint64:2 boolean:true array:string:a,b dict:string:string:k,v variant:string:hello" \
        "${converted[*]}" "dbus_send_args converts basic types, arrays, dictionaries and variants"

# The refusal helper against the aggregator (cexpect), on the same bus.
start_clusterd agg
must_pass "cexpect, the right error and message" cexpect org.gpupass.Error.NotFound "No VM 'nope'" -- DeleteVm s nope
must_fail "cexpect, given a success" cexpect org.gpupass.Error.NotFound "" -- ListVms
must_fail "cexpect, given another error" cexpect org.gpupass.Error.Busy "" -- DeleteVm s nope
finish
