/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdint.h>

#include "capacity.h"
#include "tests.h"

/* The kernel's CPU lists (cpu/online) as the agent counts them for the aggregator's placement. */
static void test_cpu_lists(void) {
        uint32_t n = 0;

        ASSERT_EQ(cpu_list_count("0", &n), 0);
        ASSERT_EQ(n, 1);
        ASSERT_EQ(cpu_list_count("0-63\n", &n), 0);
        ASSERT_EQ(n, 64);
        ASSERT_EQ(cpu_list_count("0-3,8,10-11", &n), 0);
        ASSERT_EQ(n, 7);
        ASSERT_EQ(cpu_list_count("", &n), -EINVAL);
        ASSERT_EQ(cpu_list_count("3-1", &n), -EINVAL);
        ASSERT_EQ(cpu_list_count("0-", &n), -EINVAL);
        ASSERT_EQ(cpu_list_count("0,,1", &n), -EINVAL);
        ASSERT_EQ(cpu_list_count("a", &n), -EINVAL);
        ASSERT_EQ(cpu_list_count("0 1", &n), -EINVAL);
}

int main(void) {
        test_cpu_lists();
        return 0;
}
