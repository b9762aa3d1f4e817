#!/bin/bash
# libvirt on the real kernel: libvirtd (standalone, no systemd) with the QEMU driver and gpupass's hook in
# /etc/libvirt/hooks/qemu.d, gpupassd beside it. A domain with a managed='no' hostdev of the emulated display
# device (and its audio function) is started with virsh: the hook claims the group, QEMU (TCG) runs as
# libvirt's QEMU user with both devices; a second domain wanting them is refused with the agent's Busy;
# virsh destroy releases the claim, and the second domain can then have the card. Then the aggregator's
# path: gpupass-clusterd with this host (Runtime=libvirt on qemu:///system) powers a VM on and off.
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
BUILD=${GPUPASSD%/agent/host/gpupassd}
A=0000:00:03.0 AUDIO=0000:00:03.1
QEMU_USER=libvirt-qemu
export LIBVIRT_DEFAULT_URI=qemu:///system

if ! getent passwd $QEMU_USER >/dev/null; then
        fail "no user $QEMU_USER (Debian's libvirt-daemon-system creates it: .ci/packages)"
        finish
fi
start_bus policy
# libvirtd runs its hooks with a clean environment (no DBUS_SYSTEM_BUS_ADDRESS): they reach the system bus at
# its usual place, which here is the test's bus.
mkdir -p /run/dbus
ln -sf "$TEST_DIR/bus" /run/dbus/system_bus_socket
# The hook bounds its wait for the agent to 20 s; the agent's first vfio-pci load through libkmod can take
# longer than that on a loaded TCG guest (tests/vm/README.md), so the module is loaded first.
modprobe vfio-pci
start_agent
G=$(gpu_prop $A IommuGroup)
# hostdev_entries INFO-PCI: the entries of `info pci` whose id is a libvirt hostdev.
hostdev_entries() {
        awk '/^ *Bus +[0-9]+, device/ { if (keep) printf "%s", block; block = ""; keep = 0 }
             { block = block $0 "\n" } /id "hostdev/ { keep = 1 } END { if (keep) printf "%s", block }' <<<"$1"
}
ids() { echo "$(sed 's/0x//' "/sys/bus/pci/devices/$1/vendor"):$(sed 's/0x//' "/sys/bus/pci/devices/$1/device")"; }
A_IDS=$(ids $A) AUDIO_IDS=$(ids $AUDIO)

# libvirt's configuration on the guest's overlay: the QEMU user, stdio to files (no virtlogd), no MAC
# driver (no AppArmor here); hooks are found when libvirtd starts, so the hook is installed first.
mkdir -p /etc/libvirt/hooks/qemu.d
cp "$BUILD/agent/hook/gpupass-libvirt-hook" /etc/libvirt/hooks/qemu.d/gpupass
cat >/etc/libvirt/qemu.conf <<EOF
user = "$QEMU_USER"
group = "$QEMU_USER"
stdio_handler = "file"
security_driver = "none"
EOF
cat >"$TEST_DIR/libvirtd.conf" <<EOF
auth_unix_rw = "none"
auth_unix_ro = "none"
log_outputs = "3:file:$TEST_DIR/libvirtd.log"
EOF
# The default network's autostart would need dnsmasq and a bridge, and a domain the machine itself has set to
# autostart would start in here too: neither is what this is about (the overlay's copies only).
rm -f /etc/libvirt/qemu/networks/autostart/* /etc/libvirt/qemu/autostart/*
# start_libvirtd: libvirtd in the background (LIBVIRTD_PID), up to 5 min for it to answer (its first
# connection probes QEMU's capabilities: slow with TCG inside TCG).
start_libvirtd() {
        libvirtd -f "$TEST_DIR/libvirtd.conf" >>"$TEST_DIR/libvirtd.log" 2>&1 &
        LIBVIRTD_PID=$!
        PIDS+=("$LIBVIRTD_PID")
        if ! wait_until --while "$LIBVIRTD_PID" 300 "libvirtd to answer virsh" virsh_answers; then
                tail -20 "$TEST_DIR/libvirtd.log"
                exit 1
        fi
}
virsh_answers() { virsh version >/dev/null 2>&1; }
start_libvirtd
echo "# $(virsh version 2>&1 | tr '\n' ' ')"

# The domain gpupass builds without a template (agent/common/domain-xml.c): q35, 64 MiB, no disk, and one
# managed='no' hostdev per function of the card.
"$BUILD/tests/vm/build-domain" qemu vm-a "$VM1" 1 65536 $A $AUDIO >"$TEST_DIR/vm-a.xml"
"$BUILD/tests/vm/build-domain" qemu vm-b "$VM2" 1 65536 $A $AUDIO >"$TEST_DIR/vm-b.xml"
sed 's/^/# vm-a.xml: /' "$TEST_DIR/vm-a.xml"

out=$(timeout 300 virsh create "$TEST_DIR/vm-a.xml" 2>&1) && pass "virsh create vm-a" || fail "virsh create vm-a: $out"
echo "# \$ virsh create vm-a.xml"; echo "$out" | sed 's/^/#   /'
assert_eq "\"$VM1\"" "$(gpu_prop $A Owner)" "the hook claimed the group for vm-a's UUID (the agent's Owner)"
assert_eq '"claimed"' "$(gpu_prop $A State)" "State claimed"
assert_eq "vfio-pci vfio-pci" "$(sysfs_driver $A) $(sysfs_driver $AUDIO)" "the claim bound both functions to vfio-pci (sysfs)"
pid=$(cat /run/libvirt/qemu/vm-a.pid 2>/dev/null || echo none)
echo "# QEMU: $(ps -o pid=,user=,comm= -p "$pid" 2>&1), its VFIO devices:"
{ tr '\0' '\n' <"/proc/$pid/cmdline" | grep vfio-pci | sed 's/^/#   -device /'; } 2>&1 || true

assert_eq "$QEMU_USER" "$(ps -o user= -p "$pid" 2>&1 | tr -d ' ')" "QEMU runs as libvirt's QEMU user"
out=$(virsh qemu-monitor-command vm-a --hmp 'info pci' 2>&1) || true
echo "# \$ virsh qemu-monitor-command vm-a --hmp 'info pci' (the hostdevs' entries)"
entries=$(hostdev_entries "$out")
echo "$entries" | sed 's/^/#   /'
assert_contains "$entries" "Display controller: PCI device $A_IDS" "info pci: QEMU has the display device ($A_IDS) as a hostdev"
assert_contains "$entries" "Audio controller: PCI device $AUDIO_IDS" "info pci: and its audio function ($AUDIO_IDS)"
# libvirt's DAC driver gives QEMU the group node in QEMU's own /dev (libvirt's mount namespace); the host's
# node is untouched, so it never fights AllowUser (README "libvirt hook").
echo "# /dev/vfio/$G: host $(stat -c '%U:%G %a' /dev/vfio/$G), QEMU's $(stat -c '%U:%G %a' /proc/$pid/root/dev/vfio/$G 2>&1)"
assert_eq "$QEMU_USER" "$(stat -c %U /proc/$pid/root/dev/vfio/$G 2>&1)" "QEMU's /dev/vfio/$G belongs to $QEMU_USER"
assert_eq "root" "$(stat -c %U /dev/vfio/$G)" "the host's /dev/vfio/$G is still root's"

# A second domain wanting the same card: the hook refuses it with the agent's Busy, libvirt says so.
rc=0; out=$(timeout 300 virsh create "$TEST_DIR/vm-b.xml" 2>&1) || rc=$?
echo "# \$ virsh create vm-b.xml (exit $rc)"; echo "$out" | sed 's/^/#   /'
if [ $rc -ne 0 ]; then pass "virsh create vm-b fails"; else fail "virsh create vm-b succeeded"; fi
assert_contains "$out" "org.gpupass.Error.Busy" "libvirt's error carries the agent's error name"
assert_contains "$out" "$A is claimed by VM $VM1" "and its message"
assert_eq "\"$VM1\"" "$(gpu_prop $A Owner)" "vm-a keeps its claim (libvirt's release after the failed start did not touch it)"
assert_eq "running" "$(virsh domstate vm-a 2>&1)" "vm-a still runs"

# virsh destroy: libvirt stops QEMU, the hook's release end releases the claim.
out=$(timeout 120 virsh destroy vm-a 2>&1) && pass "virsh destroy vm-a" || fail "virsh destroy vm-a: $out"
assert_eq '""' "$(gpu_prop $A Owner)" "the claim is released (the agent's Owner is empty)"
assert_eq '"vfio"' "$(gpu_prop $A State)" "State vfio: on vfio-pci, free for the next VM"
assert_eq "root" "$(stat -c %U /dev/vfio/$G)" "/dev/vfio/$G is root's"
grep -E "claimed|released" "$TEST_DIR/agent.log" | sed 's/^/# agent: /' || true

# Now vm-b gets the card, this time with libvirt's mount namespace off: the DAC driver then chowns the
# host's node itself for QEMU's lifetime, and gives it back before the hook releases the claim.
kill "$LIBVIRTD_PID"
wait "$LIBVIRTD_PID" || true
echo 'namespaces = [ ]' >>/etc/libvirt/qemu.conf
start_libvirtd
out=$(timeout 300 virsh create "$TEST_DIR/vm-b.xml" 2>&1) && pass "virsh create vm-b after vm-a is gone" || fail "virsh create vm-b: $out"
assert_eq "\"$VM2\"" "$(gpu_prop $A Owner)" "the group is claimed for vm-b"
out=$(virsh qemu-monitor-command vm-b --hmp 'info pci' 2>&1) || true
assert_contains "$(hostdev_entries "$out")" "PCI device $A_IDS" "vm-b's QEMU has the display device"
echo "# without the namespace, while vm-b runs: host /dev/vfio/$G $(stat -c '%U:%G %a' /dev/vfio/$G)"
assert_eq "$QEMU_USER" "$(stat -c %U /dev/vfio/$G)" "without libvirt's namespace the host's /dev/vfio/$G is the QEMU user's while it runs"
out=$(timeout 120 virsh destroy vm-b 2>&1) && pass "virsh destroy vm-b" || fail "virsh destroy vm-b: $out"
assert_eq '""' "$(gpu_prop $A Owner)" "and released again"
assert_eq "root" "$(stat -c %U /dev/vfio/$G)" "libvirt gave /dev/vfio/$G back to root"
# The aggregator's path. gpupass-clusterd claims the card, then starts the domain; the hook's claim at
# libvirt's prepare is the same VM's (the agent takes it as done). PowerOff: ACPI shutdown (this guest has no
# OS to obey), the destroy after ShutdownTimeoutSec, libvirt's release end (the hook releases), then the
# aggregator's own Release, which finds the claim gone (NotOwner: what it asked for). The aggregator owns its
# name on a second, open bus: this system bus carries the agent's policy only.
sed "s|@SOCKET@|$TEST_DIR/cbus|" "$GPUPASS_SOURCE_ROOT/tests/integration/open-bus.conf.in" >"$TEST_DIR/cbus.conf"
dbus-daemon --config-file="$TEST_DIR/cbus.conf" --nofork --nopidfile 2>>"$TEST_DIR/cbus.log" &
PIDS+=("$!")
CBUS=unix:path=$TEST_DIR/cbus
wait_until 5 "the aggregator's bus socket" test -S "$TEST_DIR/cbus" || true
mkdir -p "$TEST_DIR/agg/etc" "$TEST_DIR/agg/state"
printf '[Cluster]\nShutdownTimeoutSec=10\n\n[Host guest]\nAddress=%s\nRuntime=libvirt\nLibvirtUri=qemu:///system\n' \
        "$DBUS_SYSTEM_BUS_ADDRESS" >"$TEST_DIR/agg/etc/clusterd.conf"
DBUS_SYSTEM_BUS_ADDRESS=$CBUS CONFIGURATION_DIRECTORY="$TEST_DIR/agg/etc" STATE_DIRECTORY="$TEST_DIR/agg/state" \
        "$BUILD/agent/cluster/gpupass-clusterd" 2>>"$TEST_DIR/agg.log" &
PIDS+=("$!")
agg() { busctl --address="$CBUS" --timeout=300 call org.gpupass.cluster1 /org/gpupass/cluster1 org.gpupass.cluster1.Manager "$@"; }
guest_up_with_libvirt() {
        grep -q "libvirt at qemu:///system (host guest) is connected" "$TEST_DIR/agg.log" 2>/dev/null &&
                [[ "$(agg ListHosts 2>/dev/null)" == *'"guest"'*'"up"'* ]]
}
wait_until 120 "the aggregator to see host guest up, its libvirt connected" guest_up_with_libvirt || true
assert_contains "$(agg ListHosts 2>&1)" '"guest"' "gpupass-clusterd sees this host's agent"
# (set -e: a failed call is caught by the checks below, not by ending the scenario)
c=$(agg CreateVm sut vm-c 1 64 | cut -d'"' -f2) || true
agg SetVmGpus ss vm-c "=guest/$A" >/dev/null || true
agg SetVmDomainTemplate ss vm-c "<domain type='qemu'><os><type arch='x86_64' machine='q35'>hvm</type></os></domain>" || true
out=$(agg PowerOn s vm-c 2>&1) || true
echo "# \$ PowerOn vm-c: $out"
assert_contains "$out" "\"guest\" 1 \"$A\"" "gpupass-clusterd powered vm-c on"
assert_eq running "$(virsh domstate vm-c 2>&1)" "libvirt runs vm-c's domain"
assert_eq "\"$c\"" "$(gpu_prop $A Owner)" "the card is claimed for vm-c"
out=$(virsh qemu-monitor-command vm-c --hmp 'info pci' 2>&1) || true
assert_contains "$(hostdev_entries "$out")" "PCI device $A_IDS" "vm-c's QEMU has the display device"
assert_contains "$(agg GetVmDomainXml s vm-c 2>&1)" "managed=\\\"no\\\"" "its domain has the card as a managed='no' hostdev"
out=$(agg PowerOff s vm-c 2>&1) && pass "gpupass-clusterd powered vm-c off" || fail "PowerOff vm-c: $out"
assert_contains "$(virsh domstate vm-c 2>&1)" "failed to get domain" "its domain is gone"
assert_eq '""' "$(gpu_prop $A Owner)" "and the card released"
grep -E "vm-c|libvirt|$c" "$TEST_DIR/agg.log" | sed 's/^/# clusterd: /' || true
if [ "$FAILURES" -ne 0 ]; then
        sed 's/^/# agg.log: /' "$TEST_DIR/agg.log" | tail -30
        sed 's/^/# libvirtd.log: /' "$TEST_DIR/libvirtd.log" | tail -40
        for f in /var/log/libvirt/qemu/vm-a.log /var/log/libvirt/qemu/vm-b.log; do
                sed "s|^|# $f: |" "$f" 2>/dev/null | tail -20
        done
fi
virsh list --all 2>&1 | sed 's/^/# /' || true
finish
