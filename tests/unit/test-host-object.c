/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The Host objects' values: free capacity as placement computes it, moved by each VM change. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clusterd.h"
#include "bus/cluster-objects.h"
#include "link/hostlink.h"
#include "tests.h"
#include "registry/vmstore.h"

static struct vm_record vm(const char *uuid, const char *name, bool on, const char *host, uint32_t vcpus,
                           uint64_t mib) {
        struct vm_record v = { .vcpus = vcpus, .memory_mib = mib, .gpus = (char *) "", .affinity = (char *) "",
                               .power = on ? VM_POWER_ON : VM_POWER_OFF, .host = (char *) host, .held = (char *) "", .flags = (char *) "" };

        strcpy(v.uuid, uuid);
        v.name = (char *) name;
        return v;
}

static struct host_values values(struct clusterd *c, const char *host) {
        struct host_values h;

        host_values_compute(host_view_find(c, host), &h);
        return h;
}

int main(void) {
        char dir[] = "/tmp/test-host-object.XXXXXX", cmd[128];
        struct cluster_gpu g1 = { .address = (char *) "0000:3b:00.0", .state = (char *) "host" },
                           g2 = { .address = (char *) "0000:3c:00.0", .state = (char *) "claimed" },
                           g3 = { .address = (char *) "0000:3d:00.0", .state = (char *) "vfio" };
        struct cluster_gpu *gpus[] = { &g1, &g2, &g3 };
        struct hostlink a = { .name = (char *) "alpha", .state = LINK_UP, .cpus = 16, .memory_mib = 65536,
                              .gpus = gpus, .n_gpus = 3 },
                        b = { .name = (char *) "beta", .state = LINK_UP, .cpus = 8, .memory_mib = 32768 };
        struct hostlink *hosts[] = { &a, &b };
        struct clusterd c = { .hosts = hosts, .n_hosts = 2 };
        struct vm_record running = vm("0f8fad5b-d9cb-469f-a165-70867728950e", "running", true, "alpha", 4, 8192);
        struct vm_record off = vm("7c9e6679-7425-40de-944b-e07fc1f90ae7", "off", false, "alpha", 2, 4096);
        struct vm_record moved = running, big = vm("7c9e6679-7425-40de-944b-e07fc1f90ae8", "big", true, "beta",
                                                   12, 1024);
        struct host_values h;

        ASSERT_TRUE(mkdtemp(dir));
        ASSERT_EQ(vmstore_open(dir, &c.db), 0);
        ASSERT_EQ(vmstore_insert(c.db, &running), 0);
        ASSERT_EQ(vmstore_insert(c.db, &off), 0);

        /* At start-up the running VMs' reservations come from the registry; an off VM reserves nothing. */
        ASSERT_EQ(host_views_setup(&c), 0);
        ASSERT_STREQ(host_view_find(&c, "alpha")->path, "/org/gpupass/cluster1/host/alpha");
        h = values(&c, "alpha");
        ASSERT_EQ(h.free_cpus, 12);
        ASSERT_EQ(h.free_memory_mib, 65536 - 8192);
        ASSERT_EQ(h.gpus, 3);
        ASSERT_EQ(h.free_gpus, 2); /* "host" and "vfio" are free, "claimed" is not */
        ASSERT_STREQ(h.state, "up");
        ASSERT_EQ(values(&c, "beta").free_cpus, 8);

        /* Moving to another host moves the reservation; powering off gives it back. */
        moved.host = (char *) "beta";
        host_views_vm_changed(&c, &running, &moved);
        ASSERT_EQ(values(&c, "alpha").free_cpus, 16);
        ASSERT_EQ(values(&c, "beta").free_cpus, 4);
        ASSERT_EQ(values(&c, "beta").free_memory_mib, 32768 - 8192);
        moved.power = VM_POWER_OFF;
        host_views_vm_changed(&c, &(struct vm_record) { .power = VM_POWER_ON, .host = (char *) "beta", .vcpus = 4,
                                                         .memory_mib = 8192 }, &moved);
        ASSERT_EQ(values(&c, "beta").free_cpus, 8);
        ASSERT_EQ(values(&c, "beta").free_memory_mib, 32768);

        /* More reserved than the host has (its agent now reports fewer CPUs): 0 free, not a wrap-around. */
        host_views_vm_changed(&c, NULL, &big);
        ASSERT_EQ(values(&c, "beta").free_cpus, 0);
        host_views_vm_changed(&c, &big, NULL);
        ASSERT_EQ(values(&c, "beta").free_cpus, 8);

        /* An unreachable host keeps its GPUs as last seen, none of them free, and says why. */
        a.state = LINK_UNREACHABLE;
        a.error = (char *) "connection lost";
        h = values(&c, "alpha");
        ASSERT_STREQ(h.state, "unreachable");
        ASSERT_STREQ(h.unreachable_reason, "connection lost");
        ASSERT_EQ(h.gpus, 3);
        ASSERT_EQ(h.free_gpus, 0);
        ASSERT_TRUE(host_view_find(&c, "gamma") == NULL);

        host_views_free(&c);
        vmstore_close(c.db);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        ASSERT_EQ(system(cmd), 0);
        return 0;
}
