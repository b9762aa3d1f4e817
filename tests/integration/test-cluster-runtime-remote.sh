#!/bin/bash
# The VM runtime over libvirt's remote protocol: a real libvirtd (session mode, as nobody, its own socket)
# serving its test driver, reached as test+unix:///default?socket=... So the aggregator's libvirt connection
# has a socket and keepalive timers in its sd-event loop, lifecycle events arrive over that socket, and
# libvirtd can go away and come back: the link goes unreachable (close callback), a PowerOff then waits,
# and the link reconnects with backoff. `virsh` against the same daemon sees and stops the same domains.
# A second host's libvirt accepts the connection and never answers: it holds only its own worker thread.
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
source "$GPUPASS_SOURCE_ROOT/tests/integration/cluster-lib.sh"

LVD=$TEST_DIR/libvirtd
URI="test+unix:///default?socket=$LVD/run/libvirt/libvirt-sock"
start_libvirtd() { # a session libvirtd as nobody, with its home and runtime directory under TEST_DIR
        mkdir -p "$LVD/home" "$LVD/run"
        chown -R nobody:nogroup "$LVD"
        setpriv --reuid=nobody --regid=nogroup --clear-groups env -i PATH="$PATH" HOME="$LVD/home" \
                XDG_RUNTIME_DIR="$LVD/run" libvirtd >>"$TEST_DIR/libvirtd.log" 2>&1 &
        LIBVIRTD_PID=$!
        PIDS+=("$LIBVIRTD_PID")
        wait_until --while "$LIBVIRTD_PID" 20 "libvirtd to answer on $URI" libvirt_answers && return 0
        echo "libvirtd did not start:"; cat "$TEST_DIR/libvirtd.log"; exit 1
}
libvirt_answers() { virsh -q -c "$URI" list >/dev/null 2>&1; }
domstate() { virsh -q -c "$URI" domstate "$1" 2>&1 | head -1; } # uuid -> what libvirtd says
vm_state() { # uuid property -> the Vm object's value, without the type
        local p
        p=$(python3 -c 'import sys; u = sys.argv[1]; print("/org/gpupass/cluster1/vm/" + "".join(
                c if c.isalnum() and c.isascii() and not (i == 0 and c.isdigit()) else "_%02x" % ord(c)
                for i, c in enumerate(u)))' "$1")
        busctl --system get-property org.gpupass.cluster1 "$p" org.gpupass.cluster1.Vm "$2" | sed 's/^[a-z]* //'
}
wait_state() { # uuid property value, up to 20 s
        wait_until 20 "$2 of $1 to be $3" output_is "\"$3\"" vm_state "$1" "$2"
}

start_libvirtd
foreign=$(virsh -q -c "$URI" list --uuid | head -1) # the test driver's own domain: not gpupass's
# beta's "libvirtd": accepts, reads, never answers (a hung daemon, or ssh stuck halfway).
python3 -c 'import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(8)
conns = []
while True: conns.append(s.accept()[0])' "$TEST_DIR/hung-sock" &
PIDS+=($!)
HUNG="test+unix:///default?socket=$TEST_DIR/hung-sock"
start_host alpha "$FIX/single.ini"
start_host beta "$FIX/single.ini"
start_bus open
mkdir -p "$TEST_DIR/agg/etc"
{ printf '[Cluster]\nAdminGroup=gpupass\nShutdownTimeoutSec=5\n'
  printf '\n[Host alpha]\nAddress=unix:path=%s/alpha/bus\nRuntime=libvirt\nLibvirtUri=%s\n' "$TEST_DIR" "$URI"
  printf '\n[Host beta]\nAddress=unix:path=%s/beta/bus\nRuntime=libvirt\nLibvirtUri=%s\n' "$TEST_DIR" "$HUNG"
} >"$TEST_DIR/agg/etc/clusterd.conf"
run_clusterd agg
LOG=$TEST_DIR/agg.log
wait_host alpha && pass "alpha up" || fail "alpha: $(cluster ListHosts)"
wait_for_log "$LOG" "libvirt at $URI (host alpha) is connected, 1 domains running" &&
        pass "connected to libvirtd over its socket; its one domain listed" || fail "no connection in the log"

wait_host beta && pass "beta up (its agent)" || fail "beta: $(cluster ListHosts)"

# beta's libvirt hangs: a VM placed there is refused (its libvirt is not connected), its claim released;
# nothing else waits for beta.
h=$(cluster CreateVm sut slow 1 1024 | cut -d'"' -f2)
cluster SetVmGpus ss slow "1:NVIDIA Tesla M60" >/dev/null
cluster SetVmAffinity sas slow 1 beta
SENDARGS=(string:slow)
cexpect org.gpupass.Error.RuntimeFailed "libvirt at $HUNG is not connected yet" -- PowerOn s slow
assert_eq '""' "$(host_owner beta 0000:3b:00.0)" "slow's claim on beta released"
wait_state "$h" RuntimeState connecting && pass "slow's RuntimeState: connecting" || fail "RuntimeState: $(vm_state "$h" RuntimeState)"

u=$(cluster CreateVm sut web 1 1024 | cut -d'"' -f2)
cluster SetVmGpus ss web "1:NVIDIA Tesla M60" >/dev/null
cluster SetVmAffinity sas web 1 alpha
assert_eq 'sas "alpha" 1 "0000:3b:00.0"' "$(cluster PowerOn s web 2>&1)" "web powered on"
assert_eq running "$(domstate "$u")" "virsh (another client of the same libvirtd) sees web's domain running"
wait_state "$u" RuntimeState running && pass "RuntimeState running" || fail "RuntimeState: $(vm_state "$u" RuntimeState)"

# Stopped by another libvirt client: the lifecycle event comes over the socket, the VM is off.
virsh -q -c "$URI" destroy "$u" >/dev/null
wait_state "$u" Power off && pass "virsh destroy: web is off" || fail "Power: $(vm_state "$u" Power)"
wait_until 10 "alpha's 0000:3b:00.0 to be released" output_is '""' host_owner alpha 0000:3b:00.0 || true
assert_eq '""' "$(host_owner alpha 0000:3b:00.0)" "its claim released"

# libvirtd goes away: the link is unreachable (close callback); a PowerOff cannot stop the domain and says so.
cluster PowerOn s web >/dev/null
kill "$LIBVIRTD_PID"; wait "$LIBVIRTD_PID" 2>/dev/null || true
wait_state "$u" RuntimeState unreachable && pass "libvirtd gone: RuntimeState unreachable" ||
        fail "RuntimeState: $(vm_state "$u" RuntimeState)"
wait_for_log "$LOG" "libvirt at $URI (host alpha) is unreachable" && pass "the log says why" || fail "no unreachable in the log"
SENDARGS=(string:web)
cexpect org.gpupass.Error.HostUnreachable "is unreachable: the domain of VM web cannot be stopped now" -- PowerOff s web
assert_contains "$(host_owner alpha 0000:3b:00.0)" "$u" "its GPU stays claimed while the domain may run"

# libvirtd back (a fresh test driver: the domain is gone): reconnected with backoff, the PowerOff goes on.
start_libvirtd
wait_for_log "$LOG" "libvirt at $URI (host alpha) is connected" && pass "reconnected" || fail "no reconnection"
wait_state "$u" Power off && pass "once libvirt answers again the PowerOff goes on: web off" || fail "Power: $(vm_state "$u" Power)"
wait_until 10 "alpha's 0000:3b:00.0 to be released" output_is '""' host_owner alpha 0000:3b:00.0 || true
assert_eq '""' "$(host_owner alpha 0000:3b:00.0)" "its claim released once libvirt said no domain runs"
assert_eq 'sas "alpha" 1 "0000:3b:00.0"' "$(cluster PowerOn s web 2>&1)" "web powered on again over the new connection"
assert_eq running "$(domstate "$u")" "its domain runs in the new libvirtd"
cluster PowerOff s web
assert_contains "$(domstate "$u")" "failed to get domain" "PowerOff (ACPI shutdown) stopped it"
assert_eq running "$(domstate "$foreign")" "the domain gpupass does not know was never touched"

finish
