#!/bin/bash
# `meson install` into a DESTDIR: every file where pkg-config (systemd, udev, dbus-1) says it belongs, or
# at the usual fallback when a .pc file is missing; the installed units pass `systemd-analyze verify` and
# keep their `systemd-analyze security` exposure at or below 3.0 (printed); the installed daemons start
# with the installed sample configurations and policy files. Runs inside gpupass-simhost for the agent.
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
: "${GPUPASS_BUILD_ROOT:?}" "${GPUPASS_PREFIX:?}" "${GPUPASS_LIBEXECDIR:?}" "${GPUPASS_BINDIR:?}"
: "${GPUPASS_SYSCONFDIR:?}" "${GPUPASS_DATADIR:?}"
D=$TEST_DIR/destdir

# pc_var PACKAGE VARIABLE FALLBACK: where the package's .pc file says, else FALLBACK.
pc_var() {
        if pkg-config --exists "$1"; then pkg-config --variable="$2" "$1"; else echo "$3"; fi
}
abs() { case $1 in /*) echo "$1" ;; *) echo "$GPUPASS_PREFIX/$1" ;; esac; }
unitdir=$(pc_var systemd systemdsystemunitdir "$GPUPASS_PREFIX/lib/systemd/system")
modulesloaddir=$(pc_var systemd modulesloaddir "$GPUPASS_PREFIX/lib/modules-load.d")
udevdir=$(pc_var udev udevdir "$GPUPASS_PREFIX/lib/udev")
dbusdatadir=$(pc_var dbus-1 datadir /usr/share) # the system bus's own datadir, whatever our prefix
interfacesdir=$(pc_var dbus-1 interfaces_dir "$(abs "$GPUPASS_DATADIR")/dbus-1/interfaces")
libexecdir=$(abs "$GPUPASS_LIBEXECDIR")
bindir=$(abs "$GPUPASS_BINDIR")
sysconfdir=$(abs "$GPUPASS_SYSCONFDIR")

out=$(meson install -C "$GPUPASS_BUILD_ROOT" --destdir "$D" --no-rebuild --quiet 2>&1) && rc=0 || rc=$?
assert_eq 0 "$rc" "meson install --destdir succeeds $out"
echo "# installed: $(cd "$D" && find . -type f | sort | tr '\n' ' ')"

check_file() { # path-in-destdir what
        if [ -f "$D$1" ]; then pass "$2: $1"; else fail "$2: $1 not installed"; fi
}
check_exec() {
        if [ -x "$D$1" ] && [ -f "$D$1" ]; then pass "$2: $1"; else fail "$2: $1 not installed executable"; fi
}
check_exec "$libexecdir/gpupassd" "the agent"
check_exec "$libexecdir/gpupass-clusterd" "the aggregator"
check_exec "$bindir/gpupassctl" "the CLI"
# A file, not a link: AppArmor's libvirtd profile allows executing /etc/libvirt/hooks/** (README "libvirt hook").
check_exec "$sysconfdir/libvirt/hooks/qemu.d/gpupass" "the libvirt hook in libvirt's hook directory"
if [ -L "$D$sysconfdir/libvirt/hooks/qemu.d/gpupass" ]; then fail "the hook is a link"; else pass "the hook is a file, not a link"; fi
out=$("$D$sysconfdir/libvirt/hooks/qemu.d/gpupass" 2>&1) && rc=0 || rc=$?
assert_eq 2 "$rc" "the installed hook runs (usage, exit 2, without arguments)"
check_file "$unitdir/gpupassd.service" "the agent's unit in systemdsystemunitdir"
check_file "$unitdir/gpupass-clusterd.service" "the aggregator's unit in systemdsystemunitdir"
check_file "$udevdir/rules.d/70-gpupass.rules" "udev rules in udevdir/rules.d"
check_file "$modulesloaddir/gpupass.conf" "modules-load.d file in modulesloaddir"
assert_eq vfio-pci "$(grep -v '^#' "$D$modulesloaddir/gpupass.conf")" "modules-load.d loads vfio-pci and nothing else"
check_file "$dbusdatadir/dbus-1/system.d/org.gpupass.agent1.conf" "the agent's bus policy in system.d"
check_file "$dbusdatadir/dbus-1/system.d/org.gpupass.cluster1.conf" "the aggregator's bus policy in system.d"
for xml in "$GPUPASS_SOURCE_ROOT"/dbus/*.xml; do
        check_file "$interfacesdir/$(basename "$xml")" "introspection XML in dbus-1/interfaces"
        cmp -s "$xml" "$D$interfacesdir/$(basename "$xml")" && pass "$(basename "$xml") installed as in dbus/" ||
                fail "$(basename "$xml") differs from dbus/"
done
# The Cockpit package: every file of cockpit/ but its meson.build and screenshots, as in the repository.
for f in "$GPUPASS_SOURCE_ROOT"/cockpit/*.*; do
        case $f in */meson.build) continue ;; esac
        cmp -s "$f" "$D$(abs "$GPUPASS_DATADIR")/cockpit/gpupass/$(basename "$f")" &&
                pass "the Cockpit package's $(basename "$f") in datadir/cockpit/gpupass" ||
                fail "the Cockpit package's $(basename "$f") not installed in datadir/cockpit/gpupass"
done
check_file "$sysconfdir/gpupass/gpupassd.conf" "sample agent configuration"
check_file "$sysconfdir/gpupass/clusterd.conf" "sample aggregator configuration"

for unit in gpupassd gpupass-clusterd; do
        exec_start=$(sed -n 's/^ExecStart=//p' "$D$unitdir/$unit.service")
        check_exec "$exec_start" "$unit.service's ExecStart is the installed binary"
done

# systemd-analyze verify --root looks for everything the units name (dbus.service, sysinit.target,
# /bin/kill) under that root: give it the host's units and kill beside the installed tree. It exits 0
# on warnings, so any output fails the test.
if command -v systemd-analyze >/dev/null; then
        R=$TEST_DIR/verify-root
        cp -a "$D" "$R"
        mkdir -p "$R$unitdir" "$R/usr/bin"
        [ -d /lib/systemd/system ] && cp -an /lib/systemd/system/. "$R$unitdir/"
        cp "$(type -P kill)" "$R/usr/bin/kill"
        [ -e "$R/bin" ] || ln -s usr/bin "$R/bin"
        out=$(systemd-analyze verify --root="$R" "$unitdir/gpupassd.service" "$unitdir/gpupass-clusterd.service" 2>&1) &&
                rc=0 || rc=$?
        assert_eq "0:" "$rc:$out" "systemd-analyze verify of the installed units is clean"
        for unit in gpupassd gpupass-clusterd; do
                exposure=$(systemd-analyze security --offline=true --root="$D" "$unit.service" 2>&1 |
                        sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
                echo "# systemd-analyze security --offline=true $unit.service: exposure $exposure"
                if [ -n "$exposure" ] && awk "BEGIN { exit !($exposure <= 3.0) }"; then
                        pass "$unit.service exposure $exposure <= 3.0"
                else
                        fail "$unit.service exposure [$exposure] above 3.0"
                fi
        done
else
        echo "# systemd-analyze not installed: verify and security not run"
fi

# The installed agent with the installed sample configuration, on a default-deny bus with both installed
# policy files.
policies=$D$dbusdatadir/dbus-1/system.d
printf '<busconfig><include>%s</include><include>%s</include></busconfig>\n' \
        "$policies/org.gpupass.agent1.conf" "$policies/org.gpupass.cluster1.conf" >"$TEST_DIR/policies.conf"
start_bus policy "$TEST_DIR/policies.conf"
mkdir -p "$TEST_DIR/etc"
cp "$D$sysconfdir/gpupass/gpupassd.conf" "$TEST_DIR/etc/"
# bounding_set UNIT: the unit's CapabilityBoundingSet= as setpriv options (-all when empty).
bounding_set() {
        local caps c out=-all
        caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$D$unitdir/$1")
        for c in $caps; do
                c=${c#CAP_}
                out+=",+${c,,}"
        done
        echo "$out"
}
# securebits UNIT: the unit's SecureBits= as a setpriv option (nothing when it sets none).
securebits() {
        local bits b out=""
        bits=$(sed -n 's/^SecureBits=//p' "$D$unitdir/$1")
        for b in $bits; do
                out+="${out:+,}+${b//-/_}"
        done
        echo "${out:+--securebits=$out}"
}
# Under the unit's bounding set, securebits and no_new_privs, as systemd would start it. The simulated host's sysfs
# files belong to root, as the kernel's do, so this proves the set is enough for discovery and binding;
# what the set adds for the real kernel (config space past byte 64, VFIO nodes) is explained in the unit.
printf '#!/bin/sh\nexec setpriv --no-new-privs --bounding-set=%s %s --inh-caps=-all -- %s\n' \
        "$(bounding_set gpupassd.service)" "$(securebits gpupassd.service)" "$D$libexecdir/gpupassd" \
        >"$TEST_DIR/gpupassd-confined"
chmod +x "$TEST_DIR/gpupassd-confined"
echo "# gpupassd under setpriv --bounding-set=$(bounding_set gpupassd.service)"
GPUPASSD=$TEST_DIR/gpupassd-confined start_agent
# CAP_CHOWN 0, CAP_DAC_OVERRIDE 1, CAP_FOWNER 3, CAP_SYS_ADMIN 21
assert_eq "CapBnd:	000000000020000b" "$(grep CapBnd /proc/"$AGENT_PID"/status)" "the agent runs with the unit's bounding set"
assert_eq "CapEff:	000000000020000b" "$(grep CapEff /proc/"$AGENT_PID"/status)" "and has those capabilities in effect"
out=$(busctl --system get-property org.gpupass.agent1 /org/gpupass/agent1 org.gpupass.agent1.Manager Version)
assert_contains "$out" '"' "the installed gpupassd serves its Manager with the sample configuration"
out=$(busctl --system call org.gpupass.agent1 "$(gpu_path 0000:3b:00.0)" org.gpupass.agent1.Gpu Prepare 2>&1) &&
        pass "Prepare works under the unit's bounding set" || fail "Prepare under the bounding set: $out"
assert_eq vfio-pci "$(sysfs_driver 0000:3b:00.0)" "the GPU is on vfio-pci"

# The installed aggregator with its sample configuration (no hosts) on the same bus.
mkdir -p "$TEST_DIR/cluster-etc"
cp "$D$sysconfdir/gpupass/clusterd.conf" "$TEST_DIR/cluster-etc/"
CONFIGURATION_DIRECTORY="$TEST_DIR/cluster-etc" STATE_DIRECTORY="$TEST_DIR/cluster-state" \
        setpriv --no-new-privs --bounding-set="$(bounding_set gpupass-clusterd.service)" \
        $(securebits gpupass-clusterd.service) --inh-caps=-all -- \
        "$D$libexecdir/gpupass-clusterd" 2>>"$TEST_DIR/clusterd.log" &
CLUSTERD_PID=$!
PIDS+=("$CLUSTERD_PID")
list_hosts() { out=$(busctl --system call org.gpupass.cluster1 /org/gpupass/cluster1 org.gpupass.cluster1.Manager ListHosts 2>&1); }
wait_until --while "$CLUSTERD_PID" 20 "the installed gpupass-clusterd to answer ListHosts" list_hosts || true
assert_eq "a(ssssutu) 0" "$out" "the installed gpupass-clusterd starts with the sample clusterd.conf (no hosts), without capabilities"
assert_eq "CapBnd:	0000000000000000" "$(grep CapBnd /proc/"$CLUSTERD_PID"/status)" "the aggregator runs with no capability"
finish
