#!/bin/bash
# A corrupt state file (a flipped byte, a torn copy, garbage, an empty file): detected, kept byte for byte
# for the operator, reported with the claims still readable in it, maintenance forced on so that nothing
# those claims covered is handed out, and the GPUs left where they were (on vfio-pci, not the host driver).
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
start_bus policy
start_agent
A=0000:3b:00.0
C=0000:3c:00.0
STATE=$TEST_DIR/state/agent.state
G=org.gpupass.agent1.Gpu
M=/org/gpupass/agent1
MI=org.gpupass.agent1.Manager
problem() { busctl --system get-property org.gpupass.agent1 $M $MI StateProblem; }
maintenance() { busctl --system get-property org.gpupass.agent1 $M $MI Maintenance; }

busctl --system call org.gpupass.agent1 "$(gpu_path $A)" $G Claim s $VM1
busctl --system call org.gpupass.agent1 "$(gpu_path $C)" $G Claim s $VM2
stop_agent
cp "$STATE" "$TEST_DIR/good.state"

# corrupt NAME [TEXT...]: the agent starts on the file as it is now, and must refuse it, StateProblem saying
# each TEXT.
corrupt() {
        local name=$1 copy needle
        shift
        cp "$STATE" "$TEST_DIR/$name.state"
        start_agent
        assert_contains "$(problem)" "was corrupt" "$name: StateProblem reports the corruption"
        assert_eq 'b true' "$(maintenance)" "$name: maintenance is forced on"
        copy=$(ls -t "$TEST_DIR"/state/agent.state.corrupt-* | head -1)
        cmp -s "$copy" "$TEST_DIR/$name.state" && pass "$name: the corrupt file is kept byte for byte" ||
                fail "$name: the kept copy differs"
        assert_contains "$(problem)" "kept as $copy" "$name: StateProblem names the kept copy"
        expect_error org.gpupass.Error.InMaintenance "maintenance" -- "$(gpu_path $A)" $G Claim s $VM2
        assert_eq "vfio-pci vfio-pci" "$(sysfs_driver $A) $(sysfs_driver $C)" "$name: the GPUs stay on vfio-pci"
        assert_eq '""' "$(gpu_prop $A Owner)" "$name: no claim is taken from it"
        for needle in "$@"; do
                assert_contains "$(problem)" "$needle" "$name: StateProblem says '$needle'"
        done
        stop_agent
        rm -f "$TEST_DIR"/state/agent.state.corrupt-*
}

# One flipped byte: the checksum says so; the claims are still legible and named.
sed 's/^maintenance 0/maintenance 1/' "$TEST_DIR/good.state" >"$STATE"
corrupt flipped "checksum mismatch" "claims still readable in it, not applied: $A (VM $VM1), $C (VM $VM2)"

# A torn copy (the first half, e.g. restored from a broken backup).
head -c $(( $(stat -c %s "$TEST_DIR/good.state") / 2 )) "$TEST_DIR/good.state" >"$STATE"
corrupt torn "claims still readable in it, not applied: $A (VM $VM1)"

# Garbage, and an empty file.
head -c 300 /dev/urandom >"$STATE"
corrupt garbage "no claim readable in it"
: >"$STATE"
corrupt empty "no claim readable in it"

# The operator looks, turns maintenance off: a fresh, valid file is written and the report is cleared.
cp "$TEST_DIR/garbage.state" "$STATE"
start_agent
ctl maintenance off
assert_eq 's ""' "$(problem)" "maintenance off acknowledges the report"
assert_contains "$(head -1 "$STATE")" "version 1" "a fresh state file is written"
assert_contains "$(tail -1 "$STATE")" "checksum " "with its checksum"
crash_agent
start_agent
assert_eq 's ""' "$(problem)" "and it loads cleanly"
finish
