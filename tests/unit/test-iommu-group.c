/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>
#include <string.h>

#include "iommu-group.h"
#include "macro.h"
#include "tests.h"

static struct group_member member(const char *address, uint32_t class_code, uint8_t header_type, const char *driver) {
        struct group_member m = { .class_code = class_code, .header_type = header_type };

        ASSERT_EQ(pci_address_parse(address, &m.pci), 0);
        pci_address_format(&m.pci, m.address);
        m.driver = driver ? strdup(driver) : NULL;
        return m;
}

static struct iommu_group *group_of(struct group_member *members, size_t n) {
        struct iommu_group *g = calloc(1, sizeof(*g));

        ASSERT_TRUE(g);
        g->number = 7;
        g->n_members = n;
        g->members = calloc(n, sizeof(*members));
        ASSERT_TRUE(g->members);
        memcpy(g->members, members, n * sizeof(*members));
        iommu_group_classify(g);
        return g;
}

/* A GPU with its HDMI audio function: the audio is a companion, the group is viable while the audio is
 * on its host driver (it goes to vfio-pci with the GPU). */
static void test_gpu_with_audio(void) {
        struct group_member m[] = {
                member("0000:3b:00.1", 0x040300, 0, "snd_hda_intel"),
                member("0000:3b:00.0", 0x030000, 0x80, "nouveau"),
        };
        _cleanup_(iommu_group_freep) struct iommu_group *g = group_of(m, ELEMENTSOF(m));

        ASSERT_EQ(g->members[0].role, MEMBER_COMPANION);
        ASSERT_EQ(g->members[1].role, MEMBER_GPU);
        ASSERT_TRUE(member_is_assigned(&g->members[0]));
        ASSERT_TRUE(iommu_group_find_blocker(g) == NULL);
}

/* Behind a bridge with a NIC on a host driver: the bridge is ignored, the NIC blocks. */
static void test_group_with_nic(void) {
        struct group_member m[] = {
                member("0000:5d:00.0", 0x060400, 1, "pcieport"),
                member("0000:5e:00.0", 0x030200, 0, "nvidia"),
                member("0000:5e:01.0", 0x020000, 0, "igb"),
        };
        _cleanup_(iommu_group_freep) struct iommu_group *g = group_of(m, ELEMENTSOF(m));
        const struct group_member *blocker;

        ASSERT_EQ(g->members[0].role, MEMBER_BRIDGE);
        ASSERT_EQ(g->members[1].role, MEMBER_GPU);
        ASSERT_EQ(g->members[2].role, MEMBER_OTHER);
        blocker = iommu_group_find_blocker(g);
        ASSERT_TRUE(blocker);
        ASSERT_STREQ(blocker->address, "0000:5e:01.0");
        ASSERT_STREQ(blocker->driver, "igb");
        /* With the bridge on a driver that does not manage DMA, both are named. */
        {
                _cleanup_free_ char *text = NULL;

                free(g->members[0].driver);
                g->members[0].driver = strdup("shpchp");
                ASSERT_EQ(iommu_group_describe_blockers(g, &text), 1);
                ASSERT_STREQ(text, "0000:5d:00.0 is bound to host driver shpchp, 0000:5e:01.0 is bound to host driver igb");
                free(g->members[0].driver);
                g->members[0].driver = strdup("pcieport");
        }

        /* The same NIC unbound, or on vfio-pci/pci-stub, keeps the group viable. */
        free(g->members[2].driver);
        g->members[2].driver = NULL;
        ASSERT_TRUE(iommu_group_find_blocker(g) == NULL);
        g->members[2].driver = strdup("pci-stub");
        ASSERT_TRUE(iommu_group_find_blocker(g) == NULL);
        free(g->members[2].driver);
        g->members[2].driver = strdup("vfio-pci");
        ASSERT_TRUE(iommu_group_find_blocker(g) == NULL);
        {
                char *text = (char *) "unset";

                ASSERT_EQ(iommu_group_describe_blockers(g, &text), 0);
                ASSERT_TRUE(text == NULL);
        }
}

/* Two GPUs in one group (two cards behind one switch without ACS): both are GPUs, each function of their
 * slots a companion; a bridge in the same slot as a GPU is still a bridge. */
static void test_two_gpus(void) {
        struct group_member m[] = {
                member("0000:81:00.0", 0x030000, 0, "nouveau"),
                member("0000:81:00.1", 0x040300, 0, NULL),
                member("0000:82:00.0", 0x030200, 0, "nouveau"),
                member("0000:82:00.2", 0x0c0330, 0, "xhci_hcd"),
                member("0000:82:00.3", 0x0c8000, 0, "nvidia-gpu"),
                member("0000:82:00.4", 0x060400, 1, "pcieport"),
        };
        _cleanup_(iommu_group_freep) struct iommu_group *g = group_of(m, ELEMENTSOF(m));

        ASSERT_EQ(g->members[0].role, MEMBER_GPU);
        ASSERT_EQ(g->members[1].role, MEMBER_COMPANION);
        ASSERT_EQ(g->members[2].role, MEMBER_GPU);
        ASSERT_EQ(g->members[3].role, MEMBER_COMPANION);
        ASSERT_EQ(g->members[4].role, MEMBER_COMPANION);
        ASSERT_EQ(g->members[5].role, MEMBER_BRIDGE);
        ASSERT_TRUE(iommu_group_find_blocker(g) == NULL);
}

/* A PCI-to-PCI bridge on shpchp blocks (the 6.1 kernel refuses the group); on pcieport or unbound it does not. */
static void test_bridge_driver(void) {
        struct group_member m[] = {
                member("0000:00:04.0", 0x060400, 1, "shpchp"),
                member("0000:01:01.0", 0x038000, 0, "bochs-drm"),
        };
        _cleanup_(iommu_group_freep) struct iommu_group *g = group_of(m, ELEMENTSOF(m));
        const struct group_member *blocker = iommu_group_find_blocker(g);

        ASSERT_TRUE(blocker);
        ASSERT_STREQ(blocker->address, "0000:00:04.0");
        ASSERT_STREQ(blocker->driver, "shpchp");
        {
                _cleanup_free_ char *text = NULL;

                ASSERT_EQ(iommu_group_describe_blockers(g, &text), 1);
                ASSERT_STREQ(text, "0000:00:04.0 is bound to host driver shpchp");
        }
        free(g->members[0].driver);
        g->members[0].driver = strdup("pcieport");
        ASSERT_TRUE(iommu_group_find_blocker(g) == NULL);
        free(g->members[0].driver);
        g->members[0].driver = NULL;
        ASSERT_TRUE(iommu_group_find_blocker(g) == NULL);
}

static void test_vfio_safe_drivers(void) {
        ASSERT_TRUE(driver_is_vfio_safe(NULL));
        ASSERT_TRUE(driver_is_vfio_safe("vfio-pci"));
        ASSERT_TRUE(driver_is_vfio_safe("pci-stub"));
        ASSERT_TRUE(!driver_is_vfio_safe("nvme"));
        ASSERT_TRUE(!driver_is_vfio_safe("vfio"));
        ASSERT_TRUE(driver_is_vfio_safe("pcieport"));
        ASSERT_TRUE(!driver_is_vfio_safe("shpchp"));
}

int main(void) {
        test_gpu_with_audio();
        test_group_with_nic();
        test_two_gpus();
        test_bridge_driver();
        test_vfio_safe_drivers();
        return 0;
}
