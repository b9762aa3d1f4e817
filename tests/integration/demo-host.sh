#!/bin/bash
# The main job until the aggregator exists: one simulated GPU host, its agent on a private system-like
# bus, and what an operator sees and does. Run by .ci/demo inside gpupass-simhost.
# The bus and the agent are the tests' own (lib.sh), in a directory removed at exit.
: "${GPUPASSD:?}" "${GPUPASSCTL:?}" "${GPUPASS_SOURCE_ROOT:?}"
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
start_bus policy
start_agent

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@" || true; }

echo "A simulated GPU host (tests/sim/fixtures/multi-gpu.ini) with gpupassd on a private system bus."
step "$GPUPASSCTL" status
step busctl --system tree org.gpupass.agent1
P=$(busctl --system call org.gpupass.agent1 /org/gpupass/agent1 org.gpupass.agent1.Manager GetGpu s 0000:3b:00.0 | cut -d'"' -f2)
step busctl --system introspect org.gpupass.agent1 "$P" org.gpupass.agent1.Gpu
echo; echo "# Prepare the M60 at 3b:00.0: its whole IOMMU group (GPU + HDMI audio) goes to vfio-pci."
step "$GPUPASSCTL" prepare 0000:3b:00.0
step sh -c "lspci -k -s 3b:00 2>/dev/null"
echo; echo "# Claim it for a VM; a second VM is refused; the claim is on disk."
step busctl --system call org.gpupass.agent1 "$P" org.gpupass.agent1.Gpu Claim s "$VM1"
step busctl --system call org.gpupass.agent1 "$P" org.gpupass.agent1.Gpu Claim s "$VM2"
step cat "$TEST_DIR/state/agent.state"
step "$GPUPASSCTL" list
echo; echo "# The refusals, each naming the device and the reason (exit status 1, D-Bus error name last):"
step "$GPUPASSCTL" prepare 0000:03:00.0
step "$GPUPASSCTL" prepare 0000:d8:00.0
step "$GPUPASSCTL" prepare 0000:5e:00.0
step as_user "--reuid=65534 --regid=65534 --clear-groups" "$GPUPASSCTL" prepare 0000:3c:00.0
step "$GPUPASSCTL" return 0000:3b:00.0
echo; echo "# Release (resets the functions), then give the group back to the host drivers."
step busctl --system call org.gpupass.agent1 "$P" org.gpupass.agent1.Gpu Release s "$VM1"
step "$GPUPASSCTL" return 0000:3b:00.0
step "$GPUPASSCTL" show 0000:3b:00.0
echo; echo "# The agent's log:"
cat "$TEST_DIR/agent.log"
