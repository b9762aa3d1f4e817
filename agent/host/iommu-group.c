/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "iommu-group.h"
#include "macro.h"
#include "sysfs-pci.h"

struct iommu_group *iommu_group_free(struct iommu_group *g) {
        if (!g)
                return NULL;
        for (size_t i = 0; i < g->n_members; i++)
                free(g->members[i].driver);
        free(g->members);
        free(g);
        return NULL;
}

void iommu_group_freep(struct iommu_group **g) {
        iommu_group_free(*g);
}

bool driver_is_vfio_safe(const char *driver) {
        /* The drivers that set driver_managed_dma (since 5.19): they take no DMA ownership, so VFIO may own
         * the group while they are bound. pcieport is one: a root or downstream port on it is fine; a
         * bridge on shpchp (a PCI-to-PCI bridge's hot-plug driver) is not, as the real kernel showed. */
        return !driver || strcmp(driver, "vfio-pci") == 0 || strcmp(driver, "pci-stub") == 0 ||
               strcmp(driver, "pcieport") == 0;
}

void iommu_group_classify(struct iommu_group *g) {
        /* First the GPUs and bridges by class, then companions by slot, so that the order of
         * members does not matter. */
        for (size_t i = 0; i < g->n_members; i++) {
                struct group_member *m = &g->members[i];

                if (pci_is_bridge(m->class_code, m->header_type))
                        m->role = MEMBER_BRIDGE;
                else if (pci_class_is_display(m->class_code))
                        m->role = MEMBER_GPU;
                else
                        m->role = MEMBER_OTHER;
        }
        for (size_t i = 0; i < g->n_members; i++) {
                struct group_member *m = &g->members[i];

                if (m->role != MEMBER_OTHER)
                        continue;
                for (size_t j = 0; j < g->n_members; j++)
                        if (g->members[j].role == MEMBER_GPU &&
                            pci_address_same_slot(&m->pci, &g->members[j].pci)) {
                                m->role = MEMBER_COMPANION;
                                break;
                        }
        }
}

/* Bridges are never assigned, but the kernel's viability rule covers them too. */
static bool member_blocks(const struct group_member *m) {
        return (m->role == MEMBER_OTHER || m->role == MEMBER_BRIDGE) && !driver_is_vfio_safe(m->driver);
}

const struct group_member *iommu_group_find_blocker(const struct iommu_group *g) {
        for (size_t i = 0; i < g->n_members; i++)
                if (member_blocks(&g->members[i]))
                        return &g->members[i];
        return NULL;
}

int iommu_group_describe_blockers(const struct iommu_group *g, char **ret) {
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        bool first = true;
        FILE *f;

        /* The usual group blocks nothing: no text to build (this runs at every bind/unbind uevent). */
        if (!iommu_group_find_blocker(g)) {
                *ret = NULL;
                return 0;
        }
        f = open_memstream(&text, &len);
        if (!f)
                return -ENOMEM;
        for (size_t i = 0; i < g->n_members; i++) {
                const struct group_member *m = &g->members[i];

                if (member_blocks(m)) {
                        fprintf(f, "%s%s is bound to host driver %s", first ? "" : ", ", m->address, m->driver);
                        first = false;
                }
        }
        if (fclose(f) != 0)
                return -ENOMEM;
        *ret = first ? NULL : TAKE_PTR(text);
        return first ? 0 : 1;
}

int pci_device_iommu_group(const char *address, int *ret) {
        _cleanup_free_ char *path = NULL, *name = NULL;
        int r;

        if (asprintf(&path, SYSFS_PCI_DEVICES "/%s/iommu_group", address) < 0)
                return -ENOMEM;
        r = read_link_basename(path, &name);
        if (r < 0)
                return r;
        return parse_signed_int(name, ret);
}

static int compare_members(const void *a, const void *b) {
        return strcmp(((const struct group_member *) a)->address, ((const struct group_member *) b)->address);
}

int iommu_group_load(struct pci_access *pacc, int number, struct iommu_group **ret) {
        _cleanup_(iommu_group_freep) struct iommu_group *g = NULL;
        _cleanup_free_ char *dir_path = NULL;
        DIR *dir;
        struct dirent *de;
        int r = 0;

        if (asprintf(&dir_path, SYSFS_IOMMU_GROUPS "/%d/devices", number) < 0)
                return -ENOMEM;
        g = calloc(1, sizeof(*g));
        if (!g)
                return -ENOMEM;
        g->number = number;

        dir = opendir(dir_path);
        if (!dir)
                return negative_errno();
        while ((de = readdir(dir))) {
                struct group_member *m, *t;
                struct pci_identity id;

                if (de->d_name[0] == '.')
                        continue;
                t = realloc(g->members, sizeof(*t) * (g->n_members + 1));
                if (!t) {
                        r = -ENOMEM;
                        break;
                }
                g->members = t;
                m = &g->members[g->n_members];
                *m = (struct group_member) {};
                if (pci_address_parse(de->d_name, &m->pci) < 0)
                        continue; /* not a PCI function; the kernel only puts PCI devices here on PCI buses */
                pci_address_format(&m->pci, m->address);
                r = pci_read_identity(pacc, &m->pci, &id, &m->header_type);
                if (r < 0)
                        continue; /* vanished while we looked: the uevent will tell */
                m->class_code = id.class_code;
                r = sysfs_pci_read_driver(m->address, &m->driver);
                if (r < 0)
                        break;
                g->n_members++;
                r = 0;
        }
        closedir(dir);
        if (r < 0)
                return r;

        /* A group whose members all went away (a surprise removal) has none: qsort() must not see NULL. */
        if (g->n_members > 1)
                qsort(g->members, g->n_members, sizeof(*g->members), compare_members);
        iommu_group_classify(g);
        *ret = TAKE_PTR(g);
        return 0;
}
