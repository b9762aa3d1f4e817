#!/bin/bash
# guest-init: systemd
# gpupass as an operator installs it, under a real systemd (PID 1, the host's systemd 252 over the shared
# root; guest-systemd.sh) with its udev and dbus-daemon: the installed udev rule keeps the host drivers off
# the devices listed in passthrough.d, at boot (coldplug) and at a hot add; udev starts gpupassd.service;
# a prepare -> claim -> OpenVfio -> release (with the kernel's reset) -> return cycle through the installed,
# hardened units; the journal fields; the watchdog; reload; gpupass-clusterd.service over the agent.
# The devices of this boot (run-vm.sh): 02:00.0 a virtio-gpu-pci behind root port rp1 (reset_method
# "flr pm bus"); 03:00.0 a cirrus-vga behind rp2, listed in passthrough.d; rp3 empty until the scenario asks
# the host to hot-add a qxl there (04:00.0, listed in passthrough.d too); 00:03.0 the bochs-display on the
# root bus, which the kernel cannot reset.
source "$GPUPASS_SOURCE_ROOT/tests/integration/lib.sh"
# The installed gpupassctl (bindir on systemd's default PATH: prefix /usr/local or /usr).
if ! GPUPASSCTL=$(command -v gpupassctl); then
        fail "gpupassctl is not installed in PATH ($PATH)"
        finish
fi
V=0000:02:00.0
COLD=0000:03:00.0
HOT=0000:04:00.0
NORESET=0000:00:03.0

unit_prop() { systemctl show -p "$2" --value "$1"; }
is_active() { [ "$(systemctl is-active "$1")" == active ]; }
# journal_has TEXT MATCHES...: a journal entry that MATCHES (journalctl's matches or -u UNIT) has TEXT.
journal_has() {
        local text=$1
        shift
        journalctl --no-pager -o cat "$@" 2>/dev/null | grep -qF -- "$text"
}
# journal_wait TEXT MATCHES...: the same, waiting up to 20 s (journald gets the lines asynchronously).
journal_wait() { wait_until 20 "the journal to show \"$1\"" journal_has "$@"; }
# check_exposure UNIT: systemd-analyze security of the running UNIT, printed; at most 3.0.
check_exposure() {
        local out score
        out=$(systemd-analyze security --no-pager "$1" 2>&1) || true
        echo "$out" | grep -F "✗" | sed "s/^/# $1: /"
        score=$(echo "$out" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
        echo "# systemd-analyze security $1 (running): exposure $score"
        if [ -n "$score" ] && awk "BEGIN { exit !($score <= 3.0) }"; then pass "$1 exposure $score <= 3.0"
        else fail "$1 exposure [$score] above 3.0"; fi
}
on_driver() { [ "$(sysfs_driver "$1")" == "$2" ]; }

echo "# $(systemd --version | head -1); guest up $(cut -d' ' -f1 /proc/uptime) s"
assert_eq systemd "$(cat /proc/1/comm)" "systemd is PID 1"
assert_eq "active" "$(systemctl is-active dbus.service)" "the system bus is the guest's dbus-daemon under systemd"

# 1. Coldplug: 03:00.0 is listed in passthrough.d; the installed rule set its override before udev loaded
# cirrus, so cirrus never bound it, and vfio-pci (loaded by the installed modules-load.d file) has it.
assert_eq "vfio-pci" "$(sysfs_override $COLD)" "coldplug: udev's rule wrote driver_override of $COLD (listed in passthrough.d)"
assert_eq "vfio-pci" "$(sysfs_driver $COLD)" "coldplug: $COLD is on vfio-pci after boot"
assert_eq "yes" "$([ -d /sys/module/cirrus ] && echo yes || echo no)" "udev loaded its host driver (cirrus) all the same"
assert_not_contains "$(dmesg)" "cirrus 2.0.0 2019 for $COLD" "cirrus never bound $COLD (no \"Initialized cirrus\" for it in dmesg)"
assert_eq "yes" "$([ -d /sys/module/vfio_pci ] && echo yes || echo no)" "vfio-pci was loaded at boot (modules-load.d/gpupass.conf)"

# 2. gpupassd was started by udev (the rule's SYSTEMD_WANTS on display devices), not by us.
wait_until 60 "gpupassd.service to be active" is_active gpupassd.service || true
assert_eq "active" "$(systemctl is-active gpupassd.service)" "gpupassd.service is active without anyone starting it"
wanted_by=$(unit_prop gpupassd.service WantedBy)
echo "# gpupassd.service WantedBy=$wanted_by"
assert_contains "$wanted_by" "0000:00:03.0.device" "a display device's unit wants it (udev rule: SYSTEMD_WANTS)"
assert_eq "plugged" "$(unit_prop sys-devices-pci0000:00-0000:00:03.0.device SubState)" \
        "the unit of 00:03.0 lives on after bochs-drm's bind event (the rule tags every event)"
assert_eq '"vfio"' "$(gpu_prop $COLD State)" "the agent sees $COLD as prepared (State vfio)"
assert_not_contains "$(journalctl --no-pager -o cat -u gpupassd.service)" "listed for pass-through: IOMMU group" \
        "the agent had nothing to bind itself: udev had done it"
watchdog_start=$(unit_prop gpupassd.service WatchdogTimestampMonotonic)
assert_eq "30s" "$(unit_prop gpupassd.service WatchdogUSec)" "the unit's watchdog is armed (WatchdogSec=30s)"

# 3. The hardening as systemd applies it to the running unit.
check_exposure gpupassd.service

# 4. The cycle through the hardened unit, on the virtio-gpu-pci, which the kernel can reset by FLR.
assert_eq "flr pm bus" "$(cat /sys/bus/pci/devices/$V/reset_method)" "(the kernel offers flr pm bus for $V)"
assert_eq '"flr pm bus"' "$(gpu_prop $V ResetMethod)" "ResetMethod of $V is the kernel's"
assert_eq '""' "$(gpu_prop $NORESET ResetMethod)" "ResetMethod of $NORESET, which the kernel cannot reset, is empty"
assert_contains "$(ctl show $NORESET)" "warning: the kernel has no way to reset this GPU" "gpupassctl show warns about it before any claim"
assert_contains "$(journalctl --no-pager -o cat GPUPASS_GPU=$NORESET)" "GPU $NORESET has no reset method" \
        "and the agent said so at discovery (journalctl GPUPASS_GPU=$NORESET)"
out=$(ctl prepare $V 2>&1) && pass "gpupassctl prepare $V" || fail "prepare: $out"
assert_eq "vfio-pci" "$(sysfs_driver $V)" "$V is on vfio-pci (sysfs)"
G=$(gpu_prop $V IommuGroup)
out=$(ctl claim $V $VM1 2>&1) && pass "gpupassctl claim $V $VM1" || fail "claim: $out"
ids="$(sed 's/0x//' /sys/bus/pci/devices/$V/vendor):$(sed 's/0x//' /sys/bus/pci/devices/$V/device)"
out=$("$GPUPASS_VM_CLIENT" openvfio $V $VM1 2>&1) || true
echo "$out" | sed 's/^/# /'
assert_contains "$out" "ids $ids uid 65534" "OpenVfio through the unit: an unprivileged process reads the IDs through VFIO"
# AllowUser: the unit's CAP_CHOWN and CAP_FOWNER on the group's node (DeviceAllow char-vfio).
out=$(ctl allow-user $V $VM1 65534 2>&1) && pass "gpupassctl allow-user $V $VM1 65534" || fail "allow-user: $out"
assert_eq "65534 600" "$(stat -c '%u %a' /dev/vfio/$G)" "/dev/vfio/$G belongs to uid 65534, mode 0600"
out=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$GPUPASS_VM_CLIENT" open $G $V 2>&1) || true
assert_contains "$out" "ids $ids uid 65534" "the granted uid opens /dev/vfio/$G itself and reads the IDs"
out=$(ctl release $V $VM1 2>&1) && pass "gpupassctl release (the reset under the unit's DeviceAllow)" || fail "release: $out"
journal_wait "IOMMU group $G released by VM $VM1, 1 device(s) reset" GPUPASS_VM=$VM1 &&
        pass "the journal says the release reset $V (journalctl GPUPASS_VM=$VM1)" || fail "no reset of $V in the journal"
journalctl --no-pager -o cat GPUPASS_VM=$VM1 | sed 's/^/# journal GPUPASS_VM: /'
assert_eq "0 600" "$(stat -c '%u %a' /dev/vfio/$G)" "the release gave /dev/vfio/$G back to root (the unit's CAP_CHOWN)"
out=$(journalctl --no-pager -o cat GPUPASS_GPU=$V)
assert_contains "$out" "claimed by VM $VM1" "journalctl GPUPASS_GPU=$V: the claim"
assert_contains "$out" "Handed 1 VFIO descriptor(s) of $V" "journalctl GPUPASS_GPU=$V: OpenVfio"
assert_contains "$(journalctl --no-pager -o verbose GPUPASS_GPU=$V)" "_SYSTEMD_UNIT=gpupassd.service" "the agent's own lines, from its unit"
out=$(ctl return $V 2>&1) && pass "gpupassctl return $V" || fail "return: $out"
assert_eq "virtio-pci" "$(sysfs_driver $V)" "$V is back on virtio-pci"
assert_eq '"host"' "$(gpu_prop $V State)" "State host"

# 5. Hot add: a qxl on rp3 (04:00.0, listed in passthrough.d). The kernel probes the loaded drivers at once
# (qxl is not loaded yet: no other qxl); udev's rule sets the override and probes vfio-pci before it loads qxl.
echo "qxl rp3 hotqxl" >"$RESULTS/request-hotplug.tmp" && mv "$RESULTS/request-hotplug.tmp" "$RESULTS/request-hotplug"
wait_until 60 "the host's hot add" test -f "$RESULTS/hotplug-done" || true
sed 's/^/# qmp: /' "$RESULTS/qmp-hotplug.log" 2>/dev/null || true
wait_until 60 "$HOT on vfio-pci" on_driver $HOT vfio-pci || true
assert_eq "vfio-pci" "$(sysfs_driver $HOT)" "hot add: $HOT (listed in passthrough.d) is on vfio-pci"
assert_eq "yes" "$([ -d /sys/module/qxl ] && echo yes || echo no)" "udev loaded its host driver (qxl)"
assert_not_contains "$(dmesg)" "Initialized qxl" "qxl never bound it"
wait_until 20 "the agent to see $HOT prepared" output_is '"vfio"' gpu_prop $HOT State || true
assert_eq '"vfio"' "$(gpu_prop $HOT State)" "the agent sees $HOT as prepared (State vfio)"
echo "# reset_method of $HOT: $(cat /sys/bus/pci/devices/$HOT/reset_method 2>&1)"
assert_eq "\"$(cat /sys/bus/pci/devices/$HOT/reset_method)\"" "$(gpu_prop $HOT ResetMethod)" "ResetMethod of $HOT is the kernel's"
out=$(ctl claim $HOT $VM2 2>&1) && pass "claim $HOT" || fail "claim $HOT: $out"
out=$(ctl release $HOT $VM2 2>&1) && pass "release $HOT" || fail "release $HOT: $out"
journal_wait "released by VM $VM2, 1 device(s) reset" GPUPASS_VM=$VM2 &&
        pass "the release reset $HOT ($(cat /sys/bus/pci/devices/$HOT/reset_method))" || fail "no reset of $HOT in the journal"

# 6. Reload: the daemon rereads its configuration and stays, same process.
pid=$(unit_prop gpupassd.service MainPID)
out=$(systemctl reload gpupassd.service 2>&1) && pass "systemctl reload gpupassd" || fail "reload: $out"
journal_wait "Configuration reloaded" -u gpupassd.service && pass "the agent reloaded" || fail "no reload in the journal"
assert_eq "active $pid" "$(systemctl is-active gpupassd.service) $(unit_prop gpupassd.service MainPID)" "still active, same process"

# 7. The aggregator's unit, over this host's agent.
printf '[Host vm]\nAddress=unix:path=/run/dbus/system_bus_socket\n' >/etc/gpupass/clusterd.conf
out=$(systemctl start gpupass-clusterd.service 2>&1) && pass "systemctl start gpupass-clusterd" || fail "start clusterd: $out"
hosts() { busctl --system call org.gpupass.cluster1 /org/gpupass/cluster1 org.gpupass.cluster1.Manager ListHosts 2>&1; }
wait_until 30 "the aggregator to see the host up" output_has '"vm" "unix:path=/run/dbus/system_bus_socket" "up"' hosts || true
assert_contains "$(hosts)" '"vm" "unix:path=/run/dbus/system_bus_socket" "up"' "gpupass-clusterd.service sees the host up"
check_exposure gpupass-clusterd.service

# 8. The watchdog: the daemon pings (the timestamp moves on; sd-event pings every half WatchdogSec).
watchdog_moved() { [ "$(unit_prop gpupassd.service WatchdogTimestampMonotonic)" != "$watchdog_start" ]; }
wait_until 40 "a watchdog ping" watchdog_moved || true
assert_eq "moved" "$(watchdog_moved && echo moved || echo still)" "the daemon pings the watchdog (WatchdogTimestamp moved on)"
finish
