/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Inside lifecycle/: the state of placement-view.c, which placement-choose.c decides over. */

#include "lifecycle/placement-view.h"
#include "placement/placement-index.h"

/* What one assigned VM holds back on its host. */
struct reservation {
        char uuid[37];
        uint32_t vcpus;
        uint64_t memory_mib;
        char **addresses;
        int *groups;
        size_t n;
};

struct host_reservations {
        struct reservation *items;
        size_t n;
};

struct placement_view {
        struct clusterd *c;
        size_t n_hosts;                /* c->n_hosts when built: a reload builds a new view */
        struct model_table models;
        struct host_capacity *hosts;
        struct host_reservations *reserved;
        struct placement_index *index;
        struct cluster_free cluster;
};

