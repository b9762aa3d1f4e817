/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* "0000:3b:00.0" and its NUL. */
#define PCI_ADDRESS_MAX 13

struct pci_address {
        uint16_t domain;
        uint8_t bus;
        uint8_t device;   /* slot, 0..31 */
        uint8_t function; /* 0..7 */
};

/* Parses "DDDD:BB:SS.F" or the short "BB:SS.F" (domain 0), hex digits in either case.
 * -EINVAL for anything else, including trailing characters and out-of-range slot or function. */
int pci_address_parse(const char *s, struct pci_address *ret);
/* Always with domain, lower case: the form sysfs uses and the API shows. */
void pci_address_format(const struct pci_address *a, char buf[static PCI_ADDRESS_MAX]);
/* Parses and re-formats: ret gets the canonical form of s. */
int pci_address_normalize(const char *s, char buf[static PCI_ADDRESS_MAX]);
/* Functions of one physical card share domain, bus and slot. */
bool pci_address_same_slot(const struct pci_address *a, const struct pci_address *b);
