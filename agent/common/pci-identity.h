/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * What identifies a PCI function to an operator: its IDs, class, revision and, where the card has one,
 * its PCIe Device Serial Number. Pure functions, no I/O: the model name and mode rules of DESIGN.md.
 */
struct pci_identity {
        uint16_t vendor_id;
        uint16_t device_id;
        uint16_t subsystem_vendor_id;
        uint16_t subsystem_device_id;
        uint32_t class_code; /* 24 bits: base class, subclass, programming interface */
        uint8_t revision;
        bool has_serial;
        uint64_t serial;
};

#define PCI_CLASS_BASE(c) ((uint8_t) ((c) >> 16))
#define PCI_CLASS_SUB(c)  ((uint16_t) ((c) >> 8)) /* base + subclass, e.g. 0x0302 */

#define PCI_BASE_CLASS_DISPLAY 0x03
#define PCI_SUBCLASS_VGA       0x0300
#define PCI_SUBCLASS_3D        0x0302
#define PCI_SUBCLASS_BRIDGE_PCI 0x0604

/* "01-23-45-67-89-ab-cd-ef", most significant byte first, as lspci prints it. */
#define PCI_SERIAL_MAX 24

bool pci_class_is_display(uint32_t class_code);
/* A PCI-to-PCI bridge: header type 1 or class 0x0604. Never assigned to a VM. */
bool pci_is_bridge(uint32_t class_code, uint8_t header_type);
/* "graphics" (0x0300), "compute" (0x0302) or "display" (any other display class). */
const char *gpu_mode_from_class(uint32_t class_code);
/* The short vendor name an operator reads: NVIDIA, AMD, Intel, ASPEED, Matrox, or NULL if not one of those. */
const char *pci_vendor_short_name(uint16_t vendor_id);
/*
 * The model name by DESIGN.md's rule. vendor_name and device_name are pci.ids' names (NULL when
 * unknown). "NVIDIA Tesla M60" for 10de:13f2 "GM204GL [Tesla M60]", with ".compute" appended for
 * class 0x0302; "PCI 10de:abcd" when pci.ids does not know the device. A vendor without a short name
 * reads as pci.ids names it less its legal form ("Red Hat, Inc.": "Red Hat QXL paravirtual graphic card").
 * Returns NULL on OOM.
 */
char *gpu_model_name(const struct pci_identity *id, const char *vendor_name, const char *device_name);
void pci_serial_format(uint64_t serial, char buf[static PCI_SERIAL_MAX]);
/*
 * Finds the Device Serial Number extended capability (ID 0x0003) in a config space image of len bytes
 * (4096 for a PCIe device read by root; shorter images simply have no extended capabilities). Walks the
 * list defensively: bounded steps, aligned offsets inside the image. 1 and *ret_serial if found, 0 if not.
 */
int pci_config_find_serial(const uint8_t *config, size_t len, uint64_t *ret_serial);
