#!/bin/bash
# The guest's scenario runner, run two ways:
#  - as PID 1 after switch_root (the plain boot): mounts the API file systems, starts systemd-udevd (which
#    binds the emulated devices' drivers), runs the scenarios and powers off itself;
#  - as the unit gpupass-vm.service under systemd (a boot whose scenario says `# guest-init: systemd`: PID 1
#    execs guest-systemd.sh, which sets up systemd and execs it; systemd and its udev do the rest).
# Either way it records what the kernel shows (kernel-facts.txt), runs the scenarios named on the kernel
# command line and leaves their TAP output in /results.
# systemd's default PATH: the systemd scenario calls the installed gpupassctl (prefix /usr/local or /usr).
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
TIMEOUT=90
# Where the initramfs put the source and build trees, whatever their paths on the host.
SRC=/gpupass/src BUILD=/gpupass/build
[ $$ != 1 ] || mount -t proc proc /proc
INIT=
for arg in $(cat /proc/cmdline); do
        case $arg in
        gpupass.scenarios=*) SCENARIOS=${arg#gpupass.scenarios=} ;;
        gpupass.timeout=*) TIMEOUT=${arg#gpupass.timeout=} ;;
        gpupass.init=*) INIT=${arg#gpupass.init=} ;;
        esac
done
log() { echo "guest: [$(cut -d' ' -f1 /proc/uptime) s] $*" >>/results/guest.log; }
if [ $$ == 1 ] && [ "$INIT" == systemd ]; then
        exec /bin/bash "$SRC/tests/vm/guest-systemd.sh"
fi
if [ $$ == 1 ]; then
        mount -t sysfs sysfs /sys
        mount -t tmpfs tmpfs /run
        mount -t tmpfs tmpfs /tmp
        mkdir -p /run/udev /dev/pts
        mount -t devpts devpts /dev/pts
        hostname gpupass-vm
        log "kernel $(uname -r), udev starting"
        /lib/systemd/systemd-udevd --daemon >>/results/guest.log 2>&1
        udevadm trigger --type=subsystems --action=add
        udevadm trigger --type=devices --action=add
else
        log "systemd up ($(systemctl is-system-running 2>&1)), waiting for udev"
fi
udevadm settle --timeout=60
log "udev settled"

# What the kernel shows, for the report and for whoever reads a failure: per PCI function its class,
# driver link, driver_override, boot_vga and group; the groups; the loaded vfio modules. Shell builtins
# only: every program started here is read over 9p and costs a noticeable fraction of a second with TCG.
facts() {
        local d a class vendor device override bootvga drv group g m
        read -r cmdline </proc/cmdline
        echo "kernel $(uname -r); cmdline: $cmdline"
        for d in /sys/bus/pci/devices/*; do
                a=${d##*/} bootvga=- drv=none group=-
                read -r class <"$d/class"; read -r vendor <"$d/vendor"; read -r device <"$d/device"
                read -r override <"$d/driver_override"
                [ -e "$d/boot_vga" ] && read -r bootvga <"$d/boot_vga"
                [ -L "$d/driver" ] && drv=$(cd -P "$d/driver" && echo "${PWD##*/}")
                [ -L "$d/iommu_group" ] && group=$(cd -P "$d/iommu_group" && echo "${PWD##*/}")
                echo "$a class=$class ids=$vendor:$device driver=$drv driver_override=$override boot_vga=$bootvga iommu_group=$group"
        done
        for g in /sys/kernel/iommu_groups/*; do
                m=("$g"/devices/*)
                echo "iommu group ${g##*/}: ${m[*]##*/}"
        done
        m=()
        while read -r mod _; do
                case $mod in vfio*|irqbypass) m+=("$mod") ;; esac
        done </proc/modules
        echo "loaded vfio modules: ${m[*]:-none}"
        m=(/dev/vfio/*)
        echo "/dev/vfio: ${m[*]}"
}
facts >/results/kernel-facts.txt 2>&1
log "kernel facts recorded"

for s in ${SCENARIOS//,/ }; do
        log "scenario $s (time bound $TIMEOUT s)"
        GPUPASSD=$BUILD/agent/host/gpupassd GPUPASSCTL=$BUILD/agent/ctl/gpupassctl GPUPASS_SOURCE_ROOT=$SRC \
                GPUPASS_VM_CLIENT=$BUILD/tests/vm/vfio-client RESULTS=/results \
                timeout "$TIMEOUT" bash "$SRC/tests/vm/scenario-$s.sh" >"/results/$s.tap" 2>"/results/$s.err"
        echo $? >"/results/$s.rc"
        log "scenario $s exited with $(cat "/results/$s.rc")"
        [ "$(cat "/results/$s.rc")" == 0 ] || failed=1
done
dmesg >/results/dmesg.txt
# Under systemd: the boot's journal after a failure, for whoever reads it (reading it takes a minute at
# load 90 under TCG).
if [ $$ != 1 ] && [ -n "${failed:-}" ]; then
        journalctl -b --no-pager -o short-monotonic >/results/journal.txt 2>&1
fi
sync
# Off at once, under systemd too: the results are on the host already, and systemd's own shutdown
# (stopping units, unmounting the 9p and overlay mounts) took 65 s at load 100. The unit's
# SuccessAction=/FailureAction= are the fallback.
echo o >/proc/sysrq-trigger
sleep 10
