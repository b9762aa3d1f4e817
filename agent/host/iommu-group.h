/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pci-access.h"
#include "pci-address.h"

/*
 * An IOMMU group as the kernel reports it (/sys/kernel/iommu_groups/N/devices) and what each member is
 * to the GPUs in it. The group is the unit of assignment: every GPU in it and their companions go to
 * vfio-pci and to one VM together; bridges stay with the host; every other member, bridges included, must
 * be unbound or on a driver that leaves DMA to its owner (vfio-pci, pci-stub, pcieport), or the group is not
 * viable (Linux 6.1: VFIO_GROUP_GET_STATUS says so, seen in tests/vm).
 */
enum member_role {
        MEMBER_GPU,       /* a display-class function */
        MEMBER_COMPANION, /* another function of a GPU's slot (HDMI audio, USB, serial bus) */
        MEMBER_BRIDGE,    /* never assigned */
        MEMBER_OTHER,     /* another endpoint: must be unbound or on vfio-pci/pci-stub */
};

struct group_member {
        char address[PCI_ADDRESS_MAX];
        struct pci_address pci;
        uint32_t class_code;
        uint8_t header_type;
        char *driver; /* NULL when unbound */
        enum member_role role;
};

struct iommu_group {
        int number;
        size_t n_members;
        struct group_member *members; /* sorted by address */
};

/* Reads group `number` from sysfs: its members, their class, header type and bound driver. */
int iommu_group_load(struct pci_access *pacc, int number, struct iommu_group **ret);
struct iommu_group *iommu_group_free(struct iommu_group *g);
void iommu_group_freep(struct iommu_group **g);

/* Assigns roles from class, header type and slot. Pure; used by iommu_group_load(). */
void iommu_group_classify(struct iommu_group *g);
/* Drivers that keep a group viable: unbound, vfio-pci, pci-stub, pcieport (driver_managed_dma). */
bool driver_is_vfio_safe(const char *driver);
/* The first member that makes the group not viable (another endpoint or a bridge on another driver), or NULL. */
const struct group_member *iommu_group_find_blocker(const struct iommu_group *g);
/* Every blocking member, "0000:00:04.0 is bound to host driver shpchp, 0000:01:02.0 is bound to host driver
 * e1000": 1 and the text when the group is not viable, 0 and NULL when it is. */
int iommu_group_describe_blockers(const struct iommu_group *g, char **ret);
/* True when this member goes to vfio-pci and to the VM with the group (GPU or companion). */
static inline bool member_is_assigned(const struct group_member *m) {
        return m->role == MEMBER_GPU || m->role == MEMBER_COMPANION;
}
/* Reads the group number of a device from its iommu_group link; -ENOENT when it has none. */
int pci_device_iommu_group(const char *address, int *ret);
