#!/bin/bash
# Fetches Debian's kernel (the package linux-image-amd64 depends on), unpacks it without installing it,
# indexes its modules, and builds a busybox initramfs that mounts this machine's root read-only over 9p
# with a tmpfs overlay and switch_roots into it. Cached in OUT (the build directory).
# Usage: prepare-guest.sh OUT
set -euo pipefail
out=$1
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
cd "$out"
if [ ! -f kernel.ready ]; then
        package=$(apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -1)
        [ -n "$package" ] || { echo "Cannot find the kernel package linux-image-amd64 depends on"; exit 1; }
        rm -rf kernel ./*.deb
        if ! apt-get download "$package" >download.log 2>&1; then
                echo "Cannot download $package from the Debian mirror (network?):"; cat download.log; exit 1
        fi
        dpkg -x ./*.deb kernel
        version=$(ls kernel/lib/modules)
        depmod -b kernel "$version"
        cp kernel/boot/vmlinuz-* vmlinuz
        echo "$version" >kernel.version
        rm -f ./*.deb
        touch kernel.ready
fi
version=$(cat kernel.version)
if [ ! -f initramfs.cpio.gz ] || [ "$here/guest-initramfs-init" -nt initramfs.cpio.gz ]; then
        rm -rf initramfs
        mkdir -p initramfs/bin initramfs/modules initramfs/proc initramfs/sys initramfs/dev initramfs/newroot
        cp /bin/busybox initramfs/bin/busybox
        # The modules the initramfs needs, in modprobe's order (dependencies first, from modules.dep).
        order=()
        add_module() { # path relative to the modules directory
                local deps dep
                for m in "${order[@]}"; do [ "$m" == "$1" ] && return 0; done
                deps=$(sed -n "s|^$1: *||p" "kernel/lib/modules/$version/modules.dep")
                for dep in $(echo "$deps" | tr ' ' '\n' | tac); do add_module "$dep"; done
                order+=("$1")
        }
        for m in virtio_pci 9pnet_virtio 9p overlay; do
                add_module "$(sed -n "s|^\(.*/$m.ko\):.*|\1|p" "kernel/lib/modules/$version/modules.dep")"
        done
        for m in "${order[@]}"; do
                cp "kernel/lib/modules/$version/$m" initramfs/modules/
                basename "$m" >>initramfs/modules/order
        done
        cp "$here/guest-initramfs-init" initramfs/init
        chmod +x initramfs/init
        (cd initramfs && find . | cpio -o -H newc --quiet | gzip -1) >initramfs.cpio.gz.tmp
        mv initramfs.cpio.gz.tmp initramfs.cpio.gz
fi
