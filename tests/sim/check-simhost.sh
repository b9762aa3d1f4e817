#!/bin/bash
# gpupass-simhost itself: COMMAND's exit status, the environment it gets, ctl replies and exit codes,
# the testbed removed at the end or kept with --keep, fixture errors.
set -euo pipefail
simhost=$1
fixtures=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# COMMAND's exit status is ours.
rc=0
"$simhost" "$fixtures/single.ini" -- sh -c 'exit 7' || rc=$?
[ "$rc" = 7 ] || fail "exit status $rc, expected 7"

# The environment, and the testbed gone afterwards.
"$simhost" "$fixtures/single.ini" -- sh -c 'echo "$UMOCKDEV_DIR"; echo "$LD_PRELOAD"; echo "$GPUPASS_SIMKERNEL_SOCKET"; echo "$GPUPASS_SIMHOST_CTL"' >"$tmp/env"
mapfile -t env <"$tmp/env"
[[ ${env[1]} == */libgpupass-simkernel.so\ libumockdev-preload.so.0* ]] || fail "LD_PRELOAD order: ${env[1]}"
[[ -n ${env[2]} && -n ${env[3]} ]] || fail "socket variables missing"
[ ! -e "${env[0]}" ] || fail "testbed ${env[0]} left behind"

# ctl: OK / ERR and exit codes.
"$simhost" "$fixtures/single.ini" -- bash -c '
        set -euo pipefail
        out=$("$0" ctl "$GPUPASS_SIMHOST_CTL" uevent 0000:3b:00.0 change)
        [ "$out" = OK ]
        if out=$("$0" ctl "$GPUPASS_SIMHOST_CTL" remove 0000:99:00.0); then exit 1; fi
        [[ $out == "ERR "* ]]
        if "$0" ctl "$GPUPASS_SIMHOST_CTL" frobnicate >/dev/null; then exit 1; fi
        "$0" ctl "$GPUPASS_SIMHOST_CTL" add 0000:3c:00.0 vendor=0x10de device=0x1eb8 class=0x030200 iommu_group=13 driver=nouveau >/dev/null
        [ "$(cat /sys/bus/pci/devices/0000:3c:00.0/device)" = 0x1eb8 ]
        [ "$(readlink /sys/bus/pci/devices/0000:3c:00.0/driver)" = ../../../bus/pci/drivers/nouveau ]
        [ "$(readlink /sys/bus/pci/devices/0000:3c:00.0/iommu_group)" = ../../../kernel/iommu_groups/13 ]
' "$simhost" || fail "ctl verbs"

# Module loading: kmod's own modprobe finds vfio-pci in the testbed's modules.dep.bin, and its finit_module()
# registers the driver, which takes the device whose override names it; a second modprobe is a no-op (the
# module is live), an unknown module fails; driver-unload unloads the module as rmmod would.
"$simhost" "$fixtures/module.ini" -- bash -c '
        set -euo pipefail
        [ ! -e /sys/bus/pci/drivers/vfio-pci ]
        [ ! -e /sys/module/vfio_pci ]
        printf vfio-pci | dd of=/sys/bus/pci/devices/0000:3b:00.1/driver_override status=none
        printf 0000:3b:00.1 | dd of=/sys/bus/pci/drivers/snd_hda_intel/unbind status=none
        modprobe vfio-pci
        [ "$(cat /sys/module/vfio_pci/initstate)" = live ]
        [ "$(readlink /sys/bus/pci/devices/0000:3b:00.1/driver)" = ../../../bus/pci/drivers/vfio-pci ]
        modprobe vfio-pci
        if modprobe no-such-module 2>/dev/null; then exit 1; fi
        "$0" ctl "$GPUPASS_SIMHOST_CTL" driver-unload vfio-pci >/dev/null
        [ ! -e /sys/module/vfio_pci ]
        [ ! -e /sys/bus/pci/drivers/vfio-pci ]
' "$simhost" || fail "module loading (modprobe vfio-pci)"

# --keep DIR: the tree stays for a look afterwards.
"$simhost" "$fixtures/single.ini" --keep "$tmp/kept" -- true 2>/dev/null
[ -f "$tmp/kept/sys/devices/pci0000:00/0000:3b:00.0/vendor" ] || fail "--keep did not keep the tree"
[ "$(readlink "$tmp/kept/sys/bus/pci/devices/0000:3b:00.0")" = ../../../devices/pci0000:00/0000:3b:00.0 ] ||
        fail "kept bus link"

# iommu=off: no groups at all.
"$simhost" "$fixtures/no-iommu.ini" -- sh -c '[ ! -e /sys/kernel/iommu_groups ] && [ ! -e /sys/bus/pci/devices/0000:3b:00.0/iommu_group ]' ||
        fail "no-iommu fixture has groups"

# A broken fixture is refused before COMMAND runs.
printf '[device 0000:01:00.0]\nvendor=0x10de\nbogus=1\n' >"$tmp/bad.ini"
if "$simhost" "$tmp/bad.ini" -- true 2>"$tmp/err"; then fail "bad fixture accepted"; fi
grep -q 'unknown key bogus' "$tmp/err" || fail "bad fixture message: $(cat "$tmp/err")"
echo "gpupass-simhost: exit status, environment, ctl, --keep, no-iommu, fixture errors"
