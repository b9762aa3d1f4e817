#!/bin/bash
# ExitHostMaintenance powers every VM of the host on again, however many come back at once: a host with four
# V100 and three GPU VMs (2 + 1 + 1 GPUs). Each VM is checked at the agent (its own claims), and no message
# calls a host that is up unreachable.
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
source "$GPUPASS_SOURCE_ROOT/tests/integration/cluster-lib.sh"
VIEW=$GPUPASS_SOURCE_ROOT/tests/integration/cluster_view.py
V100="NVIDIA Tesla V100 PCIe 16GB.compute"

start_host volta "$(sized "$FIX/four-v100.ini" 24 98304)"
start_host other "$(sized "$FIX/single.ini" 8 16384)"
start_bus open
start_clusterd agg volta other
wait_host volta && wait_host other && pass "volta and other up" || fail "hosts: $(cluster ListHosts)"

declare -A uuid=()
for vm in "wide 2" "narrow-1 1" "narrow-2 1"; do
        set -- $vm
        uuid[$1]=$(cluster CreateVm sut "$1" 2 4096 | cut -d'"' -f2)
        cluster SetVmGpus ss "$1" "$2:$V100"
done
held_by() { # uuid -> how many GPUs volta's agent reports claimed by it
        python3 "$VIEW" owners "unix:path=$TEST_DIR/volta/bus" | awk -v u="$1" '$2 == u' | wc -l
}
check_all_on() { # what
        local what=$1 vm n
        for vm in "wide 2" "narrow-1 1" "narrow-2 1"; do
                set -- $vm
                assert_contains "$(cluster ListVms)" "\"$1\" 2 4096 \"$2:$V100\" \"\" \"on\" \"volta\"" "$what: $1 on, on volta"
                n=$(held_by "${uuid[$1]}")
                assert_eq "$2" "$n" "$what: volta's agent holds $2 GPU(s) for $1"
        done
}
for vm in wide narrow-1 narrow-2; do
        out=$(cluster PowerOn s $vm 2>&1) || fail "PowerOn $vm: $out"
done
check_all_on "before the maintenance"

out=$(cluster EnterHostMaintenance s volta 2>&1) && pass "EnterHostMaintenance volta" || fail "Enter: $out"
for vm in wide narrow-1 narrow-2; do
        assert_eq 0 "$(held_by "${uuid[$vm]}")" "in maintenance: the agent holds nothing for $vm"
        assert_contains "$(cluster ListVms)" "\"$vm\" 2 4096" "$vm listed"
done
assert_not_contains "$(cluster ListVms)" '"on" "volta"' "in maintenance: no VM on volta"

out=$(cluster ExitHostMaintenance s volta 2>&1) && pass "ExitHostMaintenance volta" || fail "Exit: $out"
for vm in wide narrow-1 narrow-2; do assert_contains "$out" "\"${uuid[$vm]}\"" "ExitHostMaintenance names $vm"; done
# The power-ons may finish after the answer: wait for the registry, then ask the agent.
wait_vms '"narrow-2" 2 4096 "1:NVIDIA Tesla V100 PCIe 16GB.compute" "" "on"' || true
wait_vms '"wide" 2 4096 "2:NVIDIA Tesla V100 PCIe 16GB.compute" "" "on"' || true
wait_vms '"narrow-1" 2 4096 "1:NVIDIA Tesla V100 PCIe 16GB.compute" "" "on"' || true
check_all_on "after the maintenance"

# Twice more, and a fourth VM that could take a freed GPU meanwhile is refused for the right reason (not
# when the first cycle failed: each wait would last its 10 s for nothing).
cluster CreateVm sut extra 1 1024 >/dev/null
cluster SetVmGpus ss extra "1:$V100"
rounds="1 2"
[ "$FAILURES" -eq 0 ] || rounds=""
for round in $rounds; do
        cluster EnterHostMaintenance s volta >/dev/null || fail "round $round: Enter"
        out=$(cluster PowerOn s extra 2>&1) && fail "round $round: extra placed during the maintenance: $out"
        assert_contains "$out" "volta: in maintenance" "round $round: volta named in maintenance"
        assert_contains "$out" "other: no free $V100" "round $round: other named for its GPUs"
        assert_not_contains "$out" "unreachable" "round $round: no host that is up is called unreachable"
        cluster ExitHostMaintenance s volta >/dev/null || fail "round $round: Exit"
        # wait_vms matches a fixed string (wait.sh): each VM with its own count.
        for vm in "wide 2" "narrow-1 1" "narrow-2 1"; do
                set -- $vm
                wait_vms "\"$1\" 2 4096 \"$2:$V100\" \"\" \"on\"" || true
        done
        check_all_on "round $round"
        out=$(cluster PowerOn s extra 2>&1) && fail "round $round: extra placed on a full host: $out"
        assert_contains "$out" "volta: no free $V100" "round $round: volta is full, and up"
        assert_not_contains "$out" "unreachable" "round $round: no host called unreachable"
done
# A VM the operator powers off during the maintenance stays off after it; the others come back.
cluster PowerOff s extra >/dev/null 2>&1 || true
cluster EnterHostMaintenance s volta >/dev/null || fail "Enter before the PowerOff"
out=$(cluster PowerOff s narrow-2 2>&1) && pass "PowerOff of narrow-2 during the maintenance" || fail "PowerOff: $out"
cluster ExitHostMaintenance s volta >/dev/null || fail "Exit after the PowerOff"
wait_vms '"wide" 2 4096 "2:NVIDIA Tesla V100 PCIe 16GB.compute" "" "on"' || true
wait_vms '"narrow-1" 2 4096 "1:NVIDIA Tesla V100 PCIe 16GB.compute" "" "on"' || true
assert_contains "$(cluster ListVms)" '"narrow-2" 2 4096 "1:NVIDIA Tesla V100 PCIe 16GB.compute" "" "off"' \
        "narrow-2, powered off during the maintenance, stays off after it"
assert_eq 0 "$(held_by "${uuid[narrow-2]}")" "and volta's agent holds nothing for it"
assert_contains "$(cluster ListVms)" '"wide" 2 4096 "2:NVIDIA Tesla V100 PCIe 16GB.compute" "" "on" "volta"' "wide back on"

if grep -i "unreachable" "$TEST_DIR/agg.log" | grep -E "volta|other"; then
        fail "the aggregator's log calls an up host unreachable"
else
        pass "the aggregator's log never calls volta or other unreachable"
fi
finish
