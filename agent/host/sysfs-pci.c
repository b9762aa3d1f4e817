/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "macro.h"
#include "sysfs-pci.h"

static int device_attribute_path(const char *address, const char *attribute, char **ret) {
        if (asprintf(ret, SYSFS_PCI_DEVICES "/%s/%s", address, attribute) < 0)
                return -ENOMEM;
        return 0;
}

/* The first line of one of the device's attributes, without its newline. */
static int read_device_attribute(const char *address, const char *attribute, char **ret) {
        _cleanup_free_ char *path = NULL;
        int r;

        r = device_attribute_path(address, attribute, &path);
        if (r < 0)
                return r;
        return read_one_line_file(path, ret);
}

int sysfs_pci_read_driver(const char *address, char **ret) {
        _cleanup_free_ char *path = NULL;
        int r;

        r = device_attribute_path(address, "driver", &path);
        if (r < 0)
                return r;
        r = read_link_basename(path, ret);
        if (r == -ENOENT) {
                *ret = NULL;
                return 0;
        }
        return r;
}

int sysfs_pci_read_override(const char *address, char **ret) {
        _cleanup_free_ char *value = NULL;
        int r;

        r = read_device_attribute(address, "driver_override", &value);
        if (r < 0)
                return r;
        if (strcmp(value, "(null)") == 0 || !*value)
                value = mfree(value);
        *ret = TAKE_PTR(value);
        return 0;
}

int sysfs_pci_write_override(const char *address, const char *driver) {
        _cleanup_free_ char *path = NULL;
        int r;

        r = device_attribute_path(address, "driver_override", &path);
        if (r < 0)
                return r;
        return write_string_file(path, driver);
}

int sysfs_pci_clear_override(const char *address) {
        return sysfs_pci_write_override(address, "\n");
}

int sysfs_pci_unbind(const char *address, const char *driver) {
        _cleanup_free_ char *path = NULL;

        if (asprintf(&path, SYSFS_PCI_DRIVERS "/%s/unbind", driver) < 0)
                return -ENOMEM;
        return write_string_file(path, address);
}

int sysfs_pci_probe(const char *address) {
        return write_string_file(SYSFS_PCI_PROBE, address);
}

bool sysfs_pci_driver_loaded(const char *driver) {
        _cleanup_free_ char *path = NULL;

        if (asprintf(&path, SYSFS_PCI_DRIVERS "/%s", driver) < 0)
                return false;
        return access(path, F_OK) == 0;
}

bool sysfs_iommu_enabled(void) {
        DIR *dir = opendir(SYSFS_IOMMU_GROUPS);
        struct dirent *de;
        bool found = false;

        if (!dir)
                return false;
        while (!found && (de = readdir(dir)))
                found = de->d_name[0] != '.';
        closedir(dir);
        return found;
}

bool sysfs_pci_is_boot_vga(const char *address) {
        _cleanup_free_ char *value = NULL;

        if (read_device_attribute(address, "boot_vga", &value) < 0)
                return false;
        return strcmp(value, "1") == 0;
}

int sysfs_pci_read_reset_method(const char *address, char **ret) {
        _cleanup_free_ char *value = NULL;
        int r;

        r = read_device_attribute(address, "reset_method", &value);
        if (r == -ENOENT) {
                *ret = NULL;
                return 0;
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(value);
        return 0;
}

int sysfs_pci_numa_node(const char *address) {
        _cleanup_free_ char *value = NULL;
        int node;

        if (read_device_attribute(address, "numa_node", &value) < 0 || parse_signed_int(value, &node) < 0)
                return -1;
        return node;
}
