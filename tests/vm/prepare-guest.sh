#!/bin/bash
# Fetches Debian's kernel (the package linux-image-amd64 depends on), unpacks it without installing it,
# indexes its modules, and builds a busybox initramfs that mounts this machine's root read-only over 9p
# with a tmpfs overlay and switch_roots into it. Cached in OUT (the build directory): the download happens
# once per build directory. Prints TAP (it is the meson test vm/guest-image); exits non-zero with the
# reason when the kernel cannot be had (no network to the Debian mirror is a failure, never a skip).
# Usage: prepare-guest.sh OUT
set -euo pipefail
out=$1
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
cd "$out"
exec 9>"$out/.prepare.lock"
flock 9

fail() {
        echo "not ok 1 - guest kernel and initramfs: $1"
        echo "1..1"
        exit 1
}

trap 'echo "not ok 1 - guest kernel and initramfs: prepare-guest.sh failed at line $LINENO"; echo "1..1"' ERR
start=$(date +%s)
if [ ! -f kernel.ready ]; then
        package=$(apt-cache depends linux-image-amd64 2>/dev/null |
                sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -1) || true
        [ -n "$package" ] || fail "apt-cache does not know which kernel package linux-image-amd64 depends on (run 'apt-get update' first)"
        rm -rf kernel ./*.deb
        echo "# fetching $package with apt-get download"
        # Three tries: one dropped connection to the mirror is not a failure of the suite.
        for try in 1 2 3; do
                if apt-get download "$package" >download.log 2>&1; then
                        break
                fi
                sed 's/^/# /' download.log
                rm -f ./*.deb
                [ "$try" != 3 ] || fail "cannot download $package from the Debian mirror (no network? stale lists: run 'apt-get update')"
                echo "# download $try of $package failed: trying again"
        done
        grep -h "^Fetched" download.log | sed 's/^/# /' || true
        dpkg -x ./*.deb kernel || fail "dpkg -x failed on $(ls ./*.deb)"
        version=$(ls kernel/lib/modules)
        depmod -b kernel "$version" || fail "depmod -b failed for $version"
        cp kernel/boot/vmlinuz-* vmlinuz
        echo "$version" >kernel.version
        echo "$package" >kernel.package
        rm -f ./*.deb
        touch kernel.ready
fi
version=$(cat kernel.version)
[ -f kernel.package ] || echo "linux-image-$version" >kernel.package
modules=kernel/lib/modules/$version

if ! file -L /bin/busybox 2>/dev/null | grep -q 'statically linked'; then
        [ -x /bin/busybox ] || fail "/bin/busybox is missing (apt-get install busybox-static)"
        ldd /bin/busybox 2>&1 | grep -q 'not a dynamic executable' || fail "/bin/busybox is not static (apt-get install busybox-static)"
fi
# The initramfs is rebuilt when its init or this script changes.
stamp=$(cat "$here/guest-initramfs-init" "$here/prepare-guest.sh" /bin/busybox | md5sum | cut -d' ' -f1)
if [ ! -f initramfs.cpio.gz ] || [ "$(cat initramfs.stamp 2>/dev/null)" != "$stamp-$version" ]; then
        rm -rf initramfs
        mkdir -p initramfs/bin initramfs/modules initramfs/proc initramfs/sys initramfs/dev initramfs/newroot
        cp /bin/busybox initramfs/bin/busybox
        # The modules the initramfs needs, in modprobe's order (dependencies first, from modules.dep).
        order=()
        add_module() { # path relative to the modules directory
                local deps dep m
                for m in "${order[@]}"; do [ "$m" == "$1" ] && return 0; done
                deps=$(sed -n "s|^$1: *||p" "$modules/modules.dep")
                for dep in $(echo "$deps" | tr ' ' '\n' | tac); do add_module "$dep"; done
                order+=("$1")
        }
        for m in virtio_pci 9pnet_virtio 9p overlay; do
                path=$(sed -n "s|^\(.*/$m.ko\):.*|\1|p" "$modules/modules.dep")
                [ -n "$path" ] || fail "$m.ko is not in $modules/modules.dep"
                add_module "$path"
        done
        for m in "${order[@]}"; do
                cp "$modules/$m" initramfs/modules/
                basename "$m" >>initramfs/modules/order
        done
        cp "$here/guest-initramfs-init" initramfs/init
        chmod +x initramfs/init
        (cd initramfs && find . | cpio -o -H newc --quiet | gzip -1) >initramfs.cpio.gz.tmp
        mv initramfs.cpio.gz.tmp initramfs.cpio.gz
        echo "$stamp-$version" >initramfs.stamp
fi
echo "# kernel $version ($(cat kernel.package 2>/dev/null || echo '?')), initramfs modules: $(tr '\n' ' ' <initramfs/modules/order)"
echo "ok 1 - guest kernel $version and initramfs ready in $(($(date +%s) - start)) s"
echo "1..1"
