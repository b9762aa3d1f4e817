#!/bin/bash
# libpci reads the simulated host like a real one: names from pci.ids, IOMMU groups, drivers, the serial
# number, the bridge and what is behind it; and it reports no error.
set -euo pipefail
lspci=$1
err=$(mktemp)
trap 'rm -f "$err"' EXIT
out=$("$lspci" -D -nn -v 2>"$err")
# lspci -v also lists kernel modules through libkmod, which needs /lib/modules of the running kernel: a
# container without it prints this one line on a real host too. Anything else on stderr is a failure.
if grep -v '^lspci: Unable to load libkmod resources' "$err"; then
        echo "lspci printed errors" >&2
        exit 1
fi
check() {
        if ! grep -q -- "$1" <<<"$out"; then
                echo "missing from lspci -D -nn -v: $1" >&2
                echo "$out" >&2
                exit 1
        fi
}
check '0000:03:00.0 VGA compatible controller \[0300\]: ASPEED Technology, Inc. ASPEED Graphics Family \[1a03:2000\]'
check '0000:3b:00.0 VGA compatible controller \[0300\]: NVIDIA Corporation GM204GL \[Tesla M60\] \[10de:13f2\]'
check '0000:3b:00.1 Audio device \[0403\]: NVIDIA Corporation GM204 High Definition Audio Controller \[10de:0fbb\]'
check '0000:86:00.0 3D controller \[0302\]: NVIDIA Corporation GM204GL \[Tesla M60\] \[10de:13f2\]'
check '0000:5e:00.0 3D controller \[0302\]: NVIDIA Corporation TU104GL \[Tesla T4\] \[10de:1eb8\]'
check '0000:5e:01.0 Ethernet controller \[0200\]: Intel Corporation I350 Gigabit Network Connection \[8086:1521\]'
check 'Capabilities: \[100\] Device Serial Number 01-23-45-67-89-ab-cd-ef'
check 'Capabilities: \[40\] Express Root Port'
check 'Bus: primary=5d, secondary=5e, subordinate=5e'
check 'IOMMU group 20'
check 'Kernel driver in use: igb'
# Exactly one serial number, and no IOMMU group for 0000:d8:00.0.
serials=$(grep -c 'Device Serial Number' <<<"$out" || true)
if [ "$serials" != 1 ]; then
        echo "$serials Device Serial Number capabilities, expected 1" >&2
        exit 1
fi
# The device's block: its first line up to the blank line that ends it.
d8=$(sed -n '/^0000:d8:00.0 /,/^$/p' <<<"$out")
if [ -z "$d8" ]; then
        echo "0000:d8:00.0 missing from lspci -D -nn -v" >&2
        exit 1
fi
if grep -q 'IOMMU group' <<<"$d8"; then
        echo "0000:d8:00.0 has an IOMMU group:" >&2
        echo "$d8" >&2
        exit 1
fi
# The tree: the T4 and the NIC behind the root port.
tree=$("$lspci" -t 2>/dev/null)
grep -q '\[0000:5d\]---00.0-\[5e\]--+-00.0' <<<"$tree" || { echo "$tree" >&2; exit 1; }
echo "lspci reads names, groups, drivers, the serial number and the bridge, without error"
