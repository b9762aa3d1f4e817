#!/bin/bash
# gpupassctl against real daemons: two simulated hosts (alpha, beta), each agent on its own bus, and
# gpupass-clusterd on a third. Every verb, tables and --no-legend, --json (parsed by python3 and its
# values checked), -H over an "ssh" that runs systemd-stdio-bridge into the host's bus, --cluster and
# $GPUPASS_CLUSTER_ADDRESS, exit codes 0/1/2, error names, --help per verb, and the bash completion.
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
source "$GPUPASS_SOURCE_ROOT/tests/integration/cluster-lib.sh"
# json EXPR: evaluates the Python expression EXPR on the JSON document read from stdin (as d); fails on invalid JSON.
json() { python3 -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }
# expect RC PART WHAT -- ARGS...: gpupassctl ARGS exits RC and prints PART (stdout or stderr).
expect() {
        local want=$1 part=$2 what=$3 rc=0 out; shift 4
        out=$(ctl "$@" 2>&1) || rc=$?
        assert_eq "$want" "$rc" "$what: exit $want"
        assert_contains "$out" "$part" "$what: says '$part'"
}

start_host alpha "$FIX/multi-gpu.ini"
start_host beta "$FIX/single.ini"

# -H HOST: sd-bus runs "ssh -xT -- HOST systemd-stdio-bridge"; this ssh bridges to the simulated host's bus.
mkdir -p "$TEST_DIR/bin"
cat >"$TEST_DIR/bin/ssh" <<EOS
#!/bin/bash
while [ "\$1" != "--" ]; do shift; done
echo "\$2" >>"$TEST_DIR/ssh.log"
exec systemd-stdio-bridge --bus-path="unix:path=$TEST_DIR/\$2/bus"
EOS
chmod +x "$TEST_DIR/bin/ssh"
export PATH="$TEST_DIR/bin:$PATH"

start_bus open
CLUSTER_ADDRESS=$DBUS_SYSTEM_BUS_ADDRESS
start_clusterd agg alpha beta
wait_host alpha && wait_host beta || fail "alpha and beta not up: $(cluster ListHosts)"

# --- usage: exit 2, naming what was wrong, before anything is called ---
expect 2 "Unknown command 'frobnicate'" "unknown command" -- frobnicate
expect 2 "show takes more arguments; usage: gpupassctl show ADDRESS" "missing argument" -- show
expect 2 "power-on takes fewer arguments" "extra argument" -- power-on a b
expect 2 "--json takes pretty, short or off, not 'yaml'" "bad --json" -- --json=yaml hosts
expect 2 "--memory takes a size" "bad --memory" -- create-vm x --vcpus=1 --memory=1.5G
expect 2 "not '8GB'" "decimal units refused" -- create-vm x --vcpus=1 --memory=8GB
expect 2 "--vcpus takes a positive number, not '0'" "zero vCPUs" -- create-vm x --vcpus=0 --memory=1G
expect 2 "create-vm needs --vcpus=N and --memory=SIZE" "create-vm without resources" -- create-vm x
expect 2 "--vcpus and --memory apply to create-vm and set-resources, not list" "resources on list" -- list --vcpus=2
expect 2 "use --cluster=ssh:alpha" "-H on a cluster verb" -- -H alpha vms
expect 2 "use -H HOST" "--cluster on an agent verb" -- --cluster="$CLUSTER_ADDRESS" list
expect 2 "unrecognized option '--bogus'" "unknown option" -- --bogus
expect 2 "maintenance takes 'on' or 'off', not 'maybe'" "maintenance maybe" -- -H alpha maintenance maybe
expect 2 "host-maintenance takes 'on' or 'off' after the host, not 'x'" "host-maintenance checked before connecting" -- --cluster=unix:path=/nonexistent host-maintenance alpha x
expect 2 "allow-user: 'nobody' is not a numeric user ID" "allow-user with a user name" -- -H beta allow-user 3b:00.0 "$VM1" nobody

# --- --help: global, and for every verb ---
out=$(ctl --help)
assert_contains "$out" "Exit status: 0 success; 1 the daemon refused" "--help documents the exit codes"
verbs=$(echo "$out" | awk '/^Host commands/,/^Options:/' | awk '/^  [a-z]/ { print $1 }')
assert_eq 29 "$(echo "$verbs" | wc -l)" "--help lists the 29 commands"
bad=""
for v in $verbs; do
        o=$(ctl "$v" --help) || bad+=" $v(rc)"
        [[ "$o" == "gpupassctl [OPTIONS...] $v"* && "$o" == *"Exit status:"* ]] || bad+=" $v"
done
assert_eq "" "$bad" "VERB --help works for every command"
assert_contains "$(ctl create-vm --help)" "8G = 8192 MiB" "create-vm --help explains sizes"
assert_contains "$(ctl --version)" "gpupassctl " "--version"
assert_contains "$(ctl help-me --help 2>&1 || true)" "Unknown command 'help-me'" "--help of an unknown command"

# --- agent verbs over -H (ssh) ---
out=$(ctl -H alpha list)
assert_contains "$out" "ADDRESS       MODEL" "list: the header"
assert_contains "$out" "0000:86:00.0  NVIDIA Tesla M60.compute" "list -H alpha: alpha's GPUs"
assert_contains "$out" "6 GPUs listed." "list: the legend"
assert_contains "$(cat "$TEST_DIR/ssh.log")" "alpha" "-H went through ssh to alpha"
out=$(ctl -H alpha --no-legend list)
assert_not_contains "$out" "ADDRESS" "--no-legend: no header"
assert_not_contains "$out" "listed" "--no-legend: no footer"
assert_eq 6 "$(echo "$out" | wc -l)" "--no-legend: one line per GPU"
out=$(ctl -H beta list --json=short)
assert_eq 1 "$(echo "$out" | wc -l)" "--json=short is one line"
assert_eq "1 0000:3b:00.0 ['0000:3b:00.1'] 12 False" \
        "$(echo "$out" | json '" ".join(str(x) for x in (len(d), d[0]["Address"], d[0]["Companions"], d[0]["IommuGroup"], d[0]["BootVga"]))')" \
        "list --json: beta's GPU, its companion and group"
assert_eq 1 "$(ctl -H beta -j list | wc -l)" "-j: short JSON when stdout is not a terminal"
out=$(ctl -H alpha list --json)
[ "$(echo "$out" | wc -l)" -gt 6 ] && pass "--json alone is pretty" || fail "--json alone: $out"
assert_eq "6 unavailable -1" "$(echo "$out" | json '" ".join(str(x) for x in (len(d), [g for g in d if g["Address"] == "0000:d8:00.0"][0]["State"], [g for g in d if g["Address"] == "0000:d8:00.0"][0]["IommuGroup"]))')" \
        "list --json: the GPU without IOMMU group"
out=$(ctl -H alpha status --json=short)
assert_eq "$(nproc) True False 6" "$(echo "$out" | json '" ".join(str(x) for x in (d["CpuCount"], d["IommuEnabled"], d["Maintenance"], len(d["Gpus"])))')" \
        "status --json: CPUs, IOMMU, maintenance, GPUs"
out=$(ctl -H alpha status)
assert_contains "$out" "       Hostname: " "status: the host"
assert_contains "$out" "6 GPUs listed." "status: and its GPUs"
out=$(ctl -H beta show 3b:00.0)
assert_contains "$out" "VendorId: 0x10de" "show: vendor in hex"
assert_contains "$out" "Companions: 0000:3b:00.1" "show: companions"
out=$(ctl -H beta show 0000:3b:00.0 --json=pretty)
assert_eq "0000:3b:00.0 4318 ['0000:3b:00.1'] host NVIDIA Tesla M60" \
        "$(echo "$out" | json '" ".join(str(x) for x in (d["Address"], d["VendorId"], d["Companions"], d["State"], d["Model"]))')" \
        "show --json: properties with their types"
expect 1 "(org.gpupass.Error.InvalidArgument)" "show of a malformed address" -- -H beta show 3b:00
expect 1 "(org.gpupass.Error.NotFound)" "show of an address without GPU" -- -H beta show 3c:00.0

out=$(ctl -H beta claim 3b:00.0 "$VM1" 2>&1) && pass "claim" || fail "claim: $out"
assert_eq "claimed $VM1 vfio-pci" "$(ctl -H beta show 3b:00.0 --json=short | json 'd["State"] + " " + d["Owner"] + " " + d["Driver"]')" \
        "claim: the group is the VM's, on vfio-pci"
expect 1 "(org.gpupass.Error.Busy)" "claim by a second VM" -- -H beta claim 3b:00.0 "$VM2"
expect 1 "(org.gpupass.Error.VfioUnavailable)" "allow-user without /dev/vfio (the simulated host)" -- -H beta allow-user 3b:00.0 "$VM1" 1000
expect 1 "(org.gpupass.Error.NotOwner)" "release by another VM" -- -H beta release 3b:00.0 "$VM2"
out=$(ctl -H beta release 3b:00.0 "$VM1" 2>&1) && pass "release" || fail "release: $out"
expect 1 "(org.gpupass.Error.BootDevice)" "prepare of the boot VGA" -- -H alpha prepare 03:00.0
out=$(ctl -H beta return 3b:00.0 2>&1) && pass "return" || fail "return: $out"
assert_eq "host nouveau" "$(ctl -H beta show 3b:00.0 --json=short | json 'd["State"] + " " + d["Driver"]')" "return: back on nouveau"
out=$(ctl -H beta prepare 3b:00.0 2>&1) && pass "prepare" || fail "prepare: $out"
assert_eq "vfio" "$(ctl -H beta show 3b:00.0 --json=short | json 'd["State"]')" "prepare: on vfio-pci"
ctl -H beta return 3b:00.0
out=$(ctl -H alpha rescan 2>&1) && pass "rescan" || fail "rescan: $out"
ctl -H alpha maintenance on
assert_eq True "$(ctl -H alpha status --json=short | json 'd["Maintenance"]')" "maintenance on"
expect 1 "(org.gpupass.Error.InMaintenance)" "prepare in maintenance" -- -H alpha prepare 3c:00.0
ctl -H alpha maintenance off
assert_eq False "$(ctl -H alpha status --json=short | json 'd["Maintenance"]')" "maintenance off"
# Without -H: the local system bus (here: alpha's).
assert_contains "$(DBUS_SYSTEM_BUS_ADDRESS="unix:path=$TEST_DIR/alpha/bus" ctl list)" "6 GPUs listed." "list on the local bus"
expect 1 "(Is nosuchhost reachable with ssh" "-H to a host that cannot be reached" -- -H nosuchhost list
assert_contains "$(DBUS_SYSTEM_BUS_ADDRESS="unix:path=$TEST_DIR/alpha/bus" ctl)" "6 GPUs listed." "no command: list"

# --- cluster views and where the aggregator is ---
out=$(ctl hosts)
assert_contains "$out" "HOST             STATE" "hosts: the header"
assert_contains "$out" "2 hosts listed." "hosts: the legend"
assert_eq "alpha up $(nproc) 6;beta up $(nproc) 1" \
        "$(ctl hosts --json=short | json '";".join(" ".join(str(x) for x in (h["Name"], h["State"], h["CpuCount"], h["GpuCount"])) for h in d)')" \
        "hosts --json: names, states, CPUs, GPUs"
out=$(env -u DBUS_SYSTEM_BUS_ADDRESS "$GPUPASSCTL" --cluster="$CLUSTER_ADDRESS" --no-legend hosts)
assert_contains "$out" "alpha" "--cluster=ADDRESS reaches the aggregator"
out=$(env -u DBUS_SYSTEM_BUS_ADDRESS GPUPASS_CLUSTER_ADDRESS="$CLUSTER_ADDRESS" "$GPUPASSCTL" --no-legend hosts)
assert_contains "$out" "beta" "\$GPUPASS_CLUSTER_ADDRESS reaches the aggregator"
expect 1 "Failed to connect to the aggregator's bus unix:path=$TEST_DIR/none" "--cluster to no bus" -- --cluster="unix:path=$TEST_DIR/none" hosts
assert_eq "7 NVIDIA Tesla M60.compute ['0000:3b:00.1']" \
        "$(ctl gpus --json=short | json '" ".join(str(x) for x in (len(d), [g for g in d if g["Host"] == "alpha" and g["Address"] == "0000:86:00.0"][0]["Model"], [g for g in d if g["Host"] == "beta"][0]["Companions"]))')" \
        "gpus --json: the cluster's GPUs with models and companions"
assert_contains "$(ctl gpus)" "7 GPUs listed." "gpus: the legend"

# --- the registry ---
web=$(ctl create-vm web --vcpus=1 --memory=4G)
[[ "$web" =~ ^[0-9a-f-]{36}$ ]] && pass "create-vm prints the UUID" || fail "create-vm: $web"
assert_eq "4096 1 off" "$(ctl show-vm web --json=short | json '" ".join(str(x) for x in (d["MemoryMiB"], d["Vcpus"], d["Power"]))')" \
        "create-vm: 4G is 4096 MiB"
plain=$(ctl create-vm plain --vcpus 1 --memory 512 --json=short | json 'd["Uuid"]')
[[ "$plain" =~ ^[0-9a-f-]{36}$ && "$plain" != "$web" ]] && pass "create-vm --json: a UUID of its own" || fail "create-vm --json: $plain"
expect 1 "(org.gpupass.Error.InvalidArgument)" "create-vm of a name that exists" -- create-vm web --vcpus=1 --memory=1G
expect 1 "(org.gpupass.Error.InvalidArgument)" "create-vm with too many vCPUs" -- create-vm big --vcpus=5000 --memory=1G
ctl set-gpus web "=alpha/0000:3b:00.0"
ctl set-resources web --vcpus=2
assert_eq "2 4096 =alpha/0000:3b:00.0" "$(ctl show-vm "$web" --json=short | json '" ".join(str(x) for x in (d["Vcpus"], d["MemoryMiB"], d["GpuRequests"]))')" \
        "set-gpus, set-resources --vcpus (memory stays), show-vm by UUID"
ctl set-resources web --memory=2GiB
assert_eq "2 2048" "$(ctl show-vm web --json=short | json 'str(d["Vcpus"]) + " " + str(d["MemoryMiB"])')" "set-resources --memory (vCPUs stay)"
expect 2 "set-resources needs --vcpus=N, --memory=SIZE or both" "set-resources without values" -- set-resources web
ctl set-affinity web alpha beta
assert_eq "['alpha', 'beta']" "$(ctl show-vm web --json=short | json 'd["Affinity"]')" "set-affinity: the hosts, as a JSON array"
expect 1 "(org.gpupass.Error." "set-affinity to an unknown host" -- set-affinity web nosuchhost
ctl set-affinity web
assert_eq "[]" "$(ctl show-vm web --json=short | json 'd["Affinity"]')" "set-affinity without hosts: any host"
assert_contains "$(ctl show-vm web)" "Affinity: any host" "show-vm: the table"
expect 1 "(org.gpupass.Error.NotFound)" "show-vm of an unknown VM" -- show-vm nosuchvm
out=$(ctl vms)
assert_contains "$out" "web              off" "vms: the table"
assert_contains "$out" "2 VMs listed." "vms: the legend"
ctl create-vm wide --vcpus=1 --memory=1G >/dev/null
ctl set-gpus wide "2:NVIDIA Tesla M60|NVIDIA Tesla M60.compute;=beta/0000:3b:00.0"
out=$(ctl vms)
header=$(echo "$out" | head -1); row=$(echo "$out" | grep '^wide ')
prefix=${header%%FLAGS*}
assert_eq "-" "${row:${#prefix}}" "vms: a GPU request wider than its column moves FLAGS for every row, header included"
ctl delete-vm wide

# --- power and the pass-through limitations ---
ctl set-resources web --vcpus=$(($(nproc) + 1))
expect 1 "alpha: needs $(($(nproc) + 1)) vCPUs" "power-on when no host fits: each host's reason" -- power-on web
expect 1 "(org.gpupass.Error.NoHostAvailable)" "power-on when no host fits: the error" -- power-on web
ctl set-resources web --vcpus=1
out=$(ctl power-on web)
assert_contains "$out" "web is on, on host alpha with GPUs 0000:3b:00.0" "power-on: host and GPU"
expect 1 "(org.gpupass.Error.NotSupportedWithGpu)" "migrate of a running VM with GPUs" -- migrate web
expect 1 "(org.gpupass.Error.NotSupportedWithGpu)" "pause" -- pause web
expect 1 "(org.gpupass.Error.NotSupportedWithGpu)" "resume" -- resume web
expect 1 "(org.gpupass.Error.NotSupportedWithGpu)" "console of a running VM with GPUs" -- console web
expect 1 "(org.gpupass.Error.VmNotOff)" "set-gpus of a running VM" -- set-gpus web "1:NVIDIA Tesla M60"
expect 1 "(org.gpupass.Error.NotSupportedWithGpu)" "memory change of a running VM with GPUs" -- set-resources web --memory=8G
out=$(ctl hostdev web)
assert_contains "$out" "-device vfio-pci,host=0000:3b:00.0" "hostdev: QEMU argument for the GPU"
assert_contains "$out" "-device vfio-pci,host=0000:3b:00.1" "hostdev: and for its companion"
assert_contains "$out" "<address domain='0x0000' bus='0x3b' slot='0x00' function='0x1'/>" "hostdev: libvirt element"
out=$(ctl hostdev web --json=short)
assert_eq "alpha ['0000:3b:00.0', '0000:3b:00.1'] -device vfio-pci,host=0000:3b:00.1 2" \
        "$(echo "$out" | json '" ".join(str(x) for x in (d["Host"], d["Functions"], d["QemuArguments"][2], d["QemuArguments"][3], len(d["LibvirtHostdevs"])))')" \
        "hostdev --json: functions, QEMU arguments, libvirt elements"
assert_contains "$(echo "$out" | json 'd["LibvirtHostdevs"][0]')" "<hostdev mode='subsystem' type='pci' managed='no'>" \
        "hostdev --json: the XML survives escaping"
expect 1 "VM plain is off" "hostdev of a VM that is off" -- hostdev plain
out=$(ctl power-on plain --json=short)
assert_eq "[]" "$(echo "$out" | json 'd["Gpus"]')" "power-on --json of a VM without GPUs"
host=$(echo "$out" | json 'd["Host"]')
assert_contains "$(ctl console plain)" "The console of plain is on host $host" "console of a VM without GPUs"
assert_eq "$host" "$(ctl console plain --json=short | json 'd["Host"]')" "console --json"
expect 1 "(org.freedesktop.DBus.Error.NotSupported)" "migrate of a VM without GPUs: not gpupass's job" -- migrate plain
expect 1 "(org.freedesktop.DBus.Error.NotSupported)" "pause of a VM without GPUs" -- pause plain
expect 1 "(org.gpupass.Error.NotFound)" "power-on of an unknown VM" -- power-on nosuchvm

# --- host maintenance ---
out=$(ctl host-maintenance alpha on)
assert_contains "$out" "alpha is in maintenance; powered off: $web" "host-maintenance on: the VMs it powered off"
assert_contains "$(ctl show-vm web --json=short | json 'd["Flags"]')" "restart:alpha" "the VM is flagged for restart"
assert_contains "$(ctl --no-legend hosts)" "alpha            maintenance" "hosts: alpha in maintenance"
assert_eq "alpha False ['$web']" "$(ctl host-maintenance alpha off --json=short | json 'd["Host"] + " " + str(d["Maintenance"]) + " " + str(d["PoweredOn"])')" \
        "host-maintenance off --json: web is on again"
assert_eq "on alpha" "$(ctl show-vm web --json=short | json 'd["Power"] + " " + d["Host"]')" "web runs on alpha again"
expect 2 "host-maintenance takes 'on' or 'off' after the host, not 'soon'" "host-maintenance soon" -- host-maintenance alpha soon
expect 1 "(org.gpupass.Error.NotFound)" "host-maintenance of an unknown host" -- host-maintenance nosuchhost on

# --- power-off, delete ---
expect 1 "(org.gpupass.Error.VmNotOff)" "delete-vm of a running VM" -- delete-vm web
out=$(ctl power-off web 2>&1) && pass "power-off" || fail "power-off: $out"
assert_eq "vfio " "$(ctl gpus --json=short | json '" ".join([(g["State"], g["Owner"]) for g in d if g["Host"] == "alpha" and g["Address"] == "0000:3b:00.0"][0])')" \
        "power-off: the GPU is free again (still on vfio-pci, no owner)"
ctl power-off plain
ctl set-gpus web ""
assert_eq "" "$(ctl show-vm web --json=short | json 'd["GpuRequests"]')" "set-gpus VM '': no GPU requests"
ctl delete-vm web
ctl delete-vm plain
assert_eq "[]" "$(ctl vms --json=short)" "delete-vm: the registry is empty"
assert_eq "0 VMs listed." "$(ctl vms | tail -1)" "vms: an empty table"

# --- bash completion ---
if [ -f /usr/share/bash-completion/bash_completion ]; then
        # complete WORDS...: the completions of the last word, from the installed-to-be file; WORDS as bash
        # splits the line ("--json=s" is --json = s), the line itself rebuilt from them.
        complete_words() {
                bash -c 'source /usr/share/bash-completion/bash_completion
                        source "$GPUPASS_SOURCE_ROOT/shell-completion/bash/gpupassctl"
                        COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_LINE=${COMP_LINE// = /=}
                        COMP_POINT=${#COMP_LINE}
                        _gpupassctl; printf "%s\n" "${COMPREPLY[@]}" | sort | tr "\n" " "' complete "$@"
        }
        assert_eq "pause power-off power-on prepare " "$(complete_words "$GPUPASSCTL" p)" "completion: commands"
        assert_eq "host-maintenance hostdev hosts " "$(complete_words "$GPUPASSCTL" --no-legend hos)" "completion: commands after an option"
        assert_eq "--json " "$(complete_words "$GPUPASSCTL" --js)" "completion: options"
        # bash splits --json=s at the '=' (COMP_WORDBREAKS); _init_completion -s joins it again.
        assert_eq "short " "$(complete_words "$GPUPASSCTL" --json = s)" "completion: --json values"
        assert_eq "off pretty short " "$(complete_words "$GPUPASSCTL" --json = "")" "completion: every --json value"
        assert_eq "off on " "$(complete_words "$GPUPASSCTL" host-maintenance alpha o)" "completion: on|off"
        assert_eq "alpha beta " "$(complete_words "$GPUPASSCTL" host-maintenance "")" "completion: host names from the aggregator"
        ctl create-vm compl --vcpus=1 --memory=1G >/dev/null
        assert_eq "compl " "$(complete_words "$GPUPASSCTL" power-on c)" "completion: VM names from the aggregator"
        assert_eq "beta " "$(complete_words "$GPUPASSCTL" set-affinity compl alpha b)" "completion: hosts after the VM"
        assert_eq "0000:3b:00.0 " "$(complete_words "$GPUPASSCTL" -H beta show "")" "completion: GPU addresses of the -H host"
        ctl delete-vm compl
else
        fail "bash-completion is not installed (.ci/packages lists it)"
fi

finish
