#!/bin/bash
# The aggregator's per-host and per-VM objects over a simulated cluster (alpha with six GPUs, beta with
# one, delta never reachable): the object tree, every property against ListHosts/ListVms/ListGpus, and
# the signals an operator's tools follow (InterfacesAdded/Removed, PropertiesChanged on each change).
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
source "$GPUPASS_SOURCE_ROOT/tests/integration/cluster-lib.sh"

hprop() { busctl --system get-property org.gpupass.cluster1 "$CM/host/$1" org.gpupass.cluster1.Host "$2"; }
vprop() { busctl --system get-property org.gpupass.cluster1 "$VMPATH" org.gpupass.cluster1.Vm "$1"; }
# The signals seen so far, one line each: "PC PATH Prop=value ...", "IA PATH IFACES", "IR PATH IFACES".
signals() {
        jq -r 'select(.type == "signal") |
                if .member == "PropertiesChanged" then
                        "PC \(.path) " + (.payload.data[1] | to_entries | map("\(.key)=\(.value.data | tostring)") | join(" "))
                elif .member == "InterfacesAdded" then "IA \(.payload.data[0]) " + (.payload.data[1] | keys | join(","))
                elif .member == "InterfacesRemoved" then "IR \(.payload.data[0]) " + (.payload.data[1] | join(","))
                else empty end' < <(grep '^{' "$TEST_DIR/cmon.log")
}
signal_seen() { # grep pattern: a signal so far matches
        signals | grep -q -- "$1"
}
wait_signal() { # grep pattern, up to 20 s
        wait_until 20 "a signal matching [$1]" signal_seen "$1"
}
expect_signal() { # pattern what
        if wait_signal "$1"; then pass "$2"; else fail "$2: no signal matching [$1] in: $(signals | tail -5)"; fi
}
path_encode() { # as sd_bus_path_encode: [A-Za-z0-9] kept (not a leading digit), all else _XX
        local s=$1 out="" i c
        for ((i = 0; i < ${#s}; i++)); do
                c=${s:i:1}
                if [[ "$c" =~ [A-Za-z] ]] || { [[ "$c" =~ [0-9] ]] && [ $i -gt 0 ]; }; then out+=$c
                else out+=$(printf '_%02x' "'$c"); fi
        done
        echo "$out"
}

start_host alpha "$FIX/multi-gpu.ini"
start_host beta "$FIX/single.ini"
start_bus open
# delta is configured but never started: no such bus.
start_clusterd agg alpha beta delta
wait_host alpha || true
wait_host beta || true
start_monitor cmon.log org.gpupass.cluster1 --system --json=short

# The tree: one object per configured host, reachable or not.
tree=$(busctl --system tree --list org.gpupass.cluster1)
for h in alpha beta delta; do
        assert_contains "$tree" "$CM/host/$h" "the tree has host $h"
done
out=$(busctl --system introspect org.gpupass.cluster1 $CM/host/alpha org.gpupass.cluster1.Host)
assert_contains "$(grep '^.Address ' <<<"$out")" "const" "Host.Address is const"
assert_contains "$(grep '^.FreeCpus ' <<<"$out")" "emits-change" "Host.FreeCpus emits change"
out=$(busctl --system call org.gpupass.cluster1 $CM/host/nosuch org.freedesktop.DBus.Properties GetAll s \
        org.gpupass.cluster1.Host 2>&1) && fail "a host not in the cluster has an object" ||
        pass "no object for a host not in the cluster"

# Every Host property against ListHosts (name, address, state, reason, CPUs, MiB, GPUs) and ListGpus.
hosts=$(cluster ListHosts)
gpus=$(cluster ListGpus)
for h in alpha beta delta; do
        entry=$(grep -o "\"$h\" \"unix:path=[^\"]*\" \"[a-z]*\" \"[^\"]*\" [0-9]* [0-9]* [0-9]*" <<<"$hosts")
        name=$(cut -d'"' -f2 <<<"$entry"); addr=$(cut -d'"' -f4 <<<"$entry"); state=$(cut -d'"' -f6 <<<"$entry")
        reason=$(cut -d'"' -f8 <<<"$entry"); nums=$(cut -d'"' -f9 <<<"$entry")
        read -r cpus mem ngpus <<<"$nums"
        assert_eq "s \"$name\"" "$(hprop $h Name)" "$h: Name as in ListHosts"
        assert_eq "s \"$addr\"" "$(hprop $h Address)" "$h: Address as in ListHosts"
        assert_eq "s \"$state\"" "$(hprop $h State)" "$h: State ($state) as in ListHosts"
        assert_eq "s \"$reason\"" "$(hprop $h UnreachableReason)" "$h: UnreachableReason as in ListHosts"
        assert_eq "u $cpus" "$(hprop $h CpuCount)" "$h: CpuCount as in ListHosts"
        assert_eq "t $mem" "$(hprop $h MemoryMiB)" "$h: MemoryMiB as in ListHosts"
        assert_eq "u $ngpus" "$(hprop $h GpuCount)" "$h: GpuCount as in ListHosts"
        assert_eq "u $cpus" "$(hprop $h FreeCpus)" "$h: all CPUs free with no VM on"
        assert_eq "t $mem" "$(hprop $h FreeMemoryMiB)" "$h: all memory free with no VM on"
        free=$(grep -o "\"$h\" \"[0-9a-f:.]*\" \"[^\"]*\" \"[a-z]*\" \"\(host\|vfio\)\"" <<<"$gpus" | wc -l || true)
        assert_eq "u $free" "$(hprop $h FreeGpuCount)" "$h: FreeGpuCount as the GPUs in state host or vfio in ListGpus"
        assert_eq "b false" "$(hprop $h Maintenance)" "$h: not in maintenance"
done
assert_eq 's "unreachable"' "$(hprop delta State)" "delta (no such bus) is unreachable"
assert_eq 'u 6' "$(hprop alpha GpuCount)" "alpha has its six GPUs"

# Gpus: the host's records of ListGpus; a change no count shows (a free GPU prepared on the agent) is announced.
hgpus() { busctl --system --json=short get-property org.gpupass.cluster1 "$CM/host/$1" org.gpupass.cluster1.Host Gpus | jq -c .data; }
lgpus() { busctl --system --json=short call org.gpupass.cluster1 $CM org.gpupass.cluster1.Manager ListGpus |
                  jq -c "[.data[0][] | select(.[0] == \"$1\")]"; }
for h in alpha beta delta; do assert_eq "$(lgpus $h)" "$(hgpus $h)" "$h: Gpus as its records in ListGpus"; done
p86=$(host_call alpha call org.gpupass.agent1 /org/gpupass/agent1 org.gpupass.agent1.Manager GetGpu s 0000:86:00.0 | cut -d'"' -f2)
host_call alpha call org.gpupass.agent1 "$p86" org.gpupass.agent1.Gpu Prepare
expect_signal '^PC '"$CM"'/host/alpha Gpus=.*"0000:86:00.0","[^"]*","[a-z]*","vfio"' "a GPU prepared on alpha's agent: PropertiesChanged Gpus"
assert_eq "$(lgpus alpha)" "$(hgpus alpha)" "alpha: Gpus as ListGpus after the Prepare"
back='^PC '"$CM"'/host/alpha Gpus=.*"0000:86:00.0","[^"]*","[a-z]*","host"'
before=$(signals | grep -c -- "$back" || true)
host_call alpha call org.gpupass.agent1 "$p86" org.gpupass.agent1.Gpu ReturnToHost
signal_count() { signals | grep -c -- "$1" || true; } # grep pattern -> how many signals so far match
wait_until 20 "one more signal matching [$back]" output_is $((before + 1)) signal_count "$back" || true
assert_eq $((before + 1)) "$(signal_count "$back")" "and back to the host: one more PropertiesChanged Gpus"

# CreateVm: InterfacesAdded, an object in the tree, every property against ListVms.
uuid=$(cluster CreateVm sut obj-1 2 2048 | cut -d'"' -f2)
VMPATH=$(busctl --system tree --list org.gpupass.cluster1 | grep "^$CM/vm/")
assert_eq "$CM/vm/$(path_encode "$uuid")" "$VMPATH" "the VM's object is at vm/<UUID, path-encoded>"
expect_signal "^IA $VMPATH org.gpupass.cluster1.Vm" "InterfacesAdded for the new VM"
cluster SetVmGpus ss obj-1 "2:NVIDIA Tesla M60|NVIDIA Tesla M60.compute" >/dev/null
expect_signal "^PC $VMPATH GpuRequests=2:NVIDIA Tesla M60|NVIDIA Tesla M60.compute$" "SetVmGpus: PropertiesChanged GpuRequests, nothing else"
busctl --system call org.gpupass.cluster1 $CM org.gpupass.cluster1.Manager SetVmAffinity sas obj-1 2 alpha beta
expect_signal "^PC $VMPATH Affinity=\[\"alpha\",\"beta\"\]$" "SetVmAffinity: PropertiesChanged Affinity as an array"
cluster SetVmResources sut obj-1 1 4096 >/dev/null
expect_signal "^PC $VMPATH Vcpus=1 MemoryMiB=4096$" "SetVmResources: PropertiesChanged Vcpus and MemoryMiB"
out=$(busctl --system introspect org.gpupass.cluster1 "$VMPATH" org.gpupass.cluster1.Vm)
assert_contains "$(grep '^.Uuid ' <<<"$out")" "const" "Vm.Uuid is const"
assert_contains "$(grep '^.Power ' <<<"$out")" "emits-change" "Vm.Power emits change"

check_vm() { # every Vm property against the VM's ListVms entry
        local entry vcpus mem
        entry=$(cluster ListVms | grep -o "\"$uuid\" \"obj-1\" [0-9]* [0-9]* \"[^\"]*\" \"[^\"]*\" \"[a-z]*\" \"[^\"]*\" \"[^\"]*\"")
        read -r vcpus mem <<<"$(cut -d'"' -f5 <<<"$entry")"
        assert_eq "s \"$uuid\"" "$(vprop Uuid)" "Uuid as in ListVms $1"
        assert_eq 's "obj-1"' "$(vprop Name)" "Name as in ListVms $1"
        assert_eq "u $vcpus" "$(vprop Vcpus)" "Vcpus as in ListVms $1"
        assert_eq "t $mem" "$(vprop MemoryMiB)" "MemoryMiB as in ListVms $1"
        assert_eq "s \"$(cut -d'"' -f6 <<<"$entry")\"" "$(vprop GpuRequests)" "GpuRequests as in ListVms $1"
        local aff list=() out
        aff=$(cut -d'"' -f8 <<<"$entry")
        [ -n "$aff" ] && IFS=, read -r -a list <<<"$aff"
        out="as ${#list[@]}"; for h in "${list[@]}"; do out+=" \"$h\""; done
        assert_eq "$out" "$(vprop Affinity)" "Affinity: ListVms' '$aff' as an array $1"
        assert_eq "s \"$(cut -d'"' -f10 <<<"$entry")\"" "$(vprop Power)" "Power as in ListVms $1"
        assert_eq "s \"$(cut -d'"' -f12 <<<"$entry")\"" "$(vprop Host)" "Host as in ListVms $1"
        assert_eq "s \"$(cut -d'"' -f14 <<<"$entry")\"" "$(vprop Flags)" "Flags as in ListVms $1"
}
check_vm "(off)"
assert_eq "as 0" "$(vprop Gpus)" "no GPUs held before the first power-on"
assert_eq "b false" "$(vprop NeedsReconfiguration)" "no reconfiguration needed"

# PowerOn: the VM's Power, Host and Gpus change; alpha's free capacity shrinks, in signals and properties.
cpus=$(hprop alpha CpuCount | cut -d' ' -f2); mem=$(hprop alpha MemoryMiB | cut -d' ' -f2)
free0=$(hprop alpha FreeGpuCount | cut -d' ' -f2)
out=$(cluster PowerOn s obj-1 2>&1) || true
assert_eq 'sas "alpha" 2 "0000:3b:00.0" "0000:3c:00.0"' "$out" "PowerOn places obj-1 on alpha"
expect_signal "^PC $VMPATH Power=on Host=alpha Gpus=\[\"0000:3b:00.0\",\"0000:3c:00.0\"\]$" "PowerOn: PropertiesChanged Power, Host, Gpus"
expect_signal "^PC $CM/host/alpha FreeCpus=$((cpus - 1)) FreeMemoryMiB=$((mem - 4096))$" "PowerOn: alpha's FreeCpus and FreeMemoryMiB drop by the VM's"
expect_signal "^PC $CM/host/alpha FreeGpuCount=" "the claims: alpha's FreeGpuCount changes"
check_vm "(on)"
assert_eq 'as 2 "0000:3b:00.0" "0000:3c:00.0"' "$(vprop Gpus)" "Gpus: the GPUs it holds"
assert_eq "u $((cpus - 1))" "$(hprop alpha FreeCpus)" "FreeCpus: alpha's CPUs less the running VM's"
assert_eq "t $((mem - 4096))" "$(hprop alpha FreeMemoryMiB)" "FreeMemoryMiB: alpha's memory less the running VM's"
free=$(cluster ListGpus | grep -o '"alpha" "[0-9a-f:.]*" "[^"]*" "[a-z]*" "\(host\|vfio\)"' | wc -l || true)
wait_until 20 "alpha's FreeGpuCount to be $free" output_is "u $free" hprop alpha FreeGpuCount || true
assert_eq "u $free" "$(hprop alpha FreeGpuCount)" "FreeGpuCount follows the claims, as ListGpus shows them"
assert_eq "u $((free0 - 2))" "$(hprop alpha FreeGpuCount)" "two fewer of alpha's GPUs are free"

# PowerOff: back to off, the capacity comes back; Host and Gpus stay as the last placement.
cluster PowerOff s obj-1 >/dev/null
expect_signal "^PC $VMPATH Power=off$" "PowerOff: PropertiesChanged Power only (Host and Gpus keep the last placement)"
expect_signal "^PC $CM/host/alpha FreeCpus=$cpus FreeMemoryMiB=$mem$" "PowerOff: alpha's free CPUs and memory come back"
check_vm "(off again)"
expect_signal "^PC $CM/host/alpha FreeGpuCount=$free0$" "the releases: alpha's FreeGpuCount back to $free0"
assert_eq "u $free0" "$(hprop alpha FreeGpuCount)" "alpha's GPUs are free again after the releases"

# A host going away: State and UnreachableReason change, its GPUs no longer count as free.
kill_agent beta
expect_signal "^PC $CM/host/beta State=unreachable UnreachableReason=the agent left the bus FreeGpuCount=0$" "beta's agent leaves: PropertiesChanged State, UnreachableReason, FreeGpuCount"
assert_eq 's "unreachable"' "$(hprop beta State)" "beta's State property is unreachable"
assert_eq 's "the agent left the bus"' "$(hprop beta UnreachableReason)" "beta's UnreachableReason says why"
assert_eq 'u 1' "$(hprop beta GpuCount)" "beta's GPU still counted, as last seen"
stop_host beta
start_host beta "$FIX/single.ini"
expect_signal "^PC $CM/host/beta State=up UnreachableReason= FreeGpuCount=1$" "beta back: State up, reason cleared, its GPU free"

# Maintenance: the VM goes off flagged to come back, the host shows it; afterwards both come back.
busctl --system call org.gpupass.cluster1 $CM org.gpupass.cluster1.Manager SetVmAffinity sas obj-1 1 alpha
expect_signal "^PC $VMPATH Affinity=\[\"alpha\"\]$" "SetVmAffinity again: the new Affinity"
out=$(cluster PowerOn s obj-1 2>&1) || true
assert_contains "$out" 'sas "alpha" 2 ' "obj-1 on alpha again"
out=$(cluster EnterHostMaintenance s alpha 2>&1) || true
assert_contains "$out" "$uuid" "EnterHostMaintenance powers obj-1 off"
expect_signal "^PC $VMPATH Power=off.* Flags=restart:alpha$" "maintenance: PropertiesChanged Power off and the restart flag"
expect_signal "^PC $CM/host/alpha State=maintenance.* Maintenance=true" "maintenance: alpha's State and Maintenance"
assert_eq 'b true' "$(hprop alpha Maintenance)" "alpha's Maintenance property"
out=$(cluster ExitHostMaintenance s alpha 2>&1) || true
expect_signal "^PC $VMPATH Power=on.* Flags=$" "maintenance over: obj-1 on again, its flag cleared"
expect_signal "^PC $CM/host/alpha State=up.* Maintenance=false" "maintenance over: alpha up"
wait_until 20 "obj-1's Power to be on" output_is 's "on"' vprop Power || true
out=$(cluster PowerOff s obj-1 2>&1) && pass "obj-1 off" || fail "PowerOff: $out"

# A reflash of the GPU it held flags the VM: Flags and NeedsReconfiguration change; SetVmGpus clears them.
unplug_m60 alpha
expect_signal "^PC $CM/host/alpha GpuCount=5" "a GPU leaves alpha: GpuCount"
plug_m60_compute alpha
expect_signal "^PC $VMPATH Flags=reconfigure:NVIDIA Tesla M60.compute NeedsReconfiguration=true$" "reflash: PropertiesChanged Flags and NeedsReconfiguration"
assert_eq 'b true' "$(vprop NeedsReconfiguration)" "NeedsReconfiguration is true"
check_vm "(flagged)"
cluster SetVmGpus ss obj-1 "1:NVIDIA Tesla M60.compute" >/dev/null
expect_signal "^PC $VMPATH GpuRequests=1:NVIDIA Tesla M60.compute Flags= NeedsReconfiguration=false$" "SetVmGpus clears the flag, in one PropertiesChanged"

# DeleteVm: InterfacesRemoved, and the object is gone.
cluster DeleteVm s obj-1 >/dev/null
expect_signal "^IR $VMPATH org.gpupass.cluster1.Vm$" "DeleteVm: InterfacesRemoved"
out=$(busctl --system get-property org.gpupass.cluster1 "$VMPATH" org.gpupass.cluster1.Vm Uuid 2>&1) &&
        fail "the deleted VM still has an object: $out" || pass "the deleted VM's object is gone"
assert_not_contains "$(busctl --system tree --list org.gpupass.cluster1)" "$CM/vm/" "and out of the tree"
# A VM's object is at its UUID only, not at its name.
cluster CreateVm sut byname 1 1024 >/dev/null
out=$(busctl --system get-property org.gpupass.cluster1 "$CM/vm/byname" org.gpupass.cluster1.Vm Uuid 2>&1) &&
        fail "a VM answered at its name's path: $out" || pass "no object at a VM's name"
out=$(busctl --system call org.gpupass.cluster1 $CM org.freedesktop.DBus.ObjectManager GetManagedObjects)
assert_contains "$out" "org.gpupass.cluster1.Vm" "GetManagedObjects lists the VMs"
assert_contains "$out" "$CM/host/delta" "GetManagedObjects lists the hosts"

signals | sed 's/^/# /'
finish
