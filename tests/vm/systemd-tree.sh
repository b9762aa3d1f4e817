#!/bin/bash
# The files a systemd boot of the guest adds to its root (run-vm.sh runs this on the host, where it is fast;
# guest-systemd.sh unpacks the tree over the guest's overlay root, the host's own files stay untouched):
#  - gpupass as an operator installs it: `meson install --destdir` (units, udev rules, modules-load.d file,
#    bus policies, binaries where pkg-config says);
#  - /etc/gpupass/passthrough.d listing the boot's pass-through slots (run-vm.sh gives a systemd boot a
#    cirrus-vga behind root port rp2 at 0000:03:00.0, cold, and an empty hot-plug root port rp3 whose device
#    will be 0000:04:00.0);
#  - gpupass-vm.target, which systemd starts: gpupass-vm.service runs guest-run.sh (the scenarios) and powers
#    the guest off when it ends;
#  - masks (links to /dev/null) for what the host's units would start and the test does not need: every
#    generator (fstab, crypttab, getty...), and every unit the early targets want (disks, mounts, timers, the
#    host's own sockets: libvirt, cockpit) but journald, udevd with its coldplug trigger, modules-load
#    (vfio-pci) and dbus, so that the boot under TCG stays short.
# Usage: systemd-tree.sh OUT BUILD_DIR
set -euo pipefail
out=$1 build=$2
meson install -C "$build" --destdir "$out" --no-rebuild --quiet

mkdir -p "$out/etc/gpupass/passthrough.d"
touch "$out/etc/gpupass/passthrough.d/0000:03:00.0" "$out/etc/gpupass/passthrough.d/0000:04:00.0"

etc=$out/etc/systemd/system
mkdir -p "$etc" "$out/etc/systemd/system-generators"
for g in /lib/systemd/system-generators/*; do
        ln -sfn /dev/null "$out/etc/systemd/system-generators/${g##*/}"
done
declare -A keep=()
for u in systemd-journald.service systemd-journald.socket systemd-journald-dev-log.socket systemd-udevd.service \
         systemd-udevd-control.socket systemd-udevd-kernel.socket systemd-udev-trigger.service \
         systemd-modules-load.service kmod-static-nodes.service dbus.socket; do
        keep[$u]=1
done
for t in sysinit local-fs swap cryptsetup veritysetup integritysetup sockets timers paths basic; do
        for w in /lib/systemd/system/$t.target.wants/* /etc/systemd/system/$t.target.wants/*; do
                [ -e "$w" ] || [ -L "$w" ] || continue
                [ -n "${keep[${w##*/}]:-}" ] || ln -sfn /dev/null "$etc/${w##*/}"
        done
done

cat >"$etc/gpupass-vm.target" <<'EOF'
[Unit]
Description=gpupass vm suite
Requires=basic.target gpupass-vm.service
After=basic.target
EOF
cat >"$etc/gpupass-vm.service" <<'EOF'
[Unit]
Description=gpupass vm suite: the scenarios
After=basic.target dbus.socket systemd-udev-trigger.service
Wants=dbus.socket
SuccessAction=poweroff-force
FailureAction=poweroff-force
[Service]
Type=oneshot
ExecStart=/bin/bash /gpupass/src/tests/vm/guest-run.sh
StandardOutput=journal+console
StandardError=journal+console
EOF
