/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The cluster as placement sees it, kept current instead of rebuilt per decision: one host record per
 * host (placement/placement.h), the shape index over them, the free GPUs per model, and the reservations
 * of the registry's assigned VMs. It is updated from two hooks only: a host's view changed (the link
 * reported something) and a VM's record changed (the registry hook). A PowerOn decision then costs what
 * the placement benchmark measures.
 *
 * A VM reserves its vCPUs, memory and the IOMMU groups of its GPUs on its host from the moment its
 * assignment is written (before any Claim) until it is off: a batch of placements (maintenance exit, a
 * host back, start-up) sees the reservations of the decisions made before it, not a stale snapshot, and
 * two VMs are never given GPUs of one group.
 */
struct clusterd;
struct hostlink;
struct cluster_gpu;
struct vm_record;
struct placement_view;

int placement_view_new(struct clusterd *c, struct placement_view **ret);
struct placement_view *placement_view_free(struct placement_view *v);
/* l's objects or state changed. */
void placement_view_host_changed(struct placement_view *v, struct hostlink *l);
/* A registry change: moves the VM's reservation (either may be NULL). */
void placement_view_vm_changed(struct placement_view *v, const struct vm_record *old, const struct vm_record *new);

/* Whether the GPU can be given to a VM now: its host is up, its agent reports it free ("host" or "vfio",
 * no owner) and no assigned VM reserves its group. */
bool placement_view_gpu_free(const struct placement_view *v, size_t host, const struct cluster_gpu *g);

/* A decision: the host and, as the registry stores them, the GPU addresses and their IOMMU groups. */
struct placement_choice {
        size_t host;
        char *held;
        char *groups;
};
void placement_choice_done(struct placement_choice *p);

/* Where the VM goes. excluded (per host, may be NULL): hosts left out, with failures[i] saying why (a
 * refused claim); pin (may be NULL): only that host (a VM powered on again where it ran). -ENOSPC when
 * no host fits, with *ret_why listing each host's real state or reason; -ENOENT when the requests name a
 * host the cluster does not have; -EINVAL for requests that do not parse. */
int placement_view_choose(struct placement_view *v, const struct vm_record *vm, const uint8_t *excluded,
                          char * const *failures, const char *pin, struct placement_choice *ret, char **ret_why);
