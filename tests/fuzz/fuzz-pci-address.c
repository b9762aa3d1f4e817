/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* PCI addresses, as GetGpu, the GPU request text and sysfs directory names give them. */
#include <errno.h>

#include "fuzz.h"
#include "pci-address.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *s = fuzz_strndup(data, size);
        struct pci_address a, b;
        char buf[PCI_ADDRESS_MAX], again[PCI_ADDRESS_MAX];
        int r;

        r = pci_address_parse(s, &a);
        fuzz_assert(r == 0 || r == -EINVAL);
        if (r == 0) {
                /* What parses formats to the canonical form, which parses back to the same address. */
                fuzz_assert(a.device < 32 && a.function < 8);
                pci_address_format(&a, buf);
                fuzz_assert(strlen(buf) == PCI_ADDRESS_MAX - 1);
                fuzz_assert(pci_address_parse(buf, &b) == 0);
                fuzz_assert(a.domain == b.domain && a.bus == b.bus && a.device == b.device &&
                            a.function == b.function);
                fuzz_assert(pci_address_same_slot(&a, &b));
                fuzz_assert(pci_address_normalize(s, again) == 0);
                fuzz_assert(strcmp(buf, again) == 0);
        } else
                fuzz_assert(pci_address_normalize(s, again) == -EINVAL);
        free(s);
        return 0;
}
