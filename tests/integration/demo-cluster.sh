#!/bin/bash
# The main job: a simulated cluster of four GPU hosts (each a simulated PCI host with gpupassd on its own
# private system bus) and gpupass-clusterd on a fifth bus: the cluster view, placements (one refused with
# each host's reason), the pass-through limitations, a maintenance cycle and a reflash. Run by .ci/demo.
# The hosts, the buses and the aggregator are the tests' own (lib.sh, cluster-lib.sh), in a directory removed at exit.
: "${GPUPASSD:?}" "${GPUPASSCTL:?}" "${GPUPASS_SIMHOST:?}" "${GPUPASS_CLUSTERD:?}" "${GPUPASS_SOURCE_ROOT:?}"
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
source "$GPUPASS_SOURCE_ROOT/tests/integration/cluster-lib.sh"
bold() { printf '\n\033[1m%s\033[0m\n' "$*"; }
step() { printf '\033[1m$ %s\033[0m\n' "$*"; "$@" 2>&1 || true; }

# Hosts of different sizes, as a real cluster has (their sysfs says so: CPUs online, memory blocks).
declare -A fixture=([alpha]=multi-gpu.ini [beta]=single.ini [gamma]=compute.ini [delta]=no-iommu.ini)
declare -A size=([alpha]="32 131072" [beta]="8 16384" [gamma]="16 65536" [delta]="4 8192")
for h in alpha beta gamma delta; do start_host $h "$(sized "$FIX/${fixture[$h]}" ${size[$h]})"; done
start_bus open
# Each host runs its VMs through libvirt (Runtime=libvirt), here libvirt's test driver, one file per host.
CLUSTER_RUNTIME=libvirt
start_clusterd agg alpha beta gamma delta
for h in alpha beta gamma delta; do wait_host $h || true; done

bold "Four simulated GPU hosts of different sizes, each with gpupassd on its own bus; gpupass-clusterd connected to all:"
step cat "$TEST_DIR/agg/etc/clusterd.conf"
step "$GPUPASSCTL" hosts
bold "The cluster-wide view of every GPU (host, address, model, mode, state, owner, previous model, flag):"
step "$GPUPASSCTL" gpus

bold "VMs with GPU requests (a count and acceptable models; all GPUs of one request of one model):"
for vm in "train-1 1 2048 2:NVIDIA Tesla M60|NVIDIA Tesla M60.compute" "infer-1 1 1024 1:NVIDIA Tesla T4.compute" \
          "infer-2 1 1024 2:NVIDIA Tesla T4.compute" "render-1 1 1024 1:NVIDIA Tesla M60" \
          "big-1 1 1024 4:NVIDIA Tesla T4.compute"; do
        set -- $vm
        name=$1 cpus=$2 mem=$3; shift 3
        "$GPUPASSCTL" create-vm "$name" --vcpus="$cpus" --memory="$mem" >/dev/null
        step "$GPUPASSCTL" set-gpus "$name" "$*"
done
bold "Power-on: each VM goes to a host that has all its GPUs (best fit), the agents' Claim decides:"
for vm in train-1 infer-1 render-1; do step "$GPUPASSCTL" power-on "$vm"; done
bold "No host for infer-2 (2 T4 at once) nor big-1 (4): they stay off, and the error says why for each host:"
step "$GPUPASSCTL" power-on infer-2
step "$GPUPASSCTL" power-on big-1
step "$GPUPASSCTL" vms
bold "train-1 runs on alpha's libvirt (RUNTIME above): the domain it was started with, its GPUs as managed='no' hostdevs:"
step "$GPUPASSCTL" domain-xml train-1
printf 'libvirt on alpha says of train-1: %s\n' "$(libvirt_inside state alpha "$("$GPUPASSCTL" show-vm train-1 --json=short |
        sed 's/.*"Uuid":"\([^"]*\)".*/\1/')")"
bold "A domain libvirt refuses (a template with two disks on one target): the VM stays off, libvirt's error named:"
printf '<domain type="kvm"><os><type>hvm</type></os><devices>%s%s</devices></domain>\n' \
        '<disk type="file"><source file="/var/lib/a.img"/><target dev="vda"/></disk>' \
        '<disk type="file"><source file="/var/lib/b.img"/><target dev="vda"/></disk>' >"$TEST_DIR/two-disks.xml"
step "$GPUPASSCTL" set-template infer-2 "$TEST_DIR/two-disks.xml"
step "$GPUPASSCTL" set-gpus infer-2 "1:NVIDIA Tesla T4.compute"
step "$GPUPASSCTL" power-on infer-2
step "$GPUPASSCTL" set-template infer-2 /dev/null
bold "For a runtime gpupass does not drive (Runtime=none): train-1's GPUs as QEMU arguments and <hostdev> elements:"
step "$GPUPASSCTL" hostdev train-1
bold "The limitations of pass-through:"
step "$GPUPASSCTL" migrate train-1
step "$GPUPASSCTL" pause train-1
step "$GPUPASSCTL" set-resources train-1 --memory=4G
step "$GPUPASSCTL" set-gpus train-1 "1:NVIDIA Tesla M60"
step "$GPUPASSCTL" console train-1

bold "Maintenance of alpha (an upgrade): its GPU VMs go off and come back on alpha afterwards:"
step "$GPUPASSCTL" host-maintenance alpha on
step "$GPUPASSCTL" hosts
step "$GPUPASSCTL" host-maintenance alpha off
restarted() { ! output_has "restart:alpha" cluster ListVms; } # no VM waits for alpha's maintenance to end
wait_until 30 "the VMs of alpha's maintenance to be on again" restarted || true
step "$GPUPASSCTL" vms

bold "Reflash: render-1 is off; beta's M60 is reflashed to compute mode (remove + rescan):"
step "$GPUPASSCTL" power-off render-1
unplug_m60 beta
plug_m60_compute beta
wait_vms reconfigure: || true
step "$GPUPASSCTL" vms
step "$GPUPASSCTL" gpus
step "$GPUPASSCTL" power-on render-1
step "$GPUPASSCTL" set-gpus render-1 "1:NVIDIA Tesla M60.compute"
step "$GPUPASSCTL" power-on render-1
bold "The same as JSON, for scripts (gpupassctl --json=short|pretty):"
step "$GPUPASSCTL" show-vm render-1 --json
bold "The aggregator's log:"
cat "$TEST_DIR/agg.log"
