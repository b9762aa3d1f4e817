/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "pci-address.h"

/* Reads exactly n hex digits from *p. */
static int parse_hex_digits(const char **p, unsigned n, unsigned *ret) {
        unsigned v = 0;

        for (unsigned i = 0; i < n; i++) {
                char c = (*p)[i];

                if (!isxdigit((unsigned char) c))
                        return -EINVAL;
                v = v * 16 + (unsigned) (isdigit((unsigned char) c) ? c - '0' : tolower((unsigned char) c) - 'a' + 10);
        }
        *p += n;
        *ret = v;
        return 0;
}

int pci_address_parse(const char *s, struct pci_address *ret) {
        unsigned domain = 0, bus, device, function;
        const char *p = s;

        if (!s)
                return -EINVAL;
        /* The full form has two colons; the short form one. */
        if (strchr(s, ':') != strrchr(s, ':')) {
                if (parse_hex_digits(&p, 4, &domain) < 0 || *p++ != ':')
                        return -EINVAL;
        }
        if (parse_hex_digits(&p, 2, &bus) < 0 || *p++ != ':')
                return -EINVAL;
        if (parse_hex_digits(&p, 2, &device) < 0 || *p++ != '.')
                return -EINVAL;
        if (parse_hex_digits(&p, 1, &function) < 0 || *p != '\0')
                return -EINVAL;
        if (device > 0x1f || function > 7)
                return -EINVAL;

        *ret = (struct pci_address) {
                .domain = (uint16_t) domain,
                .bus = (uint8_t) bus,
                .device = (uint8_t) device,
                .function = (uint8_t) function,
        };
        return 0;
}

void pci_address_format(const struct pci_address *a, char buf[static PCI_ADDRESS_MAX]) {
        snprintf(buf, PCI_ADDRESS_MAX, "%04x:%02x:%02x.%x", a->domain, a->bus, a->device & 0x1fu,
                 a->function & 0x7u);
}

int pci_address_normalize(const char *s, char buf[static PCI_ADDRESS_MAX]) {
        struct pci_address a;
        int r;

        r = pci_address_parse(s, &a);
        if (r < 0)
                return r;
        pci_address_format(&a, buf);
        return 0;
}

bool pci_address_same_slot(const struct pci_address *a, const struct pci_address *b) {
        return a->domain == b->domain && a->bus == b->bus && a->device == b->device;
}
