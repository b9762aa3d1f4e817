/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What gpupassd reads from sysfs and config space: numeric attributes (class, numa_node, IOMMU group
 * directory names) through parse_unsigned()/parse_signed_int(), and the PCIe extended capability list of a
 * config space image (the Device Serial Number), which a broken or hostile card controls.
 */
#include <errno.h>
#include <limits.h>

#include "fileio.h"
#include "fuzz.h"
#include "pci-identity.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *s = fuzz_strndup(data, size);
        unsigned long long u;
        uint64_t serial;
        int i, r;

        r = parse_unsigned(s, 0xffffff, &u);
        fuzz_assert(r == 0 || r == -EINVAL || r == -ERANGE);
        if (r == 0)
                fuzz_assert(u <= 0xffffff);
        r = parse_unsigned(s, ULLONG_MAX, &u);
        fuzz_assert(r == 0 || r == -EINVAL || r == -ERANGE);
        r = parse_signed_int(s, &i);
        fuzz_assert(r == 0 || r == -EINVAL || r == -ERANGE);

        /* The whole input as a config space image, at most the 4096 bytes the kernel exposes. */
        r = pci_config_find_serial(data, size > 4096 ? 4096 : size, &serial);
        fuzz_assert(r == 0 || r == 1);
        if (r == 1) {
                char buf[PCI_SERIAL_MAX];

                pci_serial_format(serial, buf);
                fuzz_assert(strlen(buf) == PCI_SERIAL_MAX - 1);
        }
        free(s);
        return 0;
}
