/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What CreateVm, SetVmGpus, SetVmResources and SetVmAffinity accept, and the words of each refusal. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "strv.h"
#include "tests.h"
#include "registry/vm-spec.h"

static void test_requests(void) {
        static const char * const good[] = {
                "", "1:NVIDIA Tesla M60", "2:NVIDIA Tesla M60|NVIDIA Tesla M60.compute",
                "1:NVIDIA Tesla T4;=node-1/0000:3b:00.0", "=node-1/3b:00.0", "64:A",
                "1:A;1:A;1:A;1:A;1:A;1:A;1:A;1:A;1:A;1:A;1:A;1:A;1:A;1:A;1:A;1:A",
        };
        static const char * const bad[] = {
                "0:NVIDIA Tesla M60", "65:X", "x:NVIDIA", "2:", "NVIDIA Tesla M60", "2:A||B", "2:|A", "2:A|",
                "=node-1", "=/0000:3b:00.0", "=node-1/0000:3b:00", "-1:A", " 2:A", "+2:A", "99999999999999999999:A",
                "1:A;1:A;1:A;1:A;1:A;1:A;1:A;1:A;1:A;1:A;1:A;1:A;1:A;1:A;1:A;1:A;1:A",
        };

        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                char *why = NULL;

                if (gpu_requests_validate(good[i], &why) != 0) {
                        fprintf(stderr, "refused good request '%s': %s\n", good[i], why);
                        abort();
                }
                ASSERT_TRUE(!why);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                char *why = NULL;

                if (gpu_requests_validate(bad[i], &why) != -EINVAL || !why) {
                        fprintf(stderr, "accepted bad request '%s'\n", bad[i]);
                        abort();
                }
                free(why);
        }
}

/* The one parser: what placement, the checks against the view and reflash read. */
static void test_parse(void) {
        struct gpu_request_spec *specs = NULL;
        _cleanup_free_ char *why = NULL;
        size_t n = 0;

        ASSERT_EQ(gpu_requests_parse("2:NVIDIA Tesla M60|NVIDIA Tesla T4;=alpha/3b:00.0", &specs, &n, &why), 0);
        ASSERT_EQ(n, 2);
        ASSERT_EQ(specs[0].count, 2);
        ASSERT_EQ(strv_length(specs[0].models), 2);
        ASSERT_STREQ(specs[0].models[1], "NVIDIA Tesla T4");
        ASSERT_TRUE(!specs[0].host);
        ASSERT_EQ(specs[1].count, 1);
        ASSERT_STREQ(specs[1].host, "alpha");
        ASSERT_STREQ(specs[1].address, "3b:00.0");
        ASSERT_TRUE(!specs[1].models);
        gpu_request_specs_free(specs, n);
        ASSERT_EQ(gpu_requests_parse("", &specs, &n, &why), 0);
        ASSERT_EQ(n, 0);
        gpu_request_specs_free(specs, n);
        ASSERT_EQ(gpu_requests_parse("2:", &specs, &n, NULL), -EINVAL); /* no reason asked for: none given */
        ASSERT_TRUE(gpu_requests_name_model("1:A;2:B|C", "C"));
        ASSERT_TRUE(!gpu_requests_name_model("1:A;=h/3b:00.0", "h"));

        /* One matcher, full or short, either case; not a prefix. */
        ASSERT_TRUE(gpu_address_matches("0000:3b:00.0", "3b:00.0"));
        ASSERT_TRUE(gpu_address_matches("0000:3b:00.0", "0000:3B:00.0"));
        ASSERT_TRUE(!gpu_address_matches("0000:3b:00.0", "3b:00.1"));
        ASSERT_TRUE(!gpu_address_matches("0001:3b:00.0", "3b:00.0"));
        ASSERT_TRUE(!gpu_address_matches("0000:3b:00.0", "3b:00"));
}

static void test_names(void) {
        static const char * const good[] = { "a", "train-01", "job_7.gpu", "0123456789012345678901234567890123456789012345678901234567890123" };
        char *why = NULL;

        for (size_t i = 0; i < ELEMENTSOF(good); i++)
                ASSERT_EQ(vm_name_check(good[i], &why), 0);
        ASSERT_EQ(vm_name_check("", &why), -EINVAL);
        ASSERT_STREQ(why, "VM name '' must have 1 to 64 characters");
        why = mfree(why);
        ASSERT_EQ(vm_name_check("01234567890123456789012345678901234567890123456789012345678901234", &why), -EINVAL);
        why = mfree(why);
        ASSERT_EQ(vm_name_check("a b", &why), -EINVAL);
        ASSERT_STREQ(why, "VM name 'a b' may only hold letters, digits, '-', '_' and '.'");
        why = mfree(why);
        ASSERT_EQ(vm_name_check("a/b", &why), -EINVAL);
        why = mfree(why);
        /* Even a name that is not hexadecimal: the shape alone makes lookups ambiguous. */
        ASSERT_EQ(vm_name_check("zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz", &why), -EINVAL);
        ASSERT_STREQ(why, "VM name 'zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz' has the shape of a UUID: VMs are named by UUID or name");
        why = mfree(why);
}

static void test_resources(void) {
        char *why = NULL;

        ASSERT_EQ(vm_resources_check(1, 64, &why), 0);
        ASSERT_EQ(vm_resources_check(4096, 64ULL * 1024 * 1024, &why), 0);
        ASSERT_EQ(vm_resources_check(0, 1024, &why), -EINVAL);
        ASSERT_STREQ(why, "0 vCPUs: a VM has 1 to 4096");
        why = mfree(why);
        ASSERT_EQ(vm_resources_check(4097, 1024, &why), -EINVAL);
        why = mfree(why);
        ASSERT_EQ(vm_resources_check(1, 63, &why), -EINVAL);
        ASSERT_STREQ(why, "63 MiB of memory: a VM has 64 MiB to 64 TiB");
        why = mfree(why);
        ASSERT_EQ(vm_resources_check(1, 64ULL * 1024 * 1024 + 1, &why), -EINVAL);
        why = mfree(why);
}

static bool is_host(const char *name, void *userdata) {
        return strv_contains(userdata, name);
}

static void test_affinity(void) {
        char *cluster[] = { (char *) "h1", (char *) "h2", (char *) "h3", NULL };
        char *twice[] = { (char *) "h2", (char *) "h1", (char *) "h2", NULL };
        char *unknown[] = { (char *) "h1", (char *) "h9", NULL };
        char *none[] = { NULL };
        char *joined = NULL, *why = NULL;

        ASSERT_EQ(vm_affinity_join(twice, is_host, cluster, &joined, &why), 0);
        ASSERT_STREQ(joined, "h2,h1");
        joined = mfree(joined);
        ASSERT_EQ(vm_affinity_join(none, is_host, cluster, &joined, &why), 0);
        ASSERT_STREQ(joined, "");
        joined = mfree(joined);
        ASSERT_EQ(vm_affinity_join(NULL, is_host, cluster, &joined, &why), 0);
        ASSERT_STREQ(joined, "");
        joined = mfree(joined);
        ASSERT_EQ(vm_affinity_join(unknown, is_host, cluster, &joined, &why), -ENOENT);
        ASSERT_STREQ(why, "Host h9 is not in the cluster");
        ASSERT_TRUE(!joined);
        free(why);
}

int main(void) {
        test_parse();
        test_requests();
        test_names();
        test_resources();
        test_affinity();
        return 0;
}
