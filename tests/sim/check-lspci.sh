#!/bin/bash
# libpci reads the simulated host like a real one: names from pci.ids, IOMMU groups, the serial number.
set -euo pipefail
out=$("$1" -D -nn -v 2>/dev/null)
grep -q '0000:3b:00.0 VGA compatible controller \[0300\]: NVIDIA Corporation GM204GL \[Tesla M60\] \[10de:13f2\]' <<<"$out"
grep -q '0000:86:00.0 3D controller \[0302\]: NVIDIA Corporation GM204GL \[Tesla M60\]' <<<"$out"
grep -q 'Device Serial Number 01-23-45-67-89-ab-cd-ef' <<<"$out"
grep -q 'IOMMU group 20' <<<"$out"
grep -q 'Kernel driver in use: igb' <<<"$out"
echo "lspci reads names, groups, drivers and the serial number"
