#!/bin/bash
# One simulated host of a simulated cluster: run inside gpupass-simhost; starts the host's private
# system bus at DIR/bus and its agent, then waits until terminated. Usage: cluster-host.sh DIR
set -euo pipefail
source "$GPUPASS_SOURCE_ROOT/tests/integration/wait.sh"
dir=$1
mkdir -p "$dir/state" "$dir/etc"
chmod 0755 "$dir"
sed -e "s|@SOCKET@|$dir/bus|" -e "s|@POLICY@|$GPUPASS_SOURCE_ROOT/dbus/org.gpupass.agent1.conf|" \
        "$GPUPASS_SOURCE_ROOT/tests/integration/system-bus.conf.in" >"$dir/bus.conf"
rm -f "$dir/bus" # the previous boot's, if it left it
dbus-daemon --config-file="$dir/bus.conf" --nofork --nopidfile 2>/dev/null &
bus=$!
wait_until --while $bus 20 "the host's dbus-daemon socket $dir/bus" test -S "$dir/bus" || exit 1
DBUS_SYSTEM_BUS_ADDRESS="unix:path=$dir/bus" STATE_DIRECTORY="$dir/state" CONFIGURATION_DIRECTORY="$dir/etc" \
        "$GPUPASSD" 2>>"$dir/agent.log" &
agent=$!
echo "$agent" >"$dir/agent.pid"
echo "$GPUPASS_SIMHOST_CTL" >"$dir/simhost.ctl"
trap 'kill $agent $bus 2>/dev/null; wait' TERM INT EXIT
wait $bus
