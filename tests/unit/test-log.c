/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The journal fields an operator filters on (journalctl GPUPASS_GPU=... GPUPASS_VM=... GPUPASS_HOST=...):
 * exactly the ones given, never an empty one. */
#include "log.h"
#include "tests.h"

static void test_all_fields(void) {
        char *f[LOG_FIELDS_MAX];
        size_t n;

        ASSERT_EQ(0, log_journal_fields(LOG_NOTICE, "0000:3b:00.0", "0f8fad5b-d9cb-469f-a165-70867728950e", "gpu01",
                                        "claimed", f, &n));
        ASSERT_EQ(5, n);
        ASSERT_STREQ("MESSAGE=claimed", f[0]);
        ASSERT_STREQ("PRIORITY=5", f[1]);
        ASSERT_STREQ("GPUPASS_GPU=0000:3b:00.0", f[2]);
        ASSERT_STREQ("GPUPASS_VM=0f8fad5b-d9cb-469f-a165-70867728950e", f[3]);
        ASSERT_STREQ("GPUPASS_HOST=gpu01", f[4]);
        log_fields_free(f, n);
}

static void test_unset_and_empty_fields_left_out(void) {
        char *f[LOG_FIELDS_MAX];
        size_t n;

        ASSERT_EQ(0, log_journal_fields(LOG_INFO, NULL, "", "gpu02", "Host gpu02 is up: 2 GPUs", f, &n));
        ASSERT_EQ(3, n);
        ASSERT_STREQ("MESSAGE=Host gpu02 is up: 2 GPUs", f[0]);
        ASSERT_STREQ("PRIORITY=6", f[1]);
        ASSERT_STREQ("GPUPASS_HOST=gpu02", f[2]);
        log_fields_free(f, n);

        ASSERT_EQ(0, log_journal_fields(LOG_ERR, NULL, NULL, NULL, "plain", f, &n));
        ASSERT_EQ(2, n);
        ASSERT_STREQ("PRIORITY=3", f[1]);
        log_fields_free(f, n);
}

int main(void) {
        test_all_fields();
        test_unset_and_empty_fields_left_out();
        return 0;
}
