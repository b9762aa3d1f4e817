/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Placement of a VM at power-on, as pure functions over a snapshot of the cluster: which host has all the
 * GPUs the VM asks for (every request at once), enough free CPU and memory, and lies inside the VM's
 * affinity; among those, the best fit. No I/O: the aggregator's PowerOn and the trace benchmark call the
 * same code.
 *
 * Models are interned to small integers (model_table) so that a host's free GPUs are an array indexed by
 * model and checking a host is a few loads.
 */

#define PLACEMENT_MAX_MODELS 64

struct model_table {
        char **names;
        size_t n;
};

/* The index of name, adding it if new; -ENOSPC beyond PLACEMENT_MAX_MODELS. */
int model_table_intern(struct model_table *t, const char *name);
int model_table_find(const struct model_table *t, const char *name);
void model_table_done(struct model_table *t);

enum host_state {
        HOST_UP,
        HOST_UNREACHABLE,
        HOST_MAINTENANCE,
};

struct host_capacity {
        const char *name;
        enum host_state state;
        uint32_t cpus;          /* vCPUs the host offers */
        uint64_t memory_mib;
        uint32_t cpus_used;     /* reserved by its running VMs */
        uint64_t memory_used_mib;
        uint32_t gpus_total;    /* GPUs the host has, free or not */
        uint32_t free_total;    /* sum of free_by_model */
        uint16_t free_by_model[PLACEMENT_MAX_MODELS];
};

/* One GPU request of a VM: `count` GPUs, all of one of `models` (a bit per model index), or, with
 * specific_host >= 0, exactly the GPU `specific_gpu` (an index the caller resolves) on that host. */
struct gpu_request {
        uint32_t count;
        uint64_t models;        /* bitmask over model indexes */
        int specific_host;      /* -1: any host */
        int specific_gpu;       /* caller's GPU index on specific_host */
        int specific_model;     /* that GPU's model index */
        bool specific_gpu_free; /* the caller says whether that GPU is free now */
};

struct vm_demand {
        uint32_t vcpus;
        uint64_t memory_mib;
        const struct gpu_request *requests;
        size_t n_requests;
        const uint8_t *affinity; /* NULL: any host; else one byte per host, nonzero = allowed */
};

/* Free GPUs per model over the whole cluster. A request that accepts several models takes the most
 * plentiful one, so the scarce models stay for the VMs that can use nothing else. NULL: not known. */
struct cluster_free {
        uint32_t by_model[PLACEMENT_MAX_MODELS];
};

/* The decision: the host and, per request, the model chosen (a specific GPU's own model). */
#define PLACEMENT_MAX_REQUESTS 16

struct placement {
        int host;
        int model_for_request[PLACEMENT_MAX_REQUESTS];
};

enum placement_policy {
        POLICY_BEST_FIT,  /* ours */
        POLICY_FIRST_FIT, /* baselines for the benchmark */
        POLICY_RANDOM_FIT,
};

/*
 * Chooses a host. Returns 0 and fills *ret, or -ENOSPC when no host fits (then placement_explain() says
 * why for each host), -EINVAL for a demand that can never fit (too many requests).
 * Best fit, in this order: a host where the VM leaves every remaining free GPU its share of the host's CPU
 * and memory (else those GPUs are stranded); for a request that accepts several models, the model with the
 * most free GPUs in the cluster (the scarce ones stay for VMs that can use nothing else); the host left with
 * the fewest free GPUs of the chosen models, then the fewest free GPUs overall (keeping hosts with many
 * free GPUs for the large requests only they can take), the least free CPU, the least free memory, the
 * lowest index. Deterministic.
 */
int placement_choose(const struct host_capacity *hosts, size_t n_hosts, const struct vm_demand *vm,
                     const struct cluster_free *cluster, enum placement_policy policy, uint64_t *random_state,
                     struct placement *ret);
/* Sums the hosts' free GPUs per model (hosts that are up only). */
void cluster_free_compute(const struct host_capacity *hosts, size_t n_hosts, struct cluster_free *ret);

/* Why host h cannot take the VM, in an operator's words ("needs 64 GiB, 48 GiB free"); NULL if it can.
 * Returns a malloc'ed string. */
char *placement_explain(const struct host_capacity *host, size_t index, const struct vm_demand *vm,
                        const struct model_table *models);

/* Takes the VM's resources from the host (after a successful claim), or gives them back. */
void placement_commit(struct host_capacity *host, const struct vm_demand *vm, const struct placement *p,
                      struct cluster_free *cluster);
void placement_uncommit(struct host_capacity *host, const struct vm_demand *vm, const struct placement *p,
                        struct cluster_free *cluster);
