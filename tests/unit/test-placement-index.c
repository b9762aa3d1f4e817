/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The shape index must decide exactly as the linear scan does, through any sequence of placements,
 * departures and hosts going down and coming back. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "placement/placement-index.h"
#include "tests.h"

#define N_MODELS 4

static uint64_t rng = 12345;

static uint32_t rnd(uint32_t n) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return (uint32_t) (rng % n);
}

/* A few kinds of machine, so that many hosts share a shape, as in a real cluster. */
static struct host_capacity machine(unsigned kind) {
        static const struct { uint32_t cpus; uint64_t mib; int model; uint16_t gpus; } kinds[] = {
                { 96, 786432, 0, 8 }, { 64, 262144, 1, 4 }, { 32, 131072, 2, 2 }, { 128, 1048576, 3, 8 },
                { 48, 393216, -1, 0 },
        };
        struct host_capacity h = { .name = "h", .state = HOST_UP, .cpus = kinds[kind].cpus,
                                   .memory_mib = kinds[kind].mib };

        if (kinds[kind].model >= 0) {
                h.free_by_model[kinds[kind].model] = kinds[kind].gpus;
                h.gpus_total = h.free_total = kinds[kind].gpus;
        }
        return h;
}

static size_t distinct(const struct host_capacity *hosts, size_t n) {
        size_t count = 0;

        for (size_t i = 0; i < n; i++) {
                bool seen = false;

                for (size_t j = 0; j < i && !seen; j++)
                        seen = hosts[j].state == hosts[i].state && hosts[j].cpus_used == hosts[i].cpus_used &&
                               hosts[j].cpus == hosts[i].cpus && hosts[j].memory_mib == hosts[i].memory_mib &&
                               hosts[j].memory_used_mib == hosts[i].memory_used_mib &&
                               hosts[j].gpus_total == hosts[i].gpus_total && hosts[j].free_total == hosts[i].free_total &&
                               memcmp(hosts[j].free_by_model, hosts[i].free_by_model, sizeof(hosts[i].free_by_model)) == 0;
                count += !seen;
        }
        return count;
}

struct running {
        struct gpu_request requests[2];
        struct vm_demand demand;
        struct placement placement;
};

static void test_same_decisions_as_linear_scan(void) {
        enum { N_HOSTS = 240, STEPS = 30000 };
        struct host_capacity hosts[N_HOSTS];
        struct running *vms = calloc(STEPS, sizeof(*vms));
        size_t n_vms = 0, placed = 0, refused = 0;
        struct placement_index *ix = NULL;
        struct cluster_free cluster;
        uint8_t affinity[N_HOSTS];

        ASSERT_TRUE(vms);
        for (size_t i = 0; i < N_HOSTS; i++)
                hosts[i] = machine(rnd(5));
        ASSERT_EQ(placement_index_new(hosts, N_HOSTS, &ix), 0);
        ASSERT_EQ(placement_index_shapes(ix), distinct(hosts, N_HOSTS));
        cluster_free_compute(hosts, N_HOSTS, &cluster);

        for (size_t step = 0; step < STEPS; step++) {
                uint32_t what = rnd(100);

                if (step % 1000 == 0)
                        ASSERT_EQ(placement_index_shapes(ix), distinct(hosts, N_HOSTS));
                if (what < 65 || n_vms == 0) {
                        struct running *v = &vms[n_vms];
                        struct placement linear, indexed;
                        enum placement_policy policy = rnd(10) == 0 ? POLICY_FIRST_FIT : POLICY_BEST_FIT;
                        uint64_t seed_a = step, seed_b = step;
                        int ra, rb;

                        v->demand = (struct vm_demand) { .vcpus = 1 + rnd(24), .memory_mib = 1024 * (1 + rnd(128)),
                                                         .requests = v->requests, .n_requests = rnd(3) };
                        for (size_t r = 0; r < v->demand.n_requests; r++)
                                v->requests[r] = (struct gpu_request) { .count = 1 + rnd(4), .specific_host = -1,
                                                                        .models = 1 + rnd((1 << N_MODELS) - 1) };
                        if (rnd(20) == 0) {
                                for (size_t i = 0; i < N_HOSTS; i++)
                                        affinity[i] = rnd(4) == 0;
                                v->demand.affinity = affinity;
                        }
                        ra = placement_choose(hosts, N_HOSTS, &v->demand, &cluster, policy, &seed_a, &linear);
                        rb = placement_index_choose(ix, &v->demand, &cluster, policy, &seed_b, &indexed);
                        ASSERT_EQ(ra, rb);
                        if (ra < 0) {
                                refused++;
                                continue;
                        }
                        ASSERT_EQ(linear.host, indexed.host);
                        for (size_t r = 0; r < v->demand.n_requests; r++)
                                ASSERT_EQ(linear.model_for_request[r], indexed.model_for_request[r]);
                        v->placement = indexed;
                        v->demand.affinity = NULL;
                        ASSERT_EQ(placement_index_commit(ix, &v->demand, &v->placement, &cluster), 0);
                        n_vms++;
                        placed++;
                } else if (what < 97) {
                        size_t k = rnd((uint32_t) n_vms);

                        ASSERT_EQ(placement_index_uncommit(ix, &vms[k].demand, &vms[k].placement, &cluster), 0);
                        vms[k] = vms[--n_vms];
                } else {
                        /* A host goes down, into maintenance or comes back; its VMs stay on its books. */
                        size_t h = rnd(N_HOSTS);

                        hosts[h].state = (enum host_state) rnd(3);
                        ASSERT_EQ(placement_index_update(ix, h), 0);
                        cluster_free_compute(hosts, N_HOSTS, &cluster);
                }
        }
        /* The run must have exercised both outcomes, or it proves nothing. */
        ASSERT_TRUE(placed > 1000);
        ASSERT_TRUE(refused > 100);
        fprintf(stderr, "%zu placed, %zu refused, %zu shapes at the end\n", placed, refused, placement_index_shapes(ix));
        placement_index_free(ix);
        free(vms);
}

/* Identical hosts are one shape; the lowest index among them is taken, as the linear scan takes it. */
static void test_identical_hosts_are_one_shape(void) {
        struct host_capacity hosts[100];
        struct gpu_request one = { .count = 1, .models = 1, .specific_host = -1 };
        struct vm_demand vm = { .vcpus = 4, .memory_mib = 4096, .requests = &one, .n_requests = 1 };
        struct placement_index *ix = NULL;
        struct placement p, q;

        for (size_t i = 0; i < ELEMENTSOF(hosts); i++)
                hosts[i] = machine(0);
        ASSERT_EQ(placement_index_new(hosts, ELEMENTSOF(hosts), &ix), 0);
        ASSERT_EQ(placement_index_shapes(ix), 1);
        ASSERT_EQ(placement_index_choose(ix, &vm, NULL, POLICY_BEST_FIT, NULL, &p), 0);
        ASSERT_EQ(p.host, 0);
        ASSERT_EQ(placement_index_commit(ix, &vm, &p, NULL), 0);
        ASSERT_EQ(placement_index_shapes(ix), 2);
        /* Host 0 now has 7 free: the tighter fit, so the next VM goes there too. */
        ASSERT_EQ(placement_index_choose(ix, &vm, NULL, POLICY_BEST_FIT, NULL, &q), 0);
        ASSERT_EQ(q.host, 0);
        /* Host 57 going down and back changes nothing about who comes first. */
        hosts[57].state = HOST_UNREACHABLE;
        ASSERT_EQ(placement_index_update(ix, 57), 0);
        ASSERT_EQ(placement_index_shapes(ix), 3);
        hosts[57].state = HOST_UP;
        ASSERT_EQ(placement_index_update(ix, 57), 0);
        ASSERT_EQ(placement_index_shapes(ix), 2);
        ASSERT_EQ(placement_index_uncommit(ix, &vm, &p, NULL), 0);
        ASSERT_EQ(placement_index_shapes(ix), 1);
        placement_index_free(ix);
}

static void test_empty_cluster(void) {
        struct vm_demand vm = { .vcpus = 1, .memory_mib = 1024 };
        struct placement_index *ix = NULL;
        struct placement p;

        ASSERT_EQ(placement_index_new(NULL, 0, &ix), 0);
        ASSERT_EQ(placement_index_shapes(ix), 0);
        ASSERT_EQ(placement_index_choose(ix, &vm, NULL, POLICY_BEST_FIT, NULL, &p), -ENOSPC);
        placement_index_free(ix);
}

int main(void) {
        test_identical_hosts_are_one_shape();
        test_empty_cluster();
        test_same_decisions_as_linear_scan();
        return 0;
}
