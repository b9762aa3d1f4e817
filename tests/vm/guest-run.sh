#!/bin/bash
# PID 1 of the guest after switch_root: the machine's programs, the real kernel. Starts systemd-udevd
# (which binds the emulated devices' drivers), records what the kernel shows (kernel-facts.txt), runs the
# scenarios named on the kernel command line and leaves their TAP output in /results, then powers off.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mkdir -p /run/udev /dev/pts
mount -t devpts devpts /dev/pts
TIMEOUT=90
for arg in $(cat /proc/cmdline); do
        case $arg in
        gpupass.src=*) SRC=${arg#gpupass.src=} ;;
        gpupass.build=*) BUILD=${arg#gpupass.build=} ;;
        gpupass.scenarios=*) SCENARIOS=${arg#gpupass.scenarios=} ;;
        gpupass.timeout=*) TIMEOUT=${arg#gpupass.timeout=} ;;
        esac
done
hostname gpupass-vm
log() { echo "guest: [$(cut -d' ' -f1 /proc/uptime) s] $*" >>/results/guest.log; }
log "kernel $(uname -r), udev starting"
/lib/systemd/systemd-udevd --daemon >>/results/guest.log 2>&1
udevadm trigger --type=subsystems --action=add
udevadm trigger --type=devices --action=add
udevadm settle --timeout=60
log "udev settled"

# What the kernel shows, for the report and for whoever reads a failure: per PCI function its class,
# driver link, driver_override, boot_vga and group; the groups; the loaded vfio modules.
{
        echo "kernel $(uname -r); cmdline: $(cat /proc/cmdline)"
        for d in /sys/bus/pci/devices/*; do
                a=$(basename "$d")
                drv=none
                [ -L "$d/driver" ] && drv=$(basename "$(readlink "$d/driver")")
                printf '%s class=%s ids=%s:%s driver=%s driver_override=%s boot_vga=%s iommu_group=%s\n' "$a" \
                        "$(cat "$d/class")" "$(cat "$d/vendor")" "$(cat "$d/device")" "$drv" \
                        "$(cat "$d/driver_override")" "$(cat "$d/boot_vga" 2>/dev/null || echo -)" \
                        "$(basename "$(readlink "$d/iommu_group" 2>/dev/null)" 2>/dev/null || echo -)"
        done
        for g in /sys/kernel/iommu_groups/*; do
                echo "iommu group $(basename "$g"): $(ls "$g/devices" | tr '\n' ' ')"
        done
        echo "loaded vfio modules: $(grep -o '^vfio[a-z_]*\|^irqbypass' /proc/modules | tr '\n' ' ')"
        echo "/dev/vfio: $(ls /dev/vfio 2>&1 | tr '\n' ' ')"
} >/results/kernel-facts.txt 2>&1
log "kernel facts recorded"

for s in ${SCENARIOS//,/ }; do
        log "scenario $s (time bound $TIMEOUT s)"
        GPUPASSD=$BUILD/agent/host/gpupassd GPUPASSCTL=$BUILD/agent/ctl/gpupassctl GPUPASS_SOURCE_ROOT=$SRC \
                GPUPASS_VM_CLIENT=$BUILD/tests/vm/vfio-client RESULTS=/results \
                timeout "$TIMEOUT" bash "$SRC/tests/vm/scenario-$s.sh" >"/results/$s.tap" 2>"/results/$s.err"
        echo $? >"/results/$s.rc"
        log "scenario $s exited with $(cat "/results/$s.rc")"
done
dmesg >/results/dmesg.txt
sync
echo o >/proc/sysrq-trigger
sleep 10
