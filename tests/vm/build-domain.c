/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Prints the domain XML agent/common/domain-xml.c builds without a template (what the aggregator starts for
 * a VM that has none), so that tests/vm starts exactly that in a real libvirtd and QEMU:
 *   build-domain TYPE NAME UUID VCPUS MEMORY-KIB [PCI-ADDRESS...]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain-xml.h"
#include "macro.h"

int main(int argc, char *argv[]) {
        _cleanup_free_ struct pci_address *hostdevs = NULL;
        _cleanup_free_ char *xml = NULL, *message = NULL;
        struct domain_xml_params p;
        size_t n;
        int r;

        if (argc < 6) {
                fprintf(stderr, "usage: %s TYPE NAME UUID VCPUS MEMORY-KIB [PCI-ADDRESS...]\n", argv[0]);
                return 2;
        }
        n = (size_t) argc - 6;
        hostdevs = calloc(n ?: 1, sizeof(*hostdevs));
        if (!hostdevs)
                return 1;
        for (size_t i = 0; i < n; i++)
                if (pci_address_parse(argv[6 + i], &hostdevs[i]) < 0) {
                        fprintf(stderr, "'%s' is not a PCI address\n", argv[6 + i]);
                        return 2;
                }
        p = (struct domain_xml_params) {
                .type = argv[1], .name = argv[2], .uuid = argv[3], .vcpus = (unsigned) strtoul(argv[4], NULL, 10),
                .memory_kib = strtoull(argv[5], NULL, 10), .hostdevs = hostdevs, .n_hostdevs = n,
        };
        r = domain_xml_build(NULL, &p, &xml, &message);
        if (r < 0) {
                fprintf(stderr, "%s\n", message ?: strerror(-r));
                return 1;
        }
        fputs(xml, stdout);
        return 0;
}
