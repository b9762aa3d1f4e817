/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

#include <pci/pci.h>

#include "macro.h"
#include "pci-access.h"

#define CONFIG_HEADER_SIZE 64
#define CONFIG_SPACE_CONVENTIONAL 256
#define CONFIG_SPACE_PCIE 4096

/* Library code does not log: libpci's default handlers print to stderr. Warnings here are expected
 * (a config read beyond what an unprivileged reader may see) and are reported through return values. */
static void pci_quiet(char *msg _unused_, ...) {
}

int pci_access_open(struct pci_access **ret) {
        struct pci_access *pacc;

        /* pci_init() exits the process when no access method works; say why instead. */
        if (access("/sys/bus/pci", F_OK) < 0)
                return negative_errno();

        pacc = pci_alloc();
        if (!pacc)
                return -ENOMEM;
        pacc->method = PCI_ACCESS_SYS_BUS_PCI;
        pacc->warning = pci_quiet;
        pacc->debug = pci_quiet;
        pci_init(pacc);
        *ret = pacc;
        return 0;
}

struct pci_access *pci_access_close(struct pci_access *pacc) {
        if (pacc)
                pci_cleanup(pacc);
        return NULL;
}

static uint16_t le16(const uint8_t *p) {
        return (uint16_t) (p[0] | p[1] << 8);
}

int pci_read_identity(struct pci_access *pacc, const struct pci_address *address,
                      struct pci_identity *ret, uint8_t *ret_header_type) {
        uint8_t config[CONFIG_SPACE_PCIE];
        struct pci_identity id = {};
        struct pci_dev *dev;
        uint8_t header_type;
        size_t len = 0;

        dev = pci_get_dev(pacc, address->domain, address->bus, address->device, address->function);
        if (!dev)
                return -ENOMEM;

        /* pci_read_block() is all or nothing: try the largest image first. Conventional devices and
         * unprivileged readers get less; only the header is required. */
        if (pci_read_block(dev, 0, config, CONFIG_SPACE_PCIE))
                len = CONFIG_SPACE_PCIE;
        else if (pci_read_block(dev, 0, config, CONFIG_SPACE_CONVENTIONAL))
                len = CONFIG_SPACE_CONVENTIONAL;
        else if (pci_read_block(dev, 0, config, CONFIG_HEADER_SIZE))
                len = CONFIG_HEADER_SIZE;
        pci_free_dev(dev);
        if (len == 0)
                return -ENODEV;

        id.vendor_id = le16(config + PCI_VENDOR_ID);
        id.device_id = le16(config + PCI_DEVICE_ID);
        if (id.vendor_id == 0xffff)
                return -ENODEV; /* all ones: nothing answers at this address any more */
        id.revision = config[PCI_REVISION_ID];
        id.class_code = (uint32_t) config[PCI_CLASS_PROG] | (uint32_t) le16(config + PCI_CLASS_DEVICE) << 8;
        header_type = config[PCI_HEADER_TYPE] & 0x7f;
        if (header_type == PCI_HEADER_TYPE_NORMAL) {
                id.subsystem_vendor_id = le16(config + PCI_SUBSYSTEM_VENDOR_ID);
                id.subsystem_device_id = le16(config + PCI_SUBSYSTEM_ID);
        }
        id.has_serial = pci_config_find_serial(config, len, &id.serial) > 0;

        *ret = id;
        if (ret_header_type)
                *ret_header_type = header_type;
        return 0;
}

char *pci_model_name(struct pci_access *pacc, const struct pci_identity *id) {
        char vendor_buf[256], device_buf[256];
        const int flags = PCI_LOOKUP_NO_NUMBERS | PCI_LOOKUP_NO_HWDB;
        const char *vendor, *device;

        vendor = pci_lookup_name(pacc, vendor_buf, sizeof(vendor_buf), flags | PCI_LOOKUP_VENDOR, id->vendor_id);
        device = pci_lookup_name(pacc, device_buf, sizeof(device_buf), flags | PCI_LOOKUP_DEVICE,
                                 id->vendor_id, id->device_id);
        return gpu_model_name(id, vendor, device);
}

void pci_access_release_names(struct pci_access *pacc) {
        if (!pacc || !pacc->id_hash)
                return;
        pci_free_name_list(pacc);
        /* The list is thousands of small blocks; without a trim the heap keeps them resident. */
        (void) malloc_trim(0);
}
