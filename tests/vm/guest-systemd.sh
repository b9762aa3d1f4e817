#!/bin/bash
# PID 1 of a systemd boot (guest-run.sh execs this when the kernel command line has gpupass.init=systemd):
# unpacks the tree systemd-tree.sh made on the host (/results/systemd-tree: gpupass installed, the boot's
# passthrough.d, the test's target and masks) over the overlay root, and execs the host's own systemd (252
# on Debian 12) on it, which starts gpupass-vm.target. The host's files stay untouched (tmpfs overlay).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
echo "guest: [$(cut -d' ' -f1 /proc/uptime) s] unpacking the installed tree" >>/results/guest.log
# tar, not cp -a: /lib is a link to usr/lib here (merged /usr), a directory in the tree.
if ! tar -C /results/systemd-tree -cf - . | tar -C / -xf - --keep-directory-symlink; then
        echo "guest-systemd: unpacking /results/systemd-tree failed" >>/results/guest.log
fi
echo "guest: [$(cut -d' ' -f1 /proc/uptime) s] exec systemd" >>/results/guest.log
exec /lib/systemd/systemd --unit=gpupass-vm.target --show-status=false --log-level=notice
