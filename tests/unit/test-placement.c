/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "placement/placement.h"
#include "tests.h"

static struct model_table models;
static int M60, M60C, T4;

static struct host_capacity host(const char *name, uint32_t cpus, uint64_t mem_gib, int model, uint16_t n) {
        struct host_capacity h = { .name = name, .state = HOST_UP, .cpus = cpus, .memory_mib = mem_gib * 1024 };

        if (model >= 0) {
                h.free_by_model[model] = n;
                h.free_total = n;
                h.gpus_total = n;
        }
        return h;
}

static void add_gpus(struct host_capacity *h, int model, uint16_t n) {
        h->free_by_model[model] = (uint16_t) (h->free_by_model[model] + n);
        h->free_total += n;
        h->gpus_total += n;
}

static struct gpu_request any_of(uint32_t count, uint64_t mask) {
        return (struct gpu_request) { .count = count, .models = mask, .specific_host = -1 };
}

/* Best fit keeps the big host free for the big request that only it can take. */
static void test_best_fit_keeps_large_requests_placeable(void) {
        struct host_capacity hosts[] = { host("big", 64, 512, M60, 4), host("small", 64, 512, M60, 1) };
        struct gpu_request one = any_of(1, 1ULL << M60), four = any_of(4, 1ULL << M60);
        struct vm_demand vm1 = { .vcpus = 4, .memory_mib = 8192, .requests = &one, .n_requests = 1 };
        struct vm_demand vm4 = { .vcpus = 4, .memory_mib = 8192, .requests = &four, .n_requests = 1 };
        struct placement p;

        ASSERT_EQ(placement_choose(hosts, 2, &vm1, NULL, POLICY_BEST_FIT, NULL, &p), 0);
        ASSERT_EQ(p.host, 1);
        ASSERT_EQ(p.model_for_request[0], M60);
        placement_commit(&hosts[1], &vm1, &p, NULL);
        ASSERT_EQ(hosts[1].free_total, 0);
        ASSERT_EQ(placement_choose(hosts, 2, &vm4, NULL, POLICY_BEST_FIT, NULL, &p), 0);
        ASSERT_EQ(p.host, 0);

        /* First fit would have spoilt it. */
        hosts[1] = host("small", 64, 512, M60, 1);
        ASSERT_EQ(placement_choose(hosts, 2, &vm1, NULL, POLICY_FIRST_FIT, NULL, &p), 0);
        ASSERT_EQ(p.host, 0);
}

/* All requests at once, several models, on one host. */
static void test_several_models_at_once(void) {
        struct host_capacity hosts[] = { host("a", 64, 512, M60, 2), host("b", 64, 512, M60, 2) };
        struct gpu_request reqs[] = { any_of(2, 1ULL << M60), any_of(1, 1ULL << T4) };
        struct vm_demand vm = { .vcpus = 8, .memory_mib = 16384, .requests = reqs, .n_requests = 2 };
        struct placement p;
        _cleanup_free_ char *why_a = NULL;

        add_gpus(&hosts[1], T4, 1);
        ASSERT_EQ(placement_choose(hosts, 2, &vm, NULL, POLICY_BEST_FIT, NULL, &p), 0);
        ASSERT_EQ(p.host, 1);
        ASSERT_EQ(p.model_for_request[0], M60);
        ASSERT_EQ(p.model_for_request[1], T4);
        why_a = placement_explain(&hosts[0], 0, &vm, &models);
        ASSERT_STREQ(why_a, "no free NVIDIA Tesla T4");
        ASSERT_TRUE(placement_explain(&hosts[1], 1, &vm, &models) == NULL);
}

/* A request that accepts two models takes the tighter one, and backtracks when that starves another. */
static void test_alternative_models_backtrack(void) {
        struct host_capacity h = host("a", 64, 512, M60, 2);
        struct gpu_request reqs[] = { any_of(1, (1ULL << M60) | (1ULL << M60C)), any_of(2, 1ULL << M60) };
        struct vm_demand vm = { .vcpus = 1, .memory_mib = 1024, .requests = reqs, .n_requests = 2 };
        struct placement p;

        add_gpus(&h, M60C, 3);
        ASSERT_EQ(placement_choose(&h, 1, &vm, NULL, POLICY_BEST_FIT, NULL, &p), 0);
        ASSERT_EQ(p.model_for_request[0], M60C);
        ASSERT_EQ(p.model_for_request[1], M60);
}

static void test_reasons(void) {
        struct host_capacity hosts[] = {
                host("down", 64, 512, M60, 4), host("maint", 64, 512, M60, 4), host("far", 64, 512, M60, 4),
                host("full", 64, 48, M60, 4), host("busy", 8, 512, M60, 4), host("few", 64, 512, M60, 1),
                host("other", 64, 512, T4, 8),
        };
        struct gpu_request two = any_of(2, 1ULL << M60);
        uint8_t affinity[] = { 1, 1, 0, 1, 1, 1, 1 };
        struct vm_demand vm = { .vcpus = 16, .memory_mib = 64 * 1024, .requests = &two, .n_requests = 1,
                                .affinity = affinity };
        static const char * const expected[] = {
                "unreachable", "in maintenance", "outside affinity", "needs 64 GiB, 48 GiB free",
                "needs 16 vCPUs, 8 free", "needs 2 NVIDIA Tesla M60, 1 free", "no free NVIDIA Tesla M60",
        };
        struct placement p;

        hosts[0].state = HOST_UNREACHABLE;
        hosts[1].state = HOST_MAINTENANCE;
        ASSERT_EQ(placement_choose(hosts, ELEMENTSOF(hosts), &vm, NULL, POLICY_BEST_FIT, NULL, &p), -ENOSPC);
        for (size_t i = 0; i < ELEMENTSOF(hosts); i++) {
                _cleanup_free_ char *why = placement_explain(&hosts[i], i, &vm, &models);

                ASSERT_STREQ(why, expected[i]);
        }
}

static void test_specific_gpu(void) {
        struct host_capacity hosts[] = { host("a", 64, 512, M60, 1), host("b", 64, 512, M60, 1) };
        struct gpu_request r = { .count = 1, .specific_host = 1, .specific_gpu = 0, .specific_model = M60,
                                 .specific_gpu_free = true };
        struct vm_demand vm = { .vcpus = 1, .memory_mib = 1024, .requests = &r, .n_requests = 1 };
        struct placement p;
        _cleanup_free_ char *why = NULL;

        ASSERT_EQ(placement_choose(hosts, 2, &vm, NULL, POLICY_BEST_FIT, NULL, &p), 0);
        ASSERT_EQ(p.host, 1);
        placement_commit(&hosts[1], &vm, &p, NULL);
        ASSERT_EQ(hosts[1].free_by_model[M60], 0);
        placement_uncommit(&hosts[1], &vm, &p, NULL);
        ASSERT_EQ(hosts[1].free_by_model[M60], 1);
        r.specific_gpu_free = false;
        ASSERT_EQ(placement_choose(hosts, 2, &vm, NULL, POLICY_BEST_FIT, NULL, &p), -ENOSPC);
        why = placement_explain(&hosts[1], 1, &vm, &models);
        ASSERT_STREQ(why, "the requested GPU is not free");
}

static void test_cpu_only_vm_prefers_hosts_without_free_gpus(void) {
        struct host_capacity hosts[] = { host("gpu", 64, 512, M60, 4), host("plain", 64, 512, -1, 0) };
        struct vm_demand vm = { .vcpus = 4, .memory_mib = 4096 };
        struct placement p;

        ASSERT_EQ(placement_choose(hosts, 2, &vm, NULL, POLICY_BEST_FIT, NULL, &p), 0);
        ASSERT_EQ(p.host, 1);
}

/* When every host would be left short of CPU for its free GPUs, the VM goes where it strands the fewest:
 * on "tight" (3 GPUs, 4 CPUs each) it would leave 2 GPUs with 2 CPUs between them, on "roomy" (4 GPUs,
 * 6 CPUs each) 3 GPUs with 14 CPUs, enough for the share of 2 of them. */
static void test_strands_fewest_gpus(void) {
        struct host_capacity hosts[] = { host("tight", 12, 512, M60, 3), host("roomy", 24, 512, M60, 4) };
        struct gpu_request one = any_of(1, 1ULL << M60);
        struct vm_demand vm = { .vcpus = 10, .memory_mib = 8192, .requests = &one, .n_requests = 1 };
        struct placement p;

        ASSERT_EQ(placement_choose(hosts, 2, &vm, NULL, POLICY_BEST_FIT, NULL, &p), 0);
        ASSERT_EQ(p.host, 1);
}

int main(void) {
        M60 = model_table_intern(&models, "NVIDIA Tesla M60");
        M60C = model_table_intern(&models, "NVIDIA Tesla M60.compute");
        T4 = model_table_intern(&models, "NVIDIA Tesla T4");
        ASSERT_EQ(model_table_intern(&models, "NVIDIA Tesla M60"), M60);
        test_best_fit_keeps_large_requests_placeable();
        test_several_models_at_once();
        test_alternative_models_backtrack();
        test_reasons();
        test_specific_gpu();
        test_cpu_only_vm_prefers_hosts_without_free_gpus();
        test_strands_fewest_gpus();
        model_table_done(&models);
        return 0;
}
