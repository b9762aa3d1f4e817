/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Domain XML: what libvirt hands gpupass-libvirt-hook on stdin, and an operator's template for the
 * aggregator. Properties: parse, check and build agree on what is refused (same code, always a message);
 * what is accepted builds into XML that reads back with the registry's name and UUID, the template's
 * hostdevs in order, and gpupass's own hostdev appended, managed='no'.
 */
#include <errno.h>

#include "domain-xml.h"
#include "fuzz.h"
#include "macro.h"

#define VM "0f8fad5b-d9cb-469f-a165-70867728950e"

static bool same_hostdev(const struct domain_hostdev *a, const struct domain_hostdev *b) {
        return a->address.domain == b->address.domain && a->address.bus == b->address.bus &&
               a->address.device == b->address.device && a->address.function == b->address.function &&
               a->managed == b->managed;
}

static bool refused_with_message(int r, const char *message) {
        return (r == -EBADMSG || r == -EINVAL || r == -EEXIST) && message && *message;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *xml = fuzz_strndup(data, size), *m1 = NULL, *m2 = NULL, *m3 = NULL, *out = NULL;
        struct domain_xml_info *d = NULL, *back = NULL;
        /* An address no input is likely to hold, so the build is expected to succeed. */
        struct pci_address gpu = { .domain = 0xfffe, .bus = 0xfd, .device = 0x1e, .function = 6 };
        struct domain_xml_params p = { .type = "test", .name = "fuzz-vm", .vcpus = 3, .memory_kib = 4096,
                                       .hostdevs = &gpu, .n_hostdevs = 1 };
        bool has_gpu = false;
        int r, rc, rb;

        r = domain_xml_parse(xml, &d, &m1);
        if (r < 0) {
                fuzz_assert(refused_with_message(r, m1) && r != -EEXIST && !d);
                /* A text that does not parse is refused the same way as a template. */
                rc = domain_xml_check_template(xml, VM, &gpu, 1, &m2);
                fuzz_assert(rc == r && refused_with_message(rc, m2));
                rb = domain_xml_build(xml, &p, &out, &m3);
                fuzz_assert(rb == r && refused_with_message(rb, m3) && !out);
                goto done;
        }
        fuzz_assert(!m1);
        for (size_t i = 0; i < d->n_hostdevs; i++) {
                const struct pci_address *a = &d->hostdevs[i].address;

                fuzz_assert(a->device < 32 && a->function < 8);
                fuzz_assert(a->domain || a->bus || a->device);
                has_gpu = has_gpu || (a->domain == gpu.domain && a->bus == gpu.bus && a->device == gpu.device &&
                                      a->function == gpu.function);
        }
        p.uuid = d->uuid ?: VM;
        rc = domain_xml_check_template(xml, p.uuid, &gpu, 1, &m2);
        rb = domain_xml_build(xml, &p, &out, &m3);
        if (has_gpu) {
                fuzz_assert(rc == -EEXIST && refused_with_message(rc, m2));
                fuzz_assert(rb == -EEXIST && refused_with_message(rb, m3) && !out);
                goto done;
        }
        fuzz_assert(rc == 0 && !m2);
        fuzz_assert(rb == 0 && !m3 && out);
        r = domain_xml_parse(out, &back, &m1);
        if (r < 0)
                fprintf(stderr, "built XML does not read back (%s):\n%s", m1, out);
        fuzz_assert(r == 0);
        fuzz_assert(back->name && strcmp(back->name, "fuzz-vm") == 0);
        fuzz_assert(back->uuid && strcmp(back->uuid, p.uuid) == 0);
        fuzz_assert(back->n_hostdevs == d->n_hostdevs + 1);
        for (size_t i = 0; i < d->n_hostdevs; i++)
                fuzz_assert(same_hostdev(&back->hostdevs[i], &d->hostdevs[i]));
        fuzz_assert(same_hostdev(&back->hostdevs[d->n_hostdevs], &(struct domain_hostdev) { .address = gpu }));
done:
        domain_xml_info_free(d);
        domain_xml_info_free(back);
        free(m1);
        free(m2);
        free(m3);
        free(out);
        free(xml);
        return 0;
}
