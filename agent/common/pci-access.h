/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

#include "pci-address.h"
#include "pci-identity.h"

struct pci_access;

/*
 * libpci, for what it is made for: config space (through the kernel's sysfs "config" attribute, the
 * Linux sysfs access method) and names from pci.ids (never udev's hwdb, so that names are pci.ids').
 */
int pci_access_open(struct pci_access **ret);
struct pci_access *pci_access_close(struct pci_access *pacc);

/* Reads IDs, class, revision, header type and the Device Serial Number from config space.
 * The serial needs extended config space, which only root can read; without it has_serial is false.
 * -ENODEV when the device's config space cannot be read (it vanished). */
int pci_read_identity(struct pci_access *pacc, const struct pci_address *address,
                      struct pci_identity *ret, uint8_t *ret_header_type);
/* The model name of DESIGN.md from pci.ids. NULL on OOM. */
char *pci_model_name(struct pci_access *pacc, const struct pci_identity *id);
/* Drops the parsed pci.ids that the first pci_model_name() loaded and keeps (about 2 MiB of heap) and
 * gives the memory back; the next pci_model_name() parses the file again (~25M instructions). */
void pci_access_release_names(struct pci_access *pacc);
