/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The kept placement view: a batch of decisions sees the reservations written before it (2 + 1 + 1 GPUs
 * on four), a group is reserved as a whole, and a refusal names each host's real state. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clusterd.h"
#include "lifecycle/placement-view.h"
#include "link/hostlink.h"
#include "macro.h"
#include "registry/vmstore.h"
#include "tests.h"

#define V100 "NVIDIA Tesla V100"
#define A6K "NVIDIA RTX A6000"

static struct cluster_gpu gpu(const char *address, const char *model, int group) {
        return (struct cluster_gpu) { .path = (char *) address, .address = (char *) address, .model = (char *) model,
                                      .state = (char *) "vfio", .owner = (char *) "", .iommu_group = group };
}

static void on_change(const struct vm_record *old, const struct vm_record *new, void *userdata) {
        placement_view_vm_changed(userdata, old, new);
}

static struct vm_record vm(const char *uuid, const char *name, const char *gpus) {
        struct vm_record v = { .vcpus = 2, .memory_mib = 4096, .gpus = (char *) gpus, .affinity = (char *) "",
                               .host = (char *) "", .held = (char *) "", .groups = (char *) "",
                               .flags = (char *) "" };

        strcpy(v.uuid, uuid);
        v.name = (char *) name;
        return v;
}

/* The assignments' texts, freed at the end. */
static char *texts[32];
static size_t n_texts;

/* Chooses for v and writes the assignment, as the reconciler does before its claims. */
static int place(struct clusterd *c, struct placement_view *pv, struct vm_record *v, const char *pin,
                 char **ret_why) {
        struct placement_choice p;
        int r;

        r = placement_view_choose(pv, v, NULL, NULL, pin, &p, ret_why);
        if (r < 0)
                return r;
        v->host = (char *) c->hosts[p.host]->name;
        v->held = texts[n_texts++] = p.held;
        v->groups = texts[n_texts++] = p.groups;
        v->power = VM_POWER_STARTING;
        ASSERT_EQ(vmstore_update(c->db, v), 0);
        return 0;
}

int main(void) {
        char dir[] = "/tmp/test-placement-view.XXXXXX", cmd[128];
        struct cluster_gpu v1 = gpu("0000:3b:00.0", V100, 1), v2 = gpu("0000:3c:00.0", V100, 2),
                           v3 = gpu("0000:3d:00.0", V100, 3), v4 = gpu("0000:3e:00.0", V100, 4),
                           a1 = gpu("0000:42:00.0", A6K, 40), a2 = gpu("0000:43:00.0", A6K, 40);
        struct cluster_gpu *volta_gpus[] = { &v1, &v2, &v3, &v4 }, *pair_gpus[] = { &a1, &a2 };
        struct hostlink volta = { .name = (char *) "volta", .state = LINK_UP, .cpus = 24, .memory_mib = 98304,
                                  .gpus = volta_gpus, .n_gpus = 4 },
                        pair = { .name = (char *) "pair", .state = LINK_UP, .cpus = 32, .memory_mib = 131072,
                                 .gpus = pair_gpus, .n_gpus = 2 },
                        ghost = { .name = (char *) "ghost", .state = LINK_UNREACHABLE };
        struct hostlink *hosts[] = { &volta, &pair, &ghost };
        struct clusterd c = { .hosts = hosts, .n_hosts = 3 };
        struct vm_record wide = vm("0f8fad5b-d9cb-469f-a165-70867728950e", "wide", "2:" V100),
                         n1 = vm("7c9e6679-7425-40de-944b-e07fc1f90ae7", "narrow-1", "1:" V100),
                         n2 = vm("7c9e6679-7425-40de-944b-e07fc1f90ae8", "narrow-2", "1:" V100),
                         n3 = vm("7c9e6679-7425-40de-944b-e07fc1f90ae9", "narrow-3", "1:" V100),
                         s1 = vm("1c9e6679-7425-40de-944b-e07fc1f90ae7", "shared-1", "1:" A6K),
                         s2 = vm("1c9e6679-7425-40de-944b-e07fc1f90ae8", "shared-2", "1:" A6K);
        struct vm_record *all[] = { &wide, &n1, &n2, &n3, &s1, &s2 };
        struct placement_view *pv;
        char *why = NULL;

        ASSERT_TRUE(mkdtemp(dir));
        ASSERT_EQ(vmstore_open(dir, &c.db), 0);
        for (size_t i = 0; i < ELEMENTSOF(all); i++)
                ASSERT_EQ(vmstore_insert(c.db, all[i]), 0);
        ASSERT_EQ(placement_view_new(&c, &pv), 0);
        vmstore_set_hook(c.db, on_change, pv);

        /* 2 + 1 + 1 on four V100, one decision after the other: each sees the ones before. */
        ASSERT_EQ(place(&c, pv, &wide, NULL, NULL), 0);
        ASSERT_STREQ(wide.host, "volta");
        ASSERT_STREQ(wide.held, "0000:3b:00.0,0000:3c:00.0");
        ASSERT_STREQ(wide.groups, "1,2");
        ASSERT_EQ(place(&c, pv, &n1, NULL, NULL), 0);
        ASSERT_STREQ(n1.held, "0000:3d:00.0");
        ASSERT_EQ(place(&c, pv, &n2, NULL, NULL), 0);
        ASSERT_STREQ(n2.held, "0000:3e:00.0");
        /* The fourth finds none free, and the refusal says why per host, in its real state. */
        ASSERT_EQ(place(&c, pv, &n3, NULL, &why), -ENOSPC);
        ASSERT_TRUE(strstr(why, "No host can run VM narrow-3; it stays off."));
        ASSERT_TRUE(strstr(why, "volta: no free " V100));
        ASSERT_TRUE(strstr(why, "ghost: unreachable;"));
        ASSERT_TRUE(!strstr(why, "volta: unreachable") && !strstr(why, "pair: unreachable"));
        why = mfree(why);

        /* A group is reserved whole: the second A6000 of group 40 is not given to another VM. */
        ASSERT_EQ(place(&c, pv, &s1, NULL, NULL), 0);
        ASSERT_STREQ(s1.held, "0000:42:00.0");
        ASSERT_EQ(place(&c, pv, &s2, NULL, &why), -ENOSPC);
        ASSERT_TRUE(strstr(why, "pair: no free " A6K));
        why = mfree(why);

        /* Off: the reservation goes, the next decision may take it. */
        n2.power = VM_POWER_OFF;
        ASSERT_EQ(vmstore_update(c.db, &n2), 0);
        ASSERT_EQ(place(&c, pv, &n3, NULL, NULL), 0);
        ASSERT_STREQ(n3.held, "0000:3e:00.0");

        /* Pinned to a host (restart:HOST) or with hosts left out: each other host says so. */
        s1.power = VM_POWER_OFF;
        ASSERT_EQ(vmstore_update(c.db, &s1), 0);
        ASSERT_EQ(place(&c, pv, &s2, "volta", &why), -ENOSPC);
        ASSERT_TRUE(strstr(why, "pair: VM shared-2 is powered on again on volta only;"));
        why = mfree(why);
        pair.maintenance = true;
        placement_view_host_changed(pv, &pair);
        ASSERT_EQ(place(&c, pv, &s2, NULL, &why), -ENOSPC);
        ASSERT_TRUE(strstr(why, "pair: in maintenance;"));
        why = mfree(why);
        pair.maintenance = false;
        placement_view_host_changed(pv, &pair);
        ASSERT_EQ(place(&c, pv, &s2, NULL, NULL), 0);

        vmstore_set_hook(c.db, NULL, NULL);
        placement_view_free(pv);
        for (size_t i = 0; i < n_texts; i++)
                free(texts[i]);
        vmstore_close(c.db);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        ASSERT_EQ(system(cmd), 0);
        return 0;
}
