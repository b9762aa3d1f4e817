#!/bin/bash
# gpupass-libvirt-hook against gpupassd over the simulated host, run the way libvirtd runs it: argv
# `DOMAIN OP SUBOP -`, the domain XML on stdin, the agent on the system bus (here the private one).
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
HOOK=${GPUPASS_LIBVIRT_HOOK:?}
G=org.gpupass.agent1.Gpu
M=/org/gpupass/agent1
start_bus policy
start_agent

# domain_xml NAME UUID HOSTDEV...: a domain as libvirt formats it; a HOSTDEV is ADDRESS[:managed] (managed='no'
# unless :yes, or :absent for no attribute), or usb for a USB hostdev.
domain_xml() {
        local name=$1 uuid=$2 h a managed
        shift 2
        echo "<domain type='kvm'><name>$name</name><uuid>$uuid</uuid><memory unit='KiB'>65536</memory><devices>"
        for h in "$@"; do
                if [ "$h" == usb ]; then
                        echo "<hostdev mode='subsystem' type='usb' managed='no'><source><vendor id='0x1d6b'/><product id='0x0002'/></source></hostdev>"
                        continue
                fi
                a=${h%%/*} managed=no
                [ "$a" == "$h" ] || managed=${h#*/}
                IFS=':.' read -r d b s f <<<"$a"
                if [ "$managed" == absent ]; then echo "<hostdev mode='subsystem' type='pci'>"
                else echo "<hostdev mode='subsystem' type='pci' managed='$managed'>"; fi
                echo "<source><address domain='0x$d' bus='0x$b' slot='0x$s' function='0x$f'/></source></hostdev>"
        done
        echo "</devices></domain>"
}

# hook NAME OP SUBOP < XML: runs the hook; HOOK_RC, HOOK_OUT (stdout), HOOK_ERR (stderr), HOOK_SECONDS.
hook() {
        local start=$SECONDS
        HOOK_RC=0
        "$HOOK" "$1" "$2" "$3" - >"$TEST_DIR/hook.out" 2>"$TEST_DIR/hook.err" || HOOK_RC=$?
        HOOK_OUT=$(cat "$TEST_DIR/hook.out") HOOK_ERR=$(cat "$TEST_DIR/hook.err") HOOK_SECONDS=$((SECONDS - start))
        sed 's/^/# hook stdout: /' "$TEST_DIR/hook.out"
        sed 's/^/# hook stderr: /' "$TEST_DIR/hook.err"
}

# expect_hook_refusal WHAT WORDS...: the last run exited 1 and its stderr holds every WORDS.
expect_hook_refusal() {
        local what=$1 w
        shift
        assert_eq 1 "$HOOK_RC" "$what: the hook exits 1"
        for w in "$@"; do assert_contains "$HOOK_ERR" "$w" "$what: stderr says '$w'"; done
}

owner() { gpu_prop "$1" Owner; }

A=0000:3b:00.0 A_AUDIO=0000:3b:00.1 B=0000:3c:00.0 NIC=0000:5e:01.0 BOOT=0000:03:00.0

# prepare begin claims every managed='no' hostdev gpupassd manages, once per group (GPU and companion are
# one claim); the NIC (not gpupass's), a USB device and an address no device has are left alone.
domain_xml vm-a $VM1 $A $A_AUDIO $NIC usb 0000:99:00.0 >"$TEST_DIR/a.xml"
hook vm-a prepare begin <"$TEST_DIR/a.xml"
assert_eq 0 "$HOOK_RC" "prepare begin of vm-a exits 0"
assert_eq "\"$VM1\"" "$(owner $A)" "the group of $A is claimed for vm-a's UUID"
assert_eq '"claimed"' "$(gpu_prop $A State)" "State claimed"
assert_eq "vfio-pci vfio-pci" "$(sysfs_driver $A) $(sysfs_driver $A_AUDIO)" "the claim bound the GPU and its companion to vfio-pci"
assert_eq "igb" "$(sysfs_driver $NIC)" "the NIC the domain also names is left on igb"
assert_eq 1 "$(grep -c 'claimed ' "$TEST_DIR/hook.out")" "one Claim for the group, not one per hostdev"
assert_contains "$HOOK_OUT" "claimed $A (IOMMU group 12, GPU $A) for domain 'vm-a' ($VM1)" "stdout names the claim"

# A second domain wanting the same card (its audio function alone is enough) is refused with the agent's Busy.
domain_xml vm-b $VM2 $A_AUDIO >"$TEST_DIR/b.xml"
hook vm-b prepare begin <"$TEST_DIR/b.xml"
expect_hook_refusal "vm-b wanting vm-a's card" "domain 'vm-b' ($VM2) cannot have $A_AUDIO (IOMMU group 12, GPU $A)" \
        "org.gpupass.Error.Busy" "is claimed by VM $VM1"
assert_eq "\"$VM1\"" "$(owner $A)" "vm-a keeps the claim"

# libvirt runs release end after the failed start: fine, and vm-a's claim is not touched.
hook vm-b release end <"$TEST_DIR/b.xml"
assert_eq 0 "$HOOK_RC" "release end after a refused prepare exits 0"
assert_eq "\"$VM1\"" "$(owner $A)" "and leaves vm-a's claim alone"

# libvirtd restarted while vm-a runs: it runs "reconnect begin" (a failure there would make libvirt kill the
# domain) and the other calls; the hook answers 0 and the claim stays, as the domain still uses the card.
for call in "reconnect begin" "start begin" "started begin" "stopped end" "attach begin" "migrate begin"; do
        hook vm-a $call <"$TEST_DIR/a.xml"
        assert_eq 0 "$HOOK_RC" "$call of vm-a exits 0"
done
assert_eq "\"$VM1\"" "$(owner $A)" "vm-a's claim stays through the calls that are not prepare or release"
assert_eq "" "$HOOK_OUT$HOOK_ERR" "and the hook says nothing for them"

# A refusal after a first claim gives that claim back: nothing is left half-claimed.
domain_xml vm-b $VM2 $B $A >"$TEST_DIR/b2.xml"
hook vm-b prepare begin <"$TEST_DIR/b2.xml"
expect_hook_refusal "vm-b wanting a free card and vm-a's" "org.gpupass.Error.Busy"
assert_contains "$HOOK_OUT" "released $B again" "the free card it had claimed first is released again"
assert_eq '""' "$(owner $B)" "$B has no owner after the refusal"

# release end releases; a second one (libvirt may run it again) is fine.
hook vm-a release end <"$TEST_DIR/a.xml"
assert_eq 0 "$HOOK_RC" "release end of vm-a exits 0"
assert_eq '""' "$(owner $A)" "the group of $A is released"
assert_eq '"vfio"' "$(gpu_prop $A State)" "and stays on vfio-pci, ready for the next VM"
hook vm-a release end <"$TEST_DIR/a.xml"
assert_eq 0 "$HOOK_RC" "a second release end exits 0 (idempotent)"

# A claim the domain already holds (the aggregator claims before it starts the domain) is kept, also when a
# later group is refused: only what this run claimed is rolled back.
busctl --system call org.gpupass.agent1 "$(gpu_path $B)" $G Claim s $VM1
busctl --system call org.gpupass.agent1 "$(gpu_path $A)" $G Claim s $VM2
domain_xml vm-a $VM1 $B $A >"$TEST_DIR/a2.xml"
hook vm-a prepare begin <"$TEST_DIR/a2.xml"
expect_hook_refusal "vm-a wanting its own claim and vm-b's card" "org.gpupass.Error.Busy" "is claimed by VM $VM2"
assert_contains "$HOOK_OUT" "$B is already claimed for domain 'vm-a'" "the claim vm-a held is recognised"
assert_eq "\"$VM1\"" "$(owner $B)" "and vm-a still holds it after the refusal"
busctl --system call org.gpupass.agent1 "$(gpu_path $B)" $G Release s $VM1
busctl --system call org.gpupass.agent1 "$(gpu_path $A)" $G Release s $VM2

# The agent's other refusals come through the same way: the boot VGA device, maintenance.
domain_xml vm-a $VM1 $BOOT >"$TEST_DIR/boot.xml"
hook vm-a prepare begin <"$TEST_DIR/boot.xml"
expect_hook_refusal "the boot VGA device" "org.gpupass.Error.BootDevice" "$BOOT"
busctl --system call org.gpupass.agent1 $M org.gpupass.agent1.Manager SetMaintenance b true
hook vm-a prepare begin <"$TEST_DIR/a.xml"
expect_hook_refusal "a host in maintenance" "org.gpupass.Error.InMaintenance"
busctl --system call org.gpupass.agent1 $M org.gpupass.agent1.Manager SetMaintenance b false
assert_eq '""' "$(owner $A)" "nothing was claimed by the refused starts"

# managed='yes' on a GPU gpupassd manages: libvirt would rebind it past any claim; refused, nothing claimed.
# An absent managed attribute is libvirt's 'no': claimed.
domain_xml vm-a $VM1 $B "$A/yes" >"$TEST_DIR/managed.xml"
hook vm-a prepare begin <"$TEST_DIR/managed.xml"
expect_hook_refusal "a managed='yes' GPU" "$A (IOMMU group 12, GPU $A) has managed='yes'" "use managed='no'"
assert_eq '"" ""' "$(owner $A) $(owner $B)" "nothing claimed, the other GPU neither"
domain_xml vm-a $VM1 "$B/absent" "$NIC/yes" >"$TEST_DIR/absent.xml"
hook vm-a prepare begin <"$TEST_DIR/absent.xml"
assert_eq 0 "$HOOK_RC" "no managed attribute (libvirt's 'no') and a managed='yes' NIC: prepare exits 0"
assert_eq "\"$VM1\"" "$(owner $B)" "the GPU without the attribute is claimed"
hook vm-a release end <"$TEST_DIR/absent.xml"
assert_eq '""' "$(owner $B)" "and released"

# Bad input: clear errors, nothing claimed.
hook vm-a prepare begin <<<"name=vm-a"
expect_hook_refusal "text that is not XML" "the XML of domain vm-a on stdin is not usable: not well-formed XML: line 1"
hook vm-a prepare begin </dev/null
expect_hook_refusal "an empty stdin" "not well-formed XML"
hook vm-a prepare begin <<<"<network><name>n</name></network>"
expect_hook_refusal "another root element" "the root element is <network>, not <domain>"
hook vm-a prepare begin <<<"<domain><name>vm-a</name><devices/></domain>"
expect_hook_refusal "a domain without UUID" "has no <uuid>"
HOOK_RC=0; "$HOOK" >/dev/null 2>"$TEST_DIR/usage.err" || HOOK_RC=$?
assert_eq 2 "$HOOK_RC" "without arguments: usage, exit 2"

# Other calls do nothing, and a domain without PCI hostdevs never needs the agent: both exit 0 with gpupassd
# stopped. With it stopped, a domain with hostdevs is refused (gpupassd alone knows which are GPUs).
stop_agent
hook vm-a start begin <"$TEST_DIR/a.xml"
assert_eq 0 "$HOOK_RC" "start begin: nothing to do, exits 0 without the agent"
hook vm-a stopped end <"$TEST_DIR/a.xml"
assert_eq 0 "$HOOK_RC" "stopped end: likewise"
domain_xml plain $VM1 usb >"$TEST_DIR/plain.xml"
hook plain prepare begin <"$TEST_DIR/plain.xml"
assert_eq 0 "$HOOK_RC" "a domain without PCI hostdevs starts without the agent"
hook vm-a prepare begin <"$TEST_DIR/a.xml"
expect_hook_refusal "gpupassd not running" "domain 'vm-a' ($VM1) has PCI hostdevs, and gpupassd did not list its GPUs" \
        "org.freedesktop.DBus.Error.ServiceUnknown"

# A hung agent: the hook gives up within its 20 s bound and says so.
start_agent
kill -STOP "$AGENT_PID"
hook vm-a prepare begin <"$TEST_DIR/a.xml"
kill -CONT "$AGENT_PID"
expect_hook_refusal "a hung gpupassd" "did not list its GPUs within 20 s"
if [ "$HOOK_SECONDS" -le 40 ]; then pass "the hook gave up after ${HOOK_SECONDS} s (bound 20 s; 40 s allowed on a loaded machine)"; else fail "the hook took $HOOK_SECONDS s"; fi
assert_eq '""' "$(owner $A)" "nothing was claimed"
finish
