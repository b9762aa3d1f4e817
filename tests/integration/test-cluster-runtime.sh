#!/bin/bash
# The VM runtime over a simulated cluster: the host runs its VMs on libvirt's test driver (Runtime=libvirt).
# PowerOn starts the VM's domain, PowerOff stops it, a domain stopped from inside the host is seen as off
# with its claims released, a domain libvirt refuses leaves the VM off with libvirt's error and no claim,
# bad templates change nothing, and after an aggregator restart a running domain is adopted by UUID.
# What libvirt runs is asked from libvirt itself, through the aggregator's own connection (libvirt-inside.c).
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
source "$GPUPASS_SOURCE_ROOT/tests/integration/cluster-lib.sh"

CLUSTER_RUNTIME=libvirt
start_host alpha "$FIX/single.ini" # one M60 at 3b:00.0 with its HDMI audio at 3b:00.1
start_bus open
start_clusterd agg alpha
LOG=$TEST_DIR/agg.log
wait_host alpha && pass "alpha up" || fail "alpha: $(cluster ListHosts)"

inside() { libvirt_inside "$1" alpha "$2"; } # verb uuid -> libvirt's answer on the aggregator's connection to alpha
vm_path() { # uuid -> its object path (sd_bus_path_encode)
        python3 -c 'import sys; u = sys.argv[1]; print("/org/gpupass/cluster1/vm/" + "".join(
                c if c.isalnum() and c.isascii() and not (i == 0 and c.isdigit()) else "_%02x" % ord(c)
                for i, c in enumerate(u)))' "$1"
}
vm_prop() { # uuid property -> value as busctl prints it, without the type
        busctl --system get-property org.gpupass.cluster1 "$(vm_path "$1")" org.gpupass.cluster1.Vm "$2" | sed 's/^[a-z]* //'
}
wait_runtime() { # uuid state: the Vm object's RuntimeState, up to 10 s
        wait_until 10 "RuntimeState of $1 to be $2" output_is "\"$2\"" vm_prop "$1" RuntimeState
}
wait_released() { # uuid: neither GPU function claimed at alpha's agent (its own word), up to 10 s
        wait_until 10 "alpha's 0000:3b:00.0 to be released" output_is '""' host_owner alpha 0000:3b:00.0
}
xml_of() { cluster GetVmDomainXml s "$1"; }

u=$(cluster CreateVm sut web 2 1024 | cut -d'"' -f2)
cluster SetVmGpus ss web "1:NVIDIA Tesla M60" >/dev/null
assert_eq '"none"' "$(vm_prop "$u" RuntimeState)" "a VM never placed has no runtime state"

# PowerOn: claims, then the domain; libvirt itself says it runs, with the GPU and its companion.
busctl --system monitor --json=short org.gpupass.cluster1 >"$TEST_DIR/cmon.log" 2>&1 &
PIDS+=("$!")
sleep 0.3
assert_eq 'sas "alpha" 1 "0000:3b:00.0"' "$(cluster PowerOn s web 2>&1)" "web powered on on alpha"
assert_eq running "$(inside state "$u")" "libvirt runs web's domain"
wait_runtime "$u" running && pass "Vm.RuntimeState running" || fail "RuntimeState: $(vm_prop "$u" RuntimeState)"
pc_runtime() { # the RuntimeState values announced in PropertiesChanged of web's object, one per line
        python3 -c 'import json, sys
for line in open(sys.argv[1]):
    try: m = json.loads(line)
    except ValueError: continue
    if m.get("member") == "PropertiesChanged" and m.get("path") == sys.argv[2]:
        changed = m["payload"]["data"][1]
        if "RuntimeState" in changed: print(changed["RuntimeState"]["data"])' "$TEST_DIR/cmon.log" "$(vm_path "$u")"
}
wait_until 5 "PropertiesChanged with RuntimeState running" output_has running pc_runtime || true
assert_eq running "$(pc_runtime)" "PropertiesChanged announced RuntimeState running (emits-change says the truth)"
assert_contains "$(host_owner alpha 0000:3b:00.0)" "$u" "the agent holds the M60 for web"
xml=$(xml_of web)
assert_contains "$xml" "<uuid>$u</uuid>" "the domain has the VM's UUID"
assert_contains "$xml" "<vcpu>2</vcpu>" "and its vCPUs"
assert_contains "$xml" "managed=\\\"no\\\"" "its hostdevs are managed='no' (gpupassd binds them)"
assert_contains "$xml" "bus=\\\"0x3b\\\" slot=\\\"0x00\\\" function=\\\"0x1\\\"" "the HDMI audio companion goes with the GPU"
assert_contains "$(cluster ListVms)" "\"web\" 2 1024 \"1:NVIDIA Tesla M60\" \"\" \"on\" \"alpha\"" "ListVms: web on"

# PowerOff: ACPI shutdown (the test driver's guests obey at once), then the release.
cluster PowerOff s web
assert_eq none "$(inside state "$u")" "PowerOff stopped the domain (a transient domain is gone)"
assert_eq '""' "$(host_owner alpha 0000:3b:00.0)" "and released the M60 at the agent"
wait_runtime "$u" "shut off" && pass "Vm.RuntimeState shut off" || fail "RuntimeState: $(vm_prop "$u" RuntimeState)"
wait_until 5 "PropertiesChanged with RuntimeState shut off" output_has "shut off" pc_runtime || true
assert_eq "running
shut off" "$(pc_runtime)" "and then shut off"

# Stopped from inside the host (the guest shuts down; an operator destroys it): off, claims released.
for how in shutdown destroy; do
        cluster PowerOn s web >/dev/null
        assert_eq ok "$(inside "$how" "$u")" "web's domain stopped from inside ($how)"
        wait_vms "\"web\" 2 1024 \"1:NVIDIA Tesla M60\" \"\" \"off\"" && pass "web seen as off after $how" ||
                fail "after $how: $(cluster ListVms)"
        wait_released "$u" && pass "its claim released after $how" || fail "owner: $(host_owner alpha 0000:3b:00.0)"
done
wait_for_log "$LOG" "VM web: its domain on host alpha stopped (destroyed)" && pass "the log names libvirt's reason" ||
        fail "no stop reason in the log"

# Bad templates: InvalidArgument naming what is wrong, the registry unchanged.
before=$(xml_of web)
bad_template() { # xml what
        SENDARGS=(string:web "string:$1")
        cexpect org.gpupass.Error.InvalidArgument "$2" -- SetVmDomainTemplate ss web "$1"
        assert_eq "$before" "$(xml_of web)" "the registry keeps its domain after a refused template ($2)"
}
bad_template "<domain type='kvm'><name>x" "XML"
bad_template "<network><name>x</name></network>" "domain"
bad_template "<domain type='kvm'><uuid>7c9e6679-7425-40de-944b-e07fc1f90ae7</uuid></domain>" "7c9e6679-7425-40de-944b-e07fc1f90ae7"
bad_template "<domain type='kvm'><devices><hostdev mode='subsystem' type='pci' managed='no'><source><address domain='0x0000' bus='0x3b' slot='0x00' function='0x1'/></source></hostdev></devices></domain>" "0000:3b:00.1"

# A template libvirt refuses (two disks on one target): the VM stays off, libvirt's error named, no claim.
cluster SetVmDomainTemplate ss web "<domain type='test'><description>kept</description><os><type>hvm</type></os><devices>
<disk type='file' device='disk'><source file='/var/lib/a.img'/><target dev='vda' bus='virtio'/></disk>
<disk type='file' device='disk'><source file='/var/lib/b.img'/><target dev='vda' bus='virtio'/></disk></devices></domain>"
SENDARGS=(string:web)
cexpect org.gpupass.Error.RuntimeFailed "target 'vda' duplicated" -- PowerOn s web
assert_contains "$(cluster ListVms)" "\"web\" 2 1024 \"1:NVIDIA Tesla M60\" \"\" \"off\"" "web stays off"
assert_eq '""' "$(host_owner alpha 0000:3b:00.0)" "its claim was released"
assert_eq none "$(inside state "$u")" "no domain runs"

# A template libvirt takes (gpupassctl set-template from a file): everything else in it is kept.
cat >"$TEST_DIR/web.xml" <<'EOF'
<domain type='test'><description>kept</description><os><type>hvm</type></os><devices>
<disk type='file' device='disk'><source file='/var/lib/a.img'/><target dev='vda' bus='virtio'/></disk></devices></domain>
EOF
ctl set-template web "$TEST_DIR/web.xml" && pass "gpupassctl set-template" || fail "set-template"
out=$(ctl set-template web "$TEST_DIR/nonexistent.xml" 2>&1) && fail "set-template of a missing file succeeded" ||
        assert_contains "$out" "Failed to read $TEST_DIR/nonexistent.xml" "set-template names a file it cannot read"
ctl power-on web >/dev/null
assert_eq running "$(inside state "$u")" "web runs from its template"
assert_contains "$(ctl domain-xml web)" "<description>kept</description>" "gpupassctl domain-xml: the template's own elements are kept"
out=$(ctl --no-legend vms)
assert_contains "$out" "web              on    running  alpha" "gpupassctl vms shows the runtime state"
assert_contains "$(ctl show-vm web)" "Runtime: running" "gpupassctl show-vm too"
assert_contains "$(ctl --json=short vms)" '"RuntimeState":"running"' "and --json"

# An aggregator restart: a domain that runs is adopted by UUID (not started twice, the VM stays on).
running_xml=$(ctl domain-xml web)
stop_clusterd agg
printf '<node>\n%s\n</node>\n' "$running_xml" >"$TEST_DIR/alpha/libvirt.xml"
run_clusterd agg
wait_for_log "$LOG" "VM web: its domain runs on host alpha already, adopted" && pass "the running domain is adopted" ||
        fail "no adoption in the log"
wait_runtime "$u" running && pass "RuntimeState running after the restart" || fail "RuntimeState: $(vm_prop "$u" RuntimeState)"
assert_contains "$(cluster ListVms)" "\"web\" 2 1024 \"1:NVIDIA Tesla M60\" \"\" \"on\" \"alpha\"" "web still on"
# ... and one that does not run (it stopped while no aggregator watched) is started again: it is still wanted on.
stop_clusterd agg
printf '<node/>\n' >"$TEST_DIR/alpha/libvirt.xml"
run_clusterd agg
wait_runtime "$u" running && pass "a VM recorded on is started again after the restart" ||
        fail "RuntimeState: $(vm_prop "$u" RuntimeState); $(grep web "$LOG" | tail -3)"
assert_eq running "$(inside state "$u")" "libvirt runs it again"
ctl --no-block power-off web && pass "power-off --no-block returns" || fail "power-off --no-block"
wait_vms "\"web\" 2 1024 \"1:NVIDIA Tesla M60\" \"\" \"off\"" && pass "web goes off" || fail "after --no-block: $(cluster ListVms)"
assert_eq none "$(inside state "$u")" "PowerOff stopped the adopted domain"
wait_released "$u" && pass "and released its claim" || fail "owner: $(host_owner alpha 0000:3b:00.0)"
# A guest that ignores the ACPI shutdown: destroyed once ShutdownTimeoutSec (3 s here, set by a reload) has passed.
sed -i '/^\[Cluster\]/a ShutdownTimeoutSec=3' "$TEST_DIR/agg/etc/clusterd.conf"
kill -HUP "${CLUSTERD_PID[agg]}"
wait_for_log "$LOG" "Configuration reloaded" || fail "no reload in the log"
cluster PowerOn s web >/dev/null
assert_eq ok "$(inside deaf "$u")" "web's guest now ignores ACPI shutdown requests"
start=$(date +%s%N)
cluster PowerOff s web
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
assert_eq none "$(inside state "$u")" "PowerOff destroyed the domain that would not shut down"
if [ "$elapsed_ms" -ge 2900 ]; then pass "after the timeout (${elapsed_ms} ms)"; else fail "too early: ${elapsed_ms} ms"; fi
wait_for_log "$LOG" "did not shut down in time, destroying it" && pass "the log says so" || fail "no destroy in the log"
assert_eq '""' "$(host_owner alpha 0000:3b:00.0)" "then its claim was released"

# A guest that crashes: off by default (OnCrash=off), its claim released; with OnCrash=restart (a reload)
# started again on its host with its GPU.
cluster PowerOn s web >/dev/null
assert_eq ok "$(inside crash "$u")" "web's guest crashes"
wait_vms "\"web\" 2 1024 \"1:NVIDIA Tesla M60\" \"\" \"off\"" && pass "OnCrash=off: web is off" ||
        fail "after the crash: $(cluster ListVms)"
wait_released "$u" && pass "its claim released" || fail "owner: $(host_owner alpha 0000:3b:00.0)"
wait_for_log "$LOG" "VM web: its domain on host alpha stopped (crashed)" && pass "the log says it crashed" || fail "no crash in the log"
sed -i '/^\[Cluster\]/a OnCrash=restart' "$TEST_DIR/agg/etc/clusterd.conf"
kill -HUP "${CLUSTERD_PID[agg]}"
sleep 0.5
cluster PowerOn s web >/dev/null
assert_eq ok "$(inside crash "$u")" "web's guest crashes again"
wait_for_log "$LOG" "VM web: its domain does not run on host alpha; starting it again" &&
        pass "OnCrash=restart: its domain is started again" || fail "no restart in the log"
wait_until 10 "web's domain to run again" output_is running inside state "$u" || true
assert_eq running "$(inside state "$u")" "libvirt runs it again"
assert_contains "$(cluster ListVms)" "\"web\" 2 1024 \"1:NVIDIA Tesla M60\" \"\" \"on\" \"alpha\"" "web stays on"
assert_contains "$(host_owner alpha 0000:3b:00.0)" "$u" "with its claim"
cluster PowerOff s web

# A reload: alpha back to Runtime=none (claim and record only), then to libvirt again.
conf=$TEST_DIR/agg/etc/clusterd.conf
cp "$conf" "$conf.libvirt"
sed -i -e '/^Runtime=/d' -e '/^LibvirtUri=/d' "$conf"
kill -HUP "${CLUSTERD_PID[agg]}"
wait_runtime "$u" none && pass "reloaded with Runtime=none: RuntimeState none" || fail "RuntimeState: $(vm_prop "$u" RuntimeState)"
cp "$conf.libvirt" "$conf"
kill -HUP "${CLUSTERD_PID[agg]}"
wait_runtime "$u" "shut off" && pass "and with Runtime=libvirt again: shut off" || fail "RuntimeState: $(vm_prop "$u" RuntimeState)"
out=$(ctl --no-block power-off nosuch 2>&1) && fail "--no-block power-off of an unknown VM succeeded" ||
        assert_contains "$out" "(org.gpupass.Error.NotFound)" "--no-block still reports a refusal made at once"
out=$(ctl --no-block vms 2>&1) && fail "--no-block vms accepted" ||
        assert_contains "$out" "--no-block applies to power-on, power-off and host-maintenance, not vms" "--no-block only where it means something"

finish
