/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "macro.h"
#include "pci-identity.h"

#define PCI_EXT_CAP_START      0x100
#define PCI_EXT_CAP_ID_DSN     0x0003
#define PCI_CONFIG_SPACE_PCIE  4096

bool pci_class_is_display(uint32_t class_code) {
        return PCI_CLASS_BASE(class_code) == PCI_BASE_CLASS_DISPLAY;
}

bool pci_is_bridge(uint32_t class_code, uint8_t header_type) {
        return (header_type & 0x7f) == 1 || PCI_CLASS_SUB(class_code) == PCI_SUBCLASS_BRIDGE_PCI;
}

const char *gpu_mode_from_class(uint32_t class_code) {
        switch (PCI_CLASS_SUB(class_code)) {
        case PCI_SUBCLASS_VGA:
                return "graphics";
        case PCI_SUBCLASS_3D:
                return "compute";
        default:
                return "display";
        }
}

const char *pci_vendor_short_name(uint16_t vendor_id) {
        static const struct {
                uint16_t id;
                const char *name;
        } table[] = {
                { 0x10de, "NVIDIA" },
                { 0x1002, "AMD" },   /* ATI Technologies, sold as AMD Radeon/Instinct */
                { 0x1022, "AMD" },
                { 0x8086, "Intel" },
                { 0x1a03, "ASPEED" },
                { 0x102b, "Matrox" },
        };

        for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
                if (table[i].id == vendor_id)
                        return table[i].name;
        return NULL;
}

/* The marketing name is the last bracketed part of a pci.ids device name: "GM204GL [Tesla M60]". */
static int bracketed_part(const char *name, const char **ret_start, size_t *ret_len) {
        const char *open = strrchr(name, '[');
        const char *close;

        if (!open)
                return 0;
        close = strchr(open, ']');
        if (!close || close == open + 1)
                return 0;
        *ret_start = open + 1;
        *ret_len = (size_t) (close - open - 1);
        return 1;
}

/* Words of a company's legal form or trade that an operator does not say: "Matrox Electronics Systems Ltd."
 * is Matrox, "Huawei Technologies Co., Ltd." is Huawei. */
static bool is_company_suffix(const char *word, size_t len) {
        static const char * const suffixes[] = {
                "Inc", "Incorporated", "Corp", "Corporation", "Co", "Company", "Ltd", "Limited", "LLC", "GmbH",
                "AG", "SA", "S.A", "BV", "B.V", "plc", "Technology", "Technologies", "Electronics", "Systems",
                "International", "Semiconductor", "Semiconductors",
        };

        if (len > 0 && word[len - 1] == '.')
                len--;
        for (size_t i = 0; i < ELEMENTSOF(suffixes); i++)
                if (strlen(suffixes[i]) == len && strncasecmp(word, suffixes[i], len) == 0)
                        return true;
        return false;
}

/*
 * The part of a pci.ids vendor name that an operator reads, as a span of it: a bracketed one-word name
 * ("Silicon Integrated Systems [SiS]": SiS), else the name before any comma, parenthesis or bracket without
 * the trailing legal-form words ("Red Hat, Inc.": Red Hat; "XGI Technology Inc. (eXtreme Graphics
 * Innovation)": XGI). Never empty: the first word stays.
 */
static void vendor_display_part(const char *name, const char **ret_start, size_t *ret_len) {
        const char *start;
        size_t len;

        if (bracketed_part(name, &start, &len) && !memchr(start, ' ', len)) {
                *ret_start = start;
                *ret_len = len;
                return;
        }
        len = strcspn(name, ",([");
        for (;;) {
                size_t word;

                while (len > 0 && name[len - 1] == ' ')
                        len--;
                word = len;
                while (word > 0 && name[word - 1] != ' ')
                        word--;
                if (word == 0 || !is_company_suffix(name + word, len - word))
                        break;
                len = word;
        }
        *ret_start = name;
        *ret_len = len;
}

char *gpu_model_name(const struct pci_identity *id, const char *vendor_name, const char *device_name) {
        const char *suffix = PCI_CLASS_SUB(id->class_code) == PCI_SUBCLASS_3D ? ".compute" : "";
        const char *vendor = pci_vendor_short_name(id->vendor_id);
        const char *dev = device_name;
        size_t vendor_len, dev_len;
        char *s = NULL;

        if (!device_name || !*device_name) {
                if (asprintf(&s, "PCI %04x:%04x%s", id->vendor_id, id->device_id, suffix) < 0)
                        return NULL;
                return s;
        }

        if (vendor)
                vendor_len = strlen(vendor);
        else if (vendor_name && *vendor_name)
                vendor_display_part(vendor_name, &vendor, &vendor_len);
        else {
                vendor = "PCI";
                vendor_len = 3;
        }

        if (!bracketed_part(device_name, &dev, &dev_len))
                dev_len = strlen(device_name);

        /* "ASPEED Graphics Family" already names its vendor: do not say it twice. */
        if (dev_len > vendor_len && strncmp(dev, vendor, vendor_len) == 0 && dev[vendor_len] == ' ') {
                if (asprintf(&s, "%.*s%s", (int) dev_len, dev, suffix) < 0)
                        return NULL;
                return s;
        }
        if (asprintf(&s, "%.*s %.*s%s", (int) vendor_len, vendor, (int) dev_len, dev, suffix) < 0)
                return NULL;
        return s;
}

void pci_serial_format(uint64_t serial, char buf[static PCI_SERIAL_MAX]) {
        snprintf(buf, PCI_SERIAL_MAX, "%02x-%02x-%02x-%02x-%02x-%02x-%02x-%02x",
                 (unsigned) (serial >> 56) & 0xff, (unsigned) (serial >> 48) & 0xff,
                 (unsigned) (serial >> 40) & 0xff, (unsigned) (serial >> 32) & 0xff,
                 (unsigned) (serial >> 24) & 0xff, (unsigned) (serial >> 16) & 0xff,
                 (unsigned) (serial >> 8) & 0xff, (unsigned) serial & 0xff);
}

static uint32_t read_le32(const uint8_t *p) {
        return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

int pci_config_find_serial(const uint8_t *config, size_t len, uint64_t *ret_serial) {
        size_t offset = PCI_EXT_CAP_START;

        if (len > PCI_CONFIG_SPACE_PCIE)
                len = PCI_CONFIG_SPACE_PCIE;

        /* At most (4096 - 256) / 4 capabilities fit; more steps means a loop in a corrupt list. */
        for (unsigned steps = 0; steps < (PCI_CONFIG_SPACE_PCIE - PCI_EXT_CAP_START) / 4; steps++) {
                uint32_t header;

                if (offset < PCI_EXT_CAP_START || offset % 4 != 0 || offset + 4 > len)
                        return 0;
                header = read_le32(config + offset);
                if (header == 0 || header == 0xffffffff)
                        return 0;
                if ((header & 0xffff) == PCI_EXT_CAP_ID_DSN) {
                        if (offset + 12 > len)
                                return 0;
                        *ret_serial = (uint64_t) read_le32(config + offset + 8) << 32 |
                                      read_le32(config + offset + 4);
                        return 1;
                }
                offset = header >> 20;
                if (offset == 0)
                        return 0;
        }
        return 0;
}
