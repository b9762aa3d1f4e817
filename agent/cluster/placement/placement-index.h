/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "placement/placement.h"

/*
 * Best-fit placement whose cost grows with the number of different hosts, not the number of hosts.
 *
 * Hosts are grouped into shapes: everything placement looks at except where the host is in the list (its
 * state, size, the CPU and memory in use, the free GPUs per model). Every host of a shape fits a VM exactly
 * as well as the others, so best fit scores each shape once, on its lowest-index host, and chooses what
 * the linear scan (placement_choose) chooses: the lowest index among the best fits. A cluster of identical
 * machines is one shape until VMs are placed; each placement moves one host and adds at most one shape.
 *
 * Demands the shapes cannot answer go to the linear scan, with the same result: a VM with an affinity
 * list or a request for one specific GPU (both depend on which host it is), and the first-fit and
 * random-fit baselines.
 *
 * The index refers to the caller's host array and does not copy the names. After changing a host record,
 * call placement_index_update (placement_index_commit does both).
 */
struct placement_index;

int placement_index_new(struct host_capacity *hosts, size_t n_hosts, struct placement_index **ret);
struct placement_index *placement_index_free(struct placement_index *ix);

/* Moves host `index` to the shape of its record as it is now. On -ENOMEM the index stops using shapes
 * and every later decision is a linear scan: slower, never wrong. */
int placement_index_update(struct placement_index *ix, size_t index);

/* Same contract and result as placement_choose over the indexed hosts. */
int placement_index_choose(const struct placement_index *ix, const struct vm_demand *vm,
                           const struct cluster_free *cluster, enum placement_policy policy, uint64_t *random_state,
                           struct placement *ret);

/* placement_commit / placement_uncommit on the indexed host, then placement_index_update. */
int placement_index_commit(struct placement_index *ix, const struct vm_demand *vm, const struct placement *p,
                           struct cluster_free *cluster);
int placement_index_uncommit(struct placement_index *ix, const struct vm_demand *vm, const struct placement *p,
                             struct cluster_free *cluster);

/* How many different hosts there are now (what a best-fit decision scores). */
size_t placement_index_shapes(const struct placement_index *ix);
