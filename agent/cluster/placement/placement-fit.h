/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Inside placement: how one host fits one VM, shared by the linear scan (placement.c) and the shape
 * index (placement-index.c) so that both decide by the very same rule. */

#include "placement/placement.h"

/* How well a feasible host fits; smaller is better, compared field by field. */
struct fit {
        uint32_t strands;         /* free GPUs left without their share of the host's CPU or memory */
        uint32_t scarcity;        /* how contended the chosen models are: fewer free in the cluster = higher */
        uint32_t leftover_chosen; /* free GPUs left of the models the VM takes */
        uint32_t leftover_total;  /* free GPUs left on the host */
        uint32_t cpus_left;
        uint64_t memory_left;
};

/* <0, 0, >0 as a fits better than, as well as, worse than b. */
int fit_compare(const struct fit *a, const struct fit *b);

/* Whether host `index` can take the VM; on success the model chosen per request and the fit. `cluster`
 * NULL: the models' scarcity is not considered (the baselines). */
bool host_fits(const struct host_capacity *h, size_t index, const struct vm_demand *vm,
               const struct cluster_free *cluster, int *chosen, struct fit *ret_fit);
