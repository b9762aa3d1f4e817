/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "placement/placement-fit.h"
#include "placement/placement-index.h"

#define NONE SIZE_MAX

/* Hosts that placement cannot tell apart, and which of them comes first. */
struct shape {
        struct host_capacity sample; /* the shared record (name unset): what host_fits reads */
        uint64_t hash;
        size_t *members;             /* min-heap of host indexes: members[0] is the one best fit takes */
        size_t n_members, allocated;
        size_t next;                 /* next shape in the same hash bucket */
        size_t live_pos;             /* where it is in placement_index.live */
};

struct placement_index {
        struct host_capacity *hosts;
        size_t n_hosts;
        /* n_hosts + 1 slots: every shape in use has a host, and an update adds the new shape before it
         * empties the old one. So the slots never run out, and only the heaps allocate after start. */
        struct shape *shapes;
        size_t *free_slots, n_free;
        size_t *live, n_live;        /* the shapes in use, densely, for the scan */
        size_t *buckets, n_buckets;  /* a power of two, at least twice the slots */
        size_t *host_shape, *host_pos;
        bool broken;                 /* an allocation failed: decide by the linear scan from now on */
};

static uint64_t mix(uint64_t h, uint64_t v) {
        h ^= v;
        h *= 0x9e3779b97f4a7c15ULL;
        return h ^ (h >> 29);
}

/* Over exactly the fields same_shape compares. */
static uint64_t shape_hash(const struct host_capacity *h) {
        uint64_t x = 0;

        x = mix(x, h->state);
        x = mix(x, (uint64_t) h->cpus << 32 | h->cpus_used);
        x = mix(x, h->memory_mib);
        x = mix(x, h->memory_used_mib);
        x = mix(x, (uint64_t) h->gpus_total << 32 | h->free_total);
        for (size_t i = 0; i < PLACEMENT_MAX_MODELS; i += 4) {
                uint64_t w;

                memcpy(&w, &h->free_by_model[i], sizeof(w));
                x = mix(x, w);
        }
        return x;
}

static bool same_shape(const struct host_capacity *a, const struct host_capacity *b) {
        return a->state == b->state && a->cpus == b->cpus && a->cpus_used == b->cpus_used &&
               a->memory_mib == b->memory_mib && a->memory_used_mib == b->memory_used_mib &&
               a->gpus_total == b->gpus_total && a->free_total == b->free_total &&
               memcmp(a->free_by_model, b->free_by_model, sizeof(a->free_by_model)) == 0;
}

static void heap_swap(struct placement_index *ix, struct shape *s, size_t a, size_t b) {
        size_t t = s->members[a];

        s->members[a] = s->members[b];
        s->members[b] = t;
        ix->host_pos[s->members[a]] = a;
        ix->host_pos[s->members[b]] = b;
}

static void heap_sift_up(struct placement_index *ix, struct shape *s, size_t i) {
        while (i > 0 && s->members[(i - 1) / 2] > s->members[i]) {
                heap_swap(ix, s, i, (i - 1) / 2);
                i = (i - 1) / 2;
        }
}

static void heap_sift_down(struct placement_index *ix, struct shape *s, size_t i) {
        for (;;) {
                size_t l = 2 * i + 1, r = l + 1, m = i;

                if (l < s->n_members && s->members[l] < s->members[m])
                        m = l;
                if (r < s->n_members && s->members[r] < s->members[m])
                        m = r;
                if (m == i)
                        return;
                heap_swap(ix, s, i, m);
                i = m;
        }
}

static int heap_reserve(struct shape *s) {
        size_t *m;
        size_t n;

        if (s->n_members < s->allocated)
                return 0;
        n = s->allocated ? 2 * s->allocated : 4;
        m = realloc(s->members, n * sizeof(*m));
        if (!m)
                return -ENOMEM;
        s->members = m;
        s->allocated = n;
        return 0;
}

/* Needs heap_reserve first. */
static void heap_push(struct placement_index *ix, struct shape *s, size_t host) {
        s->members[s->n_members] = host;
        ix->host_pos[host] = s->n_members++;
        heap_sift_up(ix, s, s->n_members - 1);
}

static void heap_remove(struct placement_index *ix, struct shape *s, size_t pos) {
        size_t last = --s->n_members;

        if (pos == last)
                return;
        heap_swap(ix, s, pos, last);
        heap_sift_down(ix, s, pos);
        heap_sift_up(ix, s, pos);
}

static size_t shape_find(const struct placement_index *ix, const struct host_capacity *h, uint64_t hash) {
        for (size_t i = ix->buckets[hash & (ix->n_buckets - 1)]; i != NONE; i = ix->shapes[i].next)
                if (ix->shapes[i].hash == hash && same_shape(&ix->shapes[i].sample, h))
                        return i;
        return NONE;
}

static size_t shape_add(struct placement_index *ix, const struct host_capacity *h, uint64_t hash) {
        size_t i = ix->free_slots[--ix->n_free], *bucket = &ix->buckets[hash & (ix->n_buckets - 1)];
        struct shape *s = &ix->shapes[i];

        s->sample = *h;
        s->sample.name = NULL;
        s->hash = hash;
        s->n_members = 0;
        s->next = *bucket;
        *bucket = i;
        s->live_pos = ix->n_live;
        ix->live[ix->n_live++] = i;
        return i;
}

static void shape_drop(struct placement_index *ix, size_t i) {
        struct shape *s = &ix->shapes[i];
        size_t *link = &ix->buckets[s->hash & (ix->n_buckets - 1)];

        while (*link != i)
                link = &ix->shapes[*link].next;
        *link = s->next;
        ix->live[s->live_pos] = ix->live[--ix->n_live];
        ix->shapes[ix->live[s->live_pos]].live_pos = s->live_pos;
        ix->free_slots[ix->n_free++] = i;
}

int placement_index_update(struct placement_index *ix, size_t index) {
        const struct host_capacity *h = &ix->hosts[index];
        uint64_t hash = shape_hash(h);
        size_t old = ix->host_shape[index], to;
        bool created = false;

        if (ix->broken)
                return -ENOMEM;
        if (old != NONE && ix->shapes[old].hash == hash && same_shape(&ix->shapes[old].sample, h))
                return 0;
        to = shape_find(ix, h, hash);
        if (to == NONE) {
                to = shape_add(ix, h, hash);
                created = true;
        }
        if (heap_reserve(&ix->shapes[to]) < 0) {
                if (created)
                        shape_drop(ix, to);
                ix->broken = true;
                return -ENOMEM;
        }
        if (old != NONE) {
                heap_remove(ix, &ix->shapes[old], ix->host_pos[index]);
                if (ix->shapes[old].n_members == 0)
                        shape_drop(ix, old);
        }
        heap_push(ix, &ix->shapes[to], index);
        ix->host_shape[index] = to;
        return 0;
}

struct placement_index *placement_index_free(struct placement_index *ix) {
        if (!ix)
                return NULL;
        if (ix->shapes)
                for (size_t i = 0; i <= ix->n_hosts; i++)
                        free(ix->shapes[i].members);
        free(ix->shapes);
        free(ix->free_slots);
        free(ix->live);
        free(ix->buckets);
        free(ix->host_shape);
        free(ix->host_pos);
        free(ix);
        return NULL;
}

int placement_index_new(struct host_capacity *hosts, size_t n_hosts, struct placement_index **ret) {
        struct placement_index *ix = calloc(1, sizeof(*ix));
        size_t slots = n_hosts + 1;

        if (!ix)
                return -ENOMEM;
        ix->hosts = hosts;
        ix->n_hosts = n_hosts;
        for (ix->n_buckets = 16; ix->n_buckets < 2 * slots; ix->n_buckets *= 2)
                ;
        ix->shapes = calloc(slots, sizeof(*ix->shapes));
        ix->free_slots = malloc(slots * sizeof(size_t));
        ix->live = malloc(slots * sizeof(size_t));
        ix->buckets = malloc(ix->n_buckets * sizeof(size_t));
        ix->host_shape = malloc(slots * sizeof(size_t));
        ix->host_pos = malloc(slots * sizeof(size_t));
        if (!ix->shapes || !ix->free_slots || !ix->live || !ix->buckets || !ix->host_shape || !ix->host_pos) {
                placement_index_free(ix);
                return -ENOMEM;
        }
        /* Slots are taken from the end of the stack: lowest first, so the scan walks memory in order. */
        for (size_t i = 0; i < slots; i++)
                ix->free_slots[i] = slots - 1 - i;
        ix->n_free = slots;
        memset(ix->buckets, 0xff, ix->n_buckets * sizeof(size_t));
        for (size_t i = 0; i < n_hosts; i++)
                ix->host_shape[i] = NONE;
        for (size_t i = 0; i < n_hosts; i++)
                if (placement_index_update(ix, i) < 0) {
                        placement_index_free(ix);
                        return -ENOMEM;
                }
        *ret = ix;
        return 0;
}

/* Whether the decision depends on which host it is, beyond the host's record. */
static bool needs_linear_scan(const struct placement_index *ix, const struct vm_demand *vm,
                              enum placement_policy policy) {
        if (ix->broken || policy != POLICY_BEST_FIT || vm->affinity)
                return true;
        for (size_t i = 0; i < vm->n_requests; i++)
                if (vm->requests[i].specific_host >= 0)
                        return true;
        return false;
}

int placement_index_choose(const struct placement_index *ix, const struct vm_demand *vm,
                           const struct cluster_free *cluster, enum placement_policy policy, uint64_t *random_state,
                           struct placement *ret) {
        int chosen[PLACEMENT_MAX_REQUESTS];
        struct fit best_fit = {}, fit;
        size_t best = NONE;

        if (vm->n_requests > PLACEMENT_MAX_REQUESTS)
                return -EINVAL;
        if (needs_linear_scan(ix, vm, policy))
                return placement_choose(ix->hosts, ix->n_hosts, vm, cluster, policy, random_state, ret);

        for (size_t k = 0; k < ix->n_live; k++) {
                const struct shape *s = &ix->shapes[ix->live[k]];
                size_t first = s->members[0];
                int c;

                if (!host_fits(&s->sample, first, vm, cluster, chosen, &fit))
                        continue;
                /* The linear scan keeps the first of equal fits: the lowest index. */
                c = best == NONE ? -1 : fit_compare(&fit, &best_fit);
                if (c > 0 || (c == 0 && first > best))
                        continue;
                best = first;
                best_fit = fit;
                ret->host = (int) first;
                memcpy(ret->model_for_request, chosen, sizeof(int) * vm->n_requests);
        }
        return best != NONE ? 0 : -ENOSPC;
}

int placement_index_commit(struct placement_index *ix, const struct vm_demand *vm, const struct placement *p,
                           struct cluster_free *cluster) {
        placement_commit(&ix->hosts[p->host], vm, p, cluster);
        return placement_index_update(ix, (size_t) p->host);
}

int placement_index_uncommit(struct placement_index *ix, const struct vm_demand *vm, const struct placement *p,
                             struct cluster_free *cluster) {
        placement_uncommit(&ix->hosts[p->host], vm, p, cluster);
        return placement_index_update(ix, (size_t) p->host);
}

size_t placement_index_shapes(const struct placement_index *ix) {
        return ix->n_live;
}
