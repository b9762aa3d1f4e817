#!/bin/bash
# The meson test of the vm suite: boots Debian's kernel in QEMU (TCG) with an emulated IOMMU and the
# emulated devices of tests/vm/README.md, runs the named scenarios in the guest against the real
# vfio-pci, and prints their TAP. Usage: run-vm.sh BUILD_DIR SOURCE_DIR BOOT[+BOOT...], where a BOOT is
# SCENARIO[,SCENARIO...][@DEVICE]: one guest boot per BOOT, in order, all sharing one results directory
# (the reboot stand-in keeps the agent's state there); DEVICE is the QEMU device in the hot-plug slot
# for that boot (default bochs-display).
set -euo pipefail
# Absolute and without symlinks: the guest finds both trees through its 9p view of this machine's root.
build=$(cd "$1" && pwd -P) src=$(cd "$2" && pwd -P) boots=$3
here=$(cd "$(dirname "$0")" && pwd)
vm=${GPUPASS_VM_DIR:-$build/tests/vm}
deadline=${GPUPASS_VM_DEADLINE:-120}           # each guest boot, boot to power-off
scenario_timeout=${GPUPASS_SCENARIO_TIMEOUT:-90} # each scenario inside the guest
# Cached after the first run (the meson test vm/guest-image runs first); fails, never skips, without it.
if ! out=$(bash "$here/prepare-guest.sh" "$vm" 2>&1); then
        echo "$out" | grep -v '^1\.\.' | sed 's/^not ok 1 - /not ok 1 - preparing the guest: /'
        echo "1..1"
        exit 1
fi
version=$(cat "$vm/kernel.version")
results=$(mktemp -d /tmp/gpupass-vm.XXXXXX)
chmod 0777 "$results"
qemu_pid=
cleanup() {
        [ -z "$qemu_pid" ] || kill "$qemu_pid" 2>/dev/null || true
        if [ -n "${KEEP_RESULTS:-}" ]; then echo "# results kept in $results"; else rm -rf "$results"; fi
}
trap cleanup EXIT
trap 'exit 143' TERM INT
export GPUPASS_VM_RESULTS=$results

# A guest kernel that locks up under TCG is not what a scenario judges: seen once in about fifty boots
# (systemd-udevd stuck on a CPU, "soft lockup" on the console every 28 s until the time bound, 20 minutes
# later). After LOCKUP_SECONDS of it the guest is killed and the boot done again, once per test; a second
# lockup fails the test ("did not finish"), with the console's lines printed.
LOCKUP_SECONDS=60
locked_up=0
console_start=0
guest_locked_up() { # -> true once this boot's console shows a CPU stuck for LOCKUP_SECONDS or more
        local stuck
        stuck=$(tail -c +$((console_start + 1)) "$results/console.log" 2>/dev/null |
                sed -n 's/.*soft lockup - CPU#[0-9]* stuck for \([0-9]*\)s.*/\1/p' | tail -1)
        [ -n "$stuck" ] && [ "$stuck" -ge "$LOCKUP_SECONDS" ]
}

# boot SCENARIOS DEVICE: one guest boot running SCENARIOS with DEVICE in the hot-plug slot.
boot() {
        local init=plain s
        # A scenario that starts with "# guest-init: systemd" runs under systemd as PID 1 (guest-systemd.sh)
        # with gpupass installed as an operator installs it (systemd-tree.sh: `meson install` into a tree
        # here, unpacked over the guest's root there). Such a boot also has two pass-through slots (listed in
        # passthrough.d): a cirrus-vga behind root port rp2 (03:00.0), an empty hot-plug root port rp3 (04:00.0).
        for s in ${1//,/ }; do
                if head -5 "$here/scenario-$s.sh" | grep -qx '# guest-init: systemd'; then init=systemd; fi
        done
        local extra=()
        if [ $init == systemd ]; then
                if [ ! -d "$results/systemd-tree" ]; then
                        bash "$here/systemd-tree.sh" "$results/systemd-tree" "$build" >"$results/install.log" 2>&1 || {
                                echo "# systemd-tree.sh (meson install --destdir) failed:"
                                sed 's/^/#   /' "$results/install.log"
                        }
                fi
                extra=(-device pcie-root-port,id=rp2,bus=pcie.0,addr=0x6,slot=2 -device cirrus-vga,bus=rp2
                       -device pcie-root-port,id=rp3,bus=pcie.0,addr=0x7,slot=3)
        fi
        qemu=(qemu-system-x86_64 -accel tcg -cpu max -m 2048 -smp 2 -nographic -no-reboot
              -machine q35,kernel-irqchip=split -device intel-iommu,intremap=on,caching-mode=on
              # Native PCIe hotplug (pciehp) on the root port instead of ACPI hotplug, the default since QEMU 6.1.
              -global ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off
              -kernel "$vm/vmlinuz" -initrd "$vm/initramfs.cpio.gz"
              -append "console=ttyS0 intel_iommu=on no_timer_check panic=-1 loglevel=4 gpupass.src=$src gpupass.build=$build gpupass.modules=$vm/kernel/lib/modules/$version gpupass.scenarios=$1 gpupass.timeout=$scenario_timeout gpupass.init=$init"
              # This machine's root (read-only) and the results directory, at fixed slots out of the devices' way.
              -fsdev "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap"
              -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot,bus=pcie.0,addr=0x10
              -fsdev "local,id=results,path=$results,security_model=none"
              -device virtio-9p-pci,fsdev=results,mount_tag=results,bus=pcie.0,addr=0x11
              -qmp "unix:$results/qmp.sock,server=on,wait=off"
              # The boot VGA (boot_vga=1).
              -device VGA,bus=pcie.0,addr=0x2
              # A display device with an audio function in the same slot and group.
              -device bochs-display,bus=pcie.0,addr=0x3.0,multifunction=on
              -device ich9-intel-hda,bus=pcie.0,addr=0x3.1
              # A display device behind a PCIe-to-PCI bridge, sharing its group with the bridge and a NIC on e1000.
              -device pcie-pci-bridge,id=br1,bus=pcie.0,addr=0x4
              -device bochs-display,bus=br1,addr=1
              -device e1000,bus=br1,addr=2,netdev=n0 -netdev user,id=n0
              # A hot-pluggable display device in its own group, for the reflash scenario. (virtio-gpu-pci is not
              # hot-pluggable in QEMU 7.2: "expects a pluggable device type"; qxl and bochs-display are.)
              -device pcie-root-port,id=rp1,bus=pcie.0,addr=0x5,slot=1
              -device "$2,bus=rp1,id=hotgpu"
              "${extra[@]}")
        start=$(date +%s)
        rm -f "$results/qmp.sock" "$results/request-reflash" "$results/reflash-done" "$results/request-hotplug" \
                "$results/hotplug-done"
        console_start=$(stat -c %s "$results/console.log" 2>/dev/null || echo 0)
        locked_up=0
        "${qemu[@]}" >>"$results/console.log" 2>&1 &
        qemu_pid=$!
        # The reflash scenario asks the host, through the results share, to swap the hot-pluggable device.
        while kill -0 $qemu_pid 2>/dev/null; do
                if [ -f "$results/request-reflash" ] && [ ! -f "$results/reflash-done" ]; then
                        rc=0
                        python3 "$here/qmp-reflash.py" "$results/qmp.sock" >"$results/qmp.log" 2>&1 || rc=$?
                        echo $rc >"$results/reflash-done.tmp" && mv "$results/reflash-done.tmp" "$results/reflash-done"
                fi
                # A hot add: the guest names the QEMU device, the root port and an id (systemd scenario).
                if [ -f "$results/request-hotplug" ] && [ ! -f "$results/hotplug-done" ]; then
                        rc=0
                        # shellcheck disable=SC2046 # three words: driver, bus, id
                        python3 "$here/qmp-reflash.py" "$results/qmp.sock" add $(cat "$results/request-hotplug") \
                                >"$results/qmp-hotplug.log" 2>&1 || rc=$?
                        echo $rc >"$results/hotplug-done.tmp" && mv "$results/hotplug-done.tmp" "$results/hotplug-done"
                fi
                if guest_locked_up; then
                        echo "# guest killed: its kernel locked up (console below)"
                        tail -c +$((console_start + 1)) "$results/console.log" |
                                grep -m4 'soft lockup\|self-detected stall' | sed 's/^/#   /' || true
                        locked_up=1
                        kill $qemu_pid
                        break
                fi
                if [ $(($(date +%s) - start)) -gt "$deadline" ]; then
                        echo "# guest killed: still running after its time bound of $deadline s"
                        kill $qemu_pid
                        break
                fi
                sleep 0.5
        done
        wait $qemu_pid || true
        qemu_pid=
        echo "# guest ran $(($(date +%s) - start)) s (kernel $version, TCG, $2 in the hot-plug slot); its timeline:"
        sed 's/^guest: /#   /' "$results/guest.log" 2>/dev/null | grep '^#   \[' || true
        cat "$results/guest.log" >>"$results/guest.log.all" 2>/dev/null || true; rm -f "$results/guest.log"
        echo "# what the kernel showed after udev settled:"
        sed 's/^/#   /' "$results/kernel-facts.txt" 2>/dev/null || echo "#   (no kernel-facts.txt: the guest did not get that far)"
        rm -f "$results/kernel-facts.txt"
}
total_start=$(date +%s)
scenarios=
for b in ${boots//+/ }; do
        list=${b%@*} device=bochs-display
        [ "$list" == "$b" ] || device=${b#*@}
        boot "$list" "$device"
        if [ $locked_up == 1 ] && [ -z "${relocked:-}" ]; then
                relocked=1
                echo "# booting again, once: the guest's kernel locked up, not the scenario"
                for s in ${list//,/ }; do rm -f "$results/$s.tap" "$results/$s.rc" "$results/$s.err"; done
                boot "$list" "$device"
        fi
        scenarios+="${scenarios:+,}$list"
done
[ "$boots" == "${boots//+/}" ] || echo "# $(echo "${boots//+/ }" | wc -w) boots in $(($(date +%s) - total_start)) s"

n=0 failed=0
for s in ${scenarios//,/ }; do
        if [ ! -f "$results/$s.rc" ]; then
                n=$((n + 1)); failed=1
                echo "not ok $n - scenario $s did not finish"
                continue
        fi
        while IFS= read -r line; do
                case $line in
                "ok - "*|"not ok - "*)
                        n=$((n + 1))
                        # A known bug's check carries a TAP TODO: meson counts its failure as expected.
                        if [[ $line == "ok - "* ]]; then echo "ok $n - $s: ${line#ok - }"
                        elif [[ $line == *" # TODO "* ]]; then echo "not ok $n - $s: ${line#not ok - }"
                        else echo "not ok $n - $s: ${line#not ok - }"; failed=1; fi ;;
                *) echo "# $s: $line" ;;
                esac
        done <"$results/$s.tap"
        if [ "$(cat "$results/$s.rc")" != 0 ] && [ $failed = 0 ]; then
                n=$((n + 1)); failed=1
                rc=$(cat "$results/$s.rc")
                [ "$rc" != 124 ] || rc="124: killed by its time bound of $scenario_timeout s"
                echo "not ok $n - scenario $s exited with $rc"
        fi
done
if [ $failed != 0 ]; then
        for f in guest.log.all console.log journal.txt; do
                sed "s/^/# $f: /" "$results/$f" 2>/dev/null | tail -60 || true
        done
        for s in ${scenarios//,/ }; do sed "s/^/# $s.err: /" "$results/$s.err" 2>/dev/null | tail -40 || true; done
fi
echo "1..$n"
exit $failed
