#!/bin/bash
# SIGHUP (ExecReload= of both units) rereads the configuration: the agent's AdminGroup, the aggregator's
# AdminGroup and its hosts (added, removed); each Manager's AdminGroup property follows, announced by
# PropertiesChanged (the web console reads it). A file that does not parse changes nothing and the daemon
# keeps running. On an open bus, so that only the daemons' own checks decide. Both daemons run with
# $NOTIFY_SOCKET and $WATCHDOG_USEC as their Type=notify units give them: READY, STATUS, WATCHDOG pings
# and RELOADING around a reload are what systemd sees. At the end the bus goes away: both daemons exit, failed.
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
source "$GPUPASS_SOURCE_ROOT/tests/integration/cluster-lib.sh"
AUDIO="--reuid=65534 --regid=audio --clear-groups"
VIDEO="--reuid=65534 --regid=video --clear-groups"
M=/org/gpupass/agent1

rescan_as() { # setpriv-spec -> "ok" or the error
        as_user "$1" busctl --system call org.gpupass.agent1 $M org.gpupass.agent1.Manager Rescan 2>&1 && echo ok
}
reloads_logged() { # -> how many reloads the agent has logged, done or failed
        grep -c "Configuration reloaded\|Reload failed" "$TEST_DIR/agent.log" || true
}
reload_agent() {
        local before
        before=$(reloads_logged)
        kill -HUP "$AGENT_PID"
        wait_until 20 "the agent to log its reload" output_is "$((before + 1))" reloads_logged
}

# notify_listen NAME: a notification socket $TEST_DIR/NAME.sock logging to $TEST_DIR/NAME.notify.
notify_listen() {
        python3 "$GPUPASS_SOURCE_ROOT/tests/integration/notify-listener.py" "$TEST_DIR/$1.sock" "$TEST_DIR/$1.notify" &
        PIDS+=("$!")
        wait_until --while "$!" 20 "the notify listener's socket" test -S "$TEST_DIR/$1.sock" || exit 1
}
# check_notify NAME WHAT: READY=1 with a STATUS, then watchdog pings (WATCHDOG_USEC=1 s: every 0.5 s).
check_notify() {
        local log=$TEST_DIR/$1.notify
        wait_for_log "$log" "READY=1" && pass "$2: READY=1 sent" || fail "$2: no READY=1"
        wait_for_log "$log" "STATUS=" && pass "$2: STATUS sent: $(grep -o 'STATUS=[^|]*' "$log" | tail -1)" ||
                fail "$2: no STATUS"
        # Two pings: the pinging is periodic, not one message at start-up.
        if wait_until 20 "two WATCHDOG=1 from $2" output_has "WATCHDOG=1 WATCHDOG=1" notify_states "$1" WATCHDOG; then
                pass "$2: pings the watchdog"
        else
                fail "$2: no watchdog pings: $(cat "$log")"
        fi
}
notify_states() { # NAME KEYS: the KEY=1 notifications (KEYS: a grep alternation) so far, in order, on one line
        grep -o "\($2\)=1" "$TEST_DIR/$1.notify" | tr '\n' ' ' || true
}
# check_reload_notify NAME WHAT: RELOADING=1 then READY=1 again, as systemd expects around a reload.
# admin_group NAME PATH: the Manager's AdminGroup property as busctl prints it (s "GROUP").
admin_group() {
        busctl --system get-property "$1" "$2" "$1.Manager" AdminGroup 2>&1
}
# admin_group_announced LOG: the AdminGroup values PropertiesChanged announced in LOG (a --json=short
# monitor), one per line.
admin_group_announced() {
        jq -r 'select(.type == "signal" and .member == "PropertiesChanged") | .payload.data[1].AdminGroup.data // empty' \
                < <(grep '^{' "$TEST_DIR/$1") || true
}
# check_admin_group_change NAME PATH LOG WHAT GROUP: the property reads GROUP and a PropertiesChanged said so.
check_admin_group_change() {
        assert_eq "s \"$5\"" "$(admin_group "$1" "$2")" "$4: AdminGroup reads $5 after the reload"
        if wait_until 20 "PropertiesChanged AdminGroup=$5 from $4" output_is "$5" admin_group_announced "$3"; then
                pass "$4: PropertiesChanged announced AdminGroup=$5"
        else
                fail "$4: AdminGroup changes announced: [$(admin_group_announced "$3")], expected [$5]"
        fi
}
check_reload_notify() {
        wait_until 20 "READY=1 after RELOADING=1 from $2" output_has "RELOADING=1 READY=1" \
                notify_states "$1" 'RELOADING\|READY' || true
        assert_contains "$(notify_states "$1" 'RELOADING\|READY')" "RELOADING=1 READY=1" \
                "$2: RELOADING=1 then READY=1 around the reload"
}

start_bus open
notify_listen agent
NOTIFY_SOCKET=$TEST_DIR/agent.sock WATCHDOG_USEC=1000000 start_agent $'[Agent]\nAdminGroup=audio'
check_notify agent agent
assert_eq ok "$(rescan_as "$AUDIO")" "agent: a member of AdminGroup=audio may Rescan"
assert_contains "$(rescan_as "$VIDEO")" "may not change" "agent: a member of video may not"
assert_eq 's "audio"' "$(admin_group org.gpupass.agent1 $M)" "agent: AdminGroup reads the configured audio"

start_monitor agent-admin.log org.gpupass.agent1 --system --json=short
printf '[Agent]\nAdminGroup=video\n' >"$TEST_DIR/etc/gpupassd.conf"
reload_agent && pass "agent: SIGHUP reloads" || fail "agent: no reload logged after SIGHUP"
check_admin_group_change org.gpupass.agent1 $M agent-admin.log agent video
check_reload_notify agent agent
assert_contains "$(rescan_as "$AUDIO")" "may not change" "agent: after the reload audio may no longer Rescan"
assert_eq ok "$(rescan_as "$VIDEO")" "agent: after the reload video may"

printf '[Agent]\nAdminGrup=audio\n' >"$TEST_DIR/etc/gpupassd.conf"
reload_agent || true
assert_contains "$(cat "$TEST_DIR/agent.log")" "gpupassd.conf:2: invalid setting" "agent: the bad line is named"
kill -0 "$AGENT_PID" 2>/dev/null && pass "agent: a bad file on reload does not stop the agent" || fail "agent died"
assert_eq ok "$(rescan_as "$VIDEO")" "agent: a bad file keeps the running AdminGroup"
assert_eq 's "video"' "$(admin_group org.gpupass.agent1 $M)" "agent: and AdminGroup still reads video"

# The aggregator, with the agent on this bus as host "one".
mkdir -p "$TEST_DIR/agg/etc"
CONF=$TEST_DIR/agg/etc/clusterd.conf
printf '[Cluster]\nAdminGroup=audio\n[Host one]\nAddress=%s\n' "$DBUS_SYSTEM_BUS_ADDRESS" >"$CONF"
notify_listen clusterd
NOTIFY_SOCKET=$TEST_DIR/clusterd.sock WATCHDOG_USEC=1000000 run_clusterd agg
wait_hosts '"one" "'"$DBUS_SYSTEM_BUS_ADDRESS"'" "up"' || true
assert_contains "$(cluster ListHosts)" 'a(ssssutu) 1 "one" "'"$DBUS_SYSTEM_BUS_ADDRESS"'" "up"' \
        "aggregator: one host configured, up"
check_notify clusterd aggregator
out=$(as_user "$AUDIO" busctl --system call org.gpupass.cluster1 /org/gpupass/cluster1 org.gpupass.cluster1.Manager \
        CreateVm sut first 1 256 2>&1) && pass "aggregator: a member of AdminGroup=audio may CreateVm" ||
        fail "aggregator: audio refused: $out"
C=/org/gpupass/cluster1
assert_eq 's "audio"' "$(admin_group org.gpupass.cluster1 $C)" "aggregator: AdminGroup reads the configured audio"

# Add a host (unreachable) and switch the admin group.
start_monitor agg-admin.log org.gpupass.cluster1 --system --json=short
printf '[Cluster]\nAdminGroup=video\n[Host one]\nAddress=%s\n[Host two]\nAddress=unix:path=%s/nobus\n' \
        "$DBUS_SYSTEM_BUS_ADDRESS" "$TEST_DIR" >"$CONF"
kill -HUP "${CLUSTERD_PID[agg]}"
wait_hosts 'a(ssssutu) 2 "one"' && pass "aggregator: SIGHUP adds host two" || fail "aggregator: host two not added: $(cluster ListHosts)"
hosts=$(cluster ListHosts)
assert_contains "$hosts" '"one" "'"$DBUS_SYSTEM_BUS_ADDRESS"'" "up"' "aggregator: host one kept its connection"
check_reload_notify clusterd aggregator
check_admin_group_change org.gpupass.cluster1 $C agg-admin.log aggregator video
assert_contains "$hosts" '"two" "unix:path='"$TEST_DIR"'/nobus" "unreachable"' "aggregator: host two is unreachable, with its address"
host_prop() { busctl --system get-property org.gpupass.cluster1 "/org/gpupass/cluster1/host/$1" org.gpupass.cluster1.Host "$2" 2>&1; }
assert_eq 's "unreachable"' "$(host_prop two State)" "aggregator: the added host has its Host object"
assert_eq 's "up"' "$(host_prop one State)" "aggregator: host one's object survived the reload"
out=$(as_user "$AUDIO" busctl --system call org.gpupass.cluster1 /org/gpupass/cluster1 org.gpupass.cluster1.Manager \
        CreateVm sut second 1 256 2>&1) || true
assert_contains "$out" "may not change" "aggregator: after the reload audio may no longer CreateVm"
out=$(as_user "$VIDEO" busctl --system call org.gpupass.cluster1 /org/gpupass/cluster1 org.gpupass.cluster1.Manager \
        CreateVm sut second 1 256 2>&1) && pass "aggregator: video may CreateVm after the reload" ||
        fail "aggregator: video refused: $out"

# Remove host one while a PowerOff waits for its agent (stopped): the host stays until the Release is
# answered, then goes.
cluster SetVmGpus ss second "1:NVIDIA Tesla M60" >/dev/null
out=$(cluster PowerOn s second 2>&1) || true
assert_contains "$out" '"one"' "aggregator: VM second powered on on host one"
start_monitor
kill -STOP "$AGENT_PID"
cluster PowerOff s second >"$TEST_DIR/poweroff.out" 2>&1 &
POWEROFF_PID=$!
# In flight once its Release is on the bus to the (stopped) agent.
wait_until 20 "the aggregator's Release to the agent" file_has "$TEST_DIR/monitor.log" "Member=Release" ||
        fail "the PowerOff sent no Release"
printf '[Cluster]\nAdminGroup=video\n[Host two]\nAddress=unix:path=%s/nobus\n' "$TEST_DIR" >"$CONF"
kill -HUP "${CLUSTERD_PID[agg]}"
wait_for_log "$TEST_DIR/agg.log" "host changes wait for 1 running calls" &&
        pass "aggregator: the host change waits for the PowerOff in flight" || fail "aggregator: reload did not wait"
assert_contains "$(cluster ListHosts)" 'a(ssssutu) 2 "one"' "aggregator: host one is still there while its Release is pending"
kill -CONT "$AGENT_PID"
wait "$POWEROFF_PID" && pass "aggregator: the PowerOff in flight was answered" ||
        fail "aggregator: PowerOff failed: $(cat "$TEST_DIR/poweroff.out")"
assert_contains "$(cluster ListVms)" '"second" 1 256 "1:NVIDIA Tesla M60" "" "off" "one"' "aggregator: VM second is off, last on host one"
wait_hosts 'a(ssssutu) 1 "two"' && pass "aggregator: then SIGHUP's removal of host one applies" ||
        fail "aggregator: host one not removed: $(cluster ListHosts)"
assert_eq 'a(sssssssbas) 0' "$(cluster ListGpus)" "aggregator: the removed host's GPUs left the view"
out=$(host_prop one State) && fail "aggregator: the removed host's object is still there: $out" ||
        assert_contains "$out" "Unknown object" "aggregator: the removed host's object is gone"
assert_eq 's "unreachable"' "$(host_prop two State)" "aggregator: host two's object is still served"

# A bad file changes nothing.
printf '[Cluster]\nAdminGroup=video\n[Host two]\nAddress=unix:path=/x\nAddress=unix:path=/y\n' >"$CONF"
kill -HUP "${CLUSTERD_PID[agg]}"
wait_for_log "$TEST_DIR/agg.log" "Reload failed" && pass "aggregator: a bad file on reload is reported" ||
        fail "aggregator: no reload failure logged"
assert_contains "$(cat "$TEST_DIR/agg.log")" "clusterd.conf:5: invalid setting" "aggregator: the bad line is named"
kill -0 "${CLUSTERD_PID[agg]}" 2>/dev/null && pass "aggregator: still running" || fail "aggregator died"
assert_eq 's "video"' "$(admin_group org.gpupass.cluster1 $C)" "aggregator: AdminGroup still reads video"
assert_contains "$(cluster ListHosts)" 'a(ssssutu) 1 "two" "unix:path='"$TEST_DIR"'/nobus"' "aggregator: the host list stayed as it was"

# The bus goes away (a host's system bus does not come back by itself): both daemons exit with a failure
# status, which Restart=on-failure acts on, instead of running on where nothing can reach them.
stop_bus
exit_status() { # pid -> its exit status, once it has exited (a child of this shell)
        local rc=0
        wait "$1" || rc=$?
        echo "$rc"
}
for who in agent:$AGENT_PID aggregator:${CLUSTERD_PID[agg]}; do
        if wait_until 20 "the ${who%%:*} to exit after its bus" process_gone "${who#*:}"; then
                assert_eq 1 "$(exit_status "${who#*:}")" "${who%%:*}: exits with status 1 when its bus is gone"
        else
                fail "${who%%:*}: still running 20 s after its bus went away"
        fi
done
assert_contains "$(cat "$TEST_DIR/agent.log")" "The bus connection is gone" "agent: says why it exits"
assert_contains "$(cat "$TEST_DIR/agg.log")" "The bus connection is gone" "aggregator: says why it exits"
finish
