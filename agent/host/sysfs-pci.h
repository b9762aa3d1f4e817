/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

/* The kernel's PCI sysfs interface, by path. gpupassd touches nothing else in /sys. */
#define SYSFS_PCI_DEVICES   "/sys/bus/pci/devices"
#define SYSFS_PCI_DRIVERS   "/sys/bus/pci/drivers"
#define SYSFS_PCI_PROBE     "/sys/bus/pci/drivers_probe"
#define SYSFS_IOMMU_GROUPS  "/sys/kernel/iommu_groups"

/* The driver bound to a device, from its `driver` link; *ret = NULL when unbound. */
int sysfs_pci_read_driver(const char *address, char **ret);
/* driver_override as set, NULL when unset (the kernel prints "(null)"). */
int sysfs_pci_read_override(const char *address, char **ret);
int sysfs_pci_write_override(const char *address, const char *driver);
/* Clears driver_override. An empty write never reaches the kernel's store function; a newline does. */
int sysfs_pci_clear_override(const char *address);
int sysfs_pci_unbind(const char *address, const char *driver);
/* Asks the bus to probe the device. Succeeds even when no driver bound: check the driver link. */
int sysfs_pci_probe(const char *address);
bool sysfs_pci_driver_loaded(const char *driver);
/* True when the kernel created IOMMU groups (an IOMMU is enabled). */
bool sysfs_iommu_enabled(void);
/* boot_vga exists only for VGA-class devices; 1 marks the device the firmware used for the console. */
bool sysfs_pci_is_boot_vga(const char *address);
int sysfs_pci_numa_node(const char *address);
/* The device's reset methods as the kernel lists them in `reset_method` ("flr pm bus"), in the order it tries
 * them; *ret = NULL when the file is absent: the kernel knows no way to reset the device (Linux 5.15+). */
int sysfs_pci_read_reset_method(const char *address, char **ret);
