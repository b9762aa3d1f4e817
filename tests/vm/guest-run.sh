#!/bin/bash
# PID 1 of the guest after switch_root: the machine's programs, the real kernel. Starts systemd-udevd
# (which binds the emulated devices' drivers), runs the scenarios named on the kernel command line and
# leaves their TAP output in /results, then powers off.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mkdir -p /run/udev /dev/pts
mount -t devpts devpts /dev/pts
for arg in $(cat /proc/cmdline); do
        case $arg in
        gpupass.src=*) SRC=${arg#gpupass.src=} ;;
        gpupass.build=*) BUILD=${arg#gpupass.build=} ;;
        gpupass.scenarios=*) SCENARIOS=${arg#gpupass.scenarios=} ;;
        esac
done
hostname gpupass-vm
echo "guest: kernel $(uname -r), udev starting" >/results/guest.log
/lib/systemd/systemd-udevd --daemon >>/results/guest.log 2>&1
udevadm trigger --type=subsystems --action=add
udevadm trigger --type=devices --action=add
udevadm settle --timeout=120
echo "guest: udev settled" >>/results/guest.log
lspci -nnk >>/results/guest.log 2>&1
for s in ${SCENARIOS//,/ }; do
        echo "guest: scenario $s" >>/results/guest.log
        GPUPASSD=$BUILD/agent/host/gpupassd GPUPASSCTL=$BUILD/agent/ctl/gpupassctl GPUPASS_SOURCE_ROOT=$SRC \
                GPUPASS_VM_CLIENT=$BUILD/tests/vm/vfio-client RESULTS=/results \
                timeout 600 bash "$SRC/tests/vm/scenario-$s.sh" >"/results/$s.tap" 2>"/results/$s.err"
        echo $? >"/results/$s.rc"
done
dmesg >/results/dmesg.txt
sync
echo o >/proc/sysrq-trigger
sleep 10
