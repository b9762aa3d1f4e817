#!/bin/bash
# Scenario 4, first boot of the reboot stand-in (tests/vm/README.md): the agent's state directory is on
# the results share, which the host keeps for the second boot. Two claims are made here: 00:03.0 (the
# same device in both boots) for VM1 and 02:00.0 (bochs-display now, a qxl in the second boot) for VM2.
# The agent is then stopped as at shutdown; scenario-reboot-second.sh checks what survived.
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
A=0000:00:03.0  # bochs-display + audio companion 00:03.1, in both boots
H=0000:02:00.0  # the hot-plug slot: bochs-display in this boot
G=org.gpupass.agent1.Gpu
state=$RESULTS/agent-state
mkdir "$state" && pass "a fresh state directory on the host's share" || fail "$state already exists"
ln -s "$state" "$TEST_DIR/state"
start_bus policy
start_agent
assert_eq '"PCI 1234:1111"' "$(gpu_prop $H Model)" "$H is the bochs-display (1234:1111) in this boot"
for pair in "$A $VM1" "$H $VM2"; do
        set -- $pair
        out=$(busctl --system --timeout=180 call org.gpupass.agent1 "$(gpu_path $1)" $G Claim s $2 2>&1) &&
                pass "Claim $1 for VM $2" || fail "Claim $1: $out"
        assert_eq '"claimed"' "$(gpu_prop $1 State)" "$1 State claimed"
        assert_eq "vfio-pci" "$(basename "$(readlink /sys/bus/pci/devices/$1/driver)")" "$1 on vfio-pci (sysfs)"
done
stop_agent
[ -s "$state/agent.state" ] && pass "the agent left agent.state on the share" || fail "no $state/agent.state"
sed 's/^/# agent.state: /' "$state/agent.state"
sync
finish
