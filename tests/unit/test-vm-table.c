/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The in-memory table of VMs by UUID: what a reconcile or a held-back signal is looked up in. */
#include <errno.h>
#include <stdio.h>

#include "registry/vm-table.h"
#include "tests.h"

int main(void) {
        struct vm_table *t;
        char uuid[37];
        int values[3000];

        ASSERT_EQ(vm_table_new(&t), 0);
        for (int i = 0; i < 3000; i++) {
                snprintf(uuid, sizeof(uuid), "%08x-0000-4000-8000-%012x", (unsigned) i * 2654435761u, i);
                values[i] = i;
                ASSERT_EQ(vm_table_put(t, uuid, &values[i]), 0);
        }
        ASSERT_EQ(vm_table_size(t), 3000);
        snprintf(uuid, sizeof(uuid), "%08x-0000-4000-8000-%012x", 17u * 2654435761u, 17);
        ASSERT_TRUE(vm_table_get(t, uuid) == &values[17]);
        ASSERT_EQ(vm_table_put(t, uuid, &values[0]), -EEXIST); /* one value per VM */
        ASSERT_TRUE(vm_table_remove(t, uuid) == &values[17]);
        ASSERT_TRUE(!vm_table_get(t, uuid));
        ASSERT_TRUE(!vm_table_remove(t, uuid));
        ASSERT_EQ(vm_table_size(t), 2999);
        for (int n = 2999; n > 0; n--)
                ASSERT_TRUE(vm_table_steal_first(t));
        ASSERT_TRUE(!vm_table_steal_first(t));
        ASSERT_EQ(vm_table_size(t), 0);
        vm_table_free(t);
        return 0;
}
