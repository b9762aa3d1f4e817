#!/bin/bash
# Two aggregators with separate registries, on buses of their own, placing VMs onto the same four hosts at
# once: ROUNDS power-on/power-off cycles of 8 VMs each (>= 1,000 PowerOn calls in all). The agents' Claim
# arbitrates: afterwards no GPU is held by two VMs, and each registry agrees with the agents about what it
# holds. Prints the counts: placed, refused because the other aggregator was faster, no host left.
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
source "$GPUPASS_SOURCE_ROOT/tests/integration/cluster-lib.sh"
ROUNDS=${GPUPASS_RACE_ROUNDS:-64}
HOSTS=(alpha beta gamma delta)

# Four hosts of different sizes (their sysfs says so).
start_host alpha "$(sized "$FIX/multi-gpu.ini" 32 131072)"
start_host beta "$(sized "$FIX/single.ini" 8 32768)"
start_host gamma "$(sized "$FIX/compute.ini" 16 65536)"
start_host delta "$(sized "$FIX/compute.ini" 4 16384)"
start_bus open
BUS_A=$DBUS_SYSTEM_BUS_ADDRESS
start_clusterd agg-a "${HOSTS[@]}"
sed -e "s|@SOCKET@|$TEST_DIR/bus-b|" "$GPUPASS_SOURCE_ROOT/tests/integration/open-bus.conf.in" >"$TEST_DIR/bus-b.conf"
dbus-daemon --config-file="$TEST_DIR/bus-b.conf" --nofork --nopidfile 2>"$TEST_DIR/bus-b.log" &
PIDS+=($!)
wait_until --while $! 20 "the second bus's socket" test -S "$TEST_DIR/bus-b" || exit 1
BUS_B=unix:path=$TEST_DIR/bus-b
DBUS_SYSTEM_BUS_ADDRESS=$BUS_B start_clusterd agg-b "${HOSTS[@]}"
on() { DBUS_SYSTEM_BUS_ADDRESS=$1; shift; "$@"; }
for bus in "$BUS_A" "$BUS_B"; do
        for h in "${HOSTS[@]}"; do
                if DBUS_SYSTEM_BUS_ADDRESS=$bus wait_host "$h"; then
                        pass "the aggregator on $bus sees $h up"
                else
                        fail "$h not up on $bus"
                fi
        done
done
for bus in "$BUS_A" "$BUS_B"; do
        hosts=$(DBUS_SYSTEM_BUS_ADDRESS=$bus cluster ListHosts)
        for hs in "alpha 32 131072" "beta 8 32768" "gamma 16 65536" "delta 4 16384"; do
                set -- $hs
                assert_contains "$hosts" "\"$1\" \"unix:path=$TEST_DIR/$1/bus\" \"up\" \"\" $2 $3 " "$1: $2 CPUs, $3 MiB"
        done
done

# Each registry: 8 VMs asking for 10 GPUs; the cluster has 10 (alpha 3, beta 1, gamma 3, delta 3).
for side in a b; do
        bus=BUS_${side^^}
        export DBUS_SYSTEM_BUS_ADDRESS=${!bus}
        for i in 1 2 3 4; do
                cluster CreateVm sut "$side-any-$i" 1 64 >/dev/null
                cluster SetVmGpus ss "$side-any-$i" "1:NVIDIA Tesla M60|NVIDIA Tesla M60.compute|NVIDIA Tesla T4.compute" >/dev/null
        done
        for i in 1 2; do
                cluster CreateVm sut "$side-t4x2-$i" 1 64 >/dev/null
                cluster SetVmGpus ss "$side-t4x2-$i" "2:NVIDIA Tesla T4.compute" >/dev/null
                cluster CreateVm sut "$side-m60-$i" 1 64 >/dev/null
                cluster SetVmGpus ss "$side-m60-$i" "1:NVIDIA Tesla M60" >/dev/null
        done
done
export DBUS_SYSTEM_BUS_ADDRESS=$BUS_A

# worker SIDE ROUNDS LAST: every round powers the side's VMs on at once, then (but in the last round when
# LAST is "keep") off at once. Each PowerOn's outcome is one line in TEST_DIR/outcomes-SIDE.
worker() {
        local side=$1 bus=BUS_${1^^} vms v round
        export DBUS_SYSTEM_BUS_ADDRESS=${!bus}
        vms=$(cluster ListVms | grep -o "\"$side-[a-z0-9-]*\"" | tr -d '"')
        for round in $(seq "$2"); do
                for v in $vms; do
                        (
                                out=$(cluster PowerOn s "$v" 2>&1) && echo placed && exit 0
                                case $out in
                                *"claim of "*"refused"*) echo refused ;;
                                *"No host can run"*) echo nohost ;;
                                *) echo "other $v: $out" ;;
                                esac
                        ) >>"$TEST_DIR/outcomes-$side" &
                done
                wait
                [ "$round" -eq "$2" ] && [ "$3" == keep ] && break
                for v in $vms; do
                        ( out=$(cluster PowerOff s "$v" 2>&1) || echo "poweroff $v: $out" ) >>"$TEST_DIR/poweroff-$side" &
                done
                wait
        done
}
start=$(date +%s.%N)
worker a "$ROUNDS" keep &
wa=$!
worker b "$ROUNDS" keep &
wb=$!
wait $wa $wb
elapsed=$(echo "$(date +%s.%N) - $start" | bc)

count() { grep -c "^$1" "$TEST_DIR/outcomes-$2" || true; }
total=0
for side in a b; do
        p=$(count placed $side); r=$(count refused $side); n=$(count nohost $side); o=$(count other $side)
        total=$((total + p + r + n + o))
        echo "# aggregator $side: $((p + r + n + o)) PowerOn: $p placed, $r refused because the other was faster, $n no host free, $o other"
        assert_eq 0 "$o" "aggregator $side: no PowerOn failed otherwise"
        [ "$p" -gt 0 ] && pass "aggregator $side placed VMs" || fail "aggregator $side placed nothing"
        assert_eq "" "$(cat "$TEST_DIR/poweroff-$side" 2>/dev/null)" "aggregator $side: every PowerOff succeeded"
done
{ grep -h "^other" "$TEST_DIR"/outcomes-* || true; } | head -5 | sed "s/^/# /"
[ "$total" -ge 1000 ] && pass "$total PowerOn calls in all" || fail "only $total PowerOn calls"
echo "# $total PowerOn calls in ${elapsed}s"

# The agents' side: who holds what, against each registry.
compare_claims() { # -> out: "held N double N problems N" and the problems; fails when they disagree
        local h
        for h in "${HOSTS[@]}"; do
                host_call "$h" --json=short call org.gpupass.agent1 /org/gpupass/agent1 org.freedesktop.DBus.ObjectManager \
                        GetManagedObjects >"$TEST_DIR/objects-$h.json" || { out="the agent on $h does not answer"; return 1; }
        done
        out=$(python3 - "$TEST_DIR" "${HOSTS[@]}" <<'EOP'
import json, sqlite3, sys
d, hosts = sys.argv[1], sys.argv[2:]
agent = {}  # (host, address) -> owner
for h in hosts:
    for path, ifaces in json.load(open(f"{d}/objects-{h}.json"))["data"][0].items():
        g = ifaces.get("org.gpupass.agent1.Gpu")
        if g and g["Owner"]["data"]:
            agent[(h, g["Address"]["data"])] = g["Owner"]["data"].lower()
held = {}   # (host, address) -> [(side, vm)]
problems = []
for side in "ab":
    db = sqlite3.connect(f"file:{d}/agg-{side}/state/vms.db?mode=ro", uri=True)
    for uuid, name, host, addrs in db.execute("SELECT uuid, name, host, held FROM vms WHERE power = 'on'"):
        for a in filter(None, addrs.split(",")):
            held.setdefault((host, a), []).append((side, uuid.lower()))
            if agent.get((host, a)) != uuid.lower():
                problems.append(f"{side}: {name} recorded on {host} with {a}, the agent says {agent.get((host, a))}")
double = sum(1 for v in held.values() if len(v) > 1)
for k, owner in agent.items():
    if not any(vm == owner for _, vm in held.get(k, [])):
        problems.append(f"agent {k[0]} holds {k[1]} for {owner}, recorded by neither registry")
print(f"held {len(agent)} double {double} problems {len(problems)}")
for p in problems[:10]:
    print("problem", p)
EOP
) || { out="the check itself failed: $out"; return 1; }
        [[ "$out" == *" double 0 problems 0"* ]]
}
# The aggregators roll a refused placement back with releases they do not wait for: until those have
# arrived, an agent may hold a claim that neither registry records.
wait_until 20 "the agents and both registries to agree" compare_claims || true
echo "$out" | sed 's/^/# /'
assert_contains "$out" " double 0 " "no GPU is held by two VMs (double owners = 0)"
assert_contains "$out" " problems 0" "each registry agrees with the agents: what it records on is claimed, nothing else is"
assert_not_contains "$out" "held 0 " "the check has claims to compare"
if [ "$FAILURES" -ne 0 ]; then
        for f in "$TEST_DIR"/*/agent.log "$TEST_DIR"/agg-*.log; do
                echo "# --- $f"; grep -v " released by VM \| powered o\|claimed by VM\|refused (An operation\|bound to vfio-pci" "$f" | tail -20 | sed 's/^/# /'
        done
fi
finish
