/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/*
 * The kernel's VFIO interface, used directly. Two ways in:
 *  - the group interface (all kernels): /dev/vfio/N, attached to a container (/dev/vfio/vfio) with the
 *    type1 IOMMU, then VFIO_GROUP_GET_DEVICE_FD(address). A group file can be open only once at a time.
 *  - the device cdev interface (6.6 and later): /dev/vfio/devices/vfioX, bound to an iommufd (/dev/iommu)
 *    with VFIO_DEVICE_BIND_IOMMUFD before any other ioctl.
 * The agent opens descriptors only for as long as one call needs them, so it never holds a group open when
 * the group is unbound (unbinding vfio-pci waits for every descriptor to close).
 */

/* The /dev/vfio/devices/vfioX node of a device bound to vfio-pci on a kernel with cdevs, else -ENOENT. */
int vfio_device_cdev_path(const char *address, char **ret);
int vfio_group_path(int group, char **ret);

/* Opens /dev/vfio/N and checks VFIO_GROUP_GET_STATUS says viable. -EBUSY: another process holds it open
 * (a VMM still running); -ENOENT: no node (vfio-pci not bound, or no VFIO in this kernel). */
int vfio_group_open_viable(int group, int *ret_fd);

/* Resets one device the way a VMM would see it reset, VFIO_DEVICE_RESET, when VFIO_DEVICE_GET_INFO reports
 * VFIO_DEVICE_FLAGS_RESET. 1 if reset, 0 if the device offers no reset, negative errno on failure.
 * Through the group and a container where the group node exists, else through the device cdev. */
int vfio_reset_device(int group, const char *address);

/* Reads vendor and device ID from the VFIO config region (what a VMM reads); for tests and diagnostics. */
int vfio_device_read_ids(int device_fd, unsigned *ret_vendor, unsigned *ret_device);

/* Descriptors for a VMM: the device cdevs of `addresses` (GPU first) where the kernel has them, else the
 * group descriptor. *ret_fds gets *ret_n open descriptors the caller must close. */
int vfio_open_for_vmm(int group, char * const *addresses, int **ret_fds, size_t *ret_n);

/* Gives uid the group node (and device cdevs) of a claim, 0600; restore with uid 0. */
int vfio_chown_nodes(int group, char * const *addresses, uid_t uid);
