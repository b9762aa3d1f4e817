/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clusterd.h"
#include "lifecycle/placement-view-private.h"
#include "link/hostlink.h"
#include "macro.h"
#include "placement/placement-index.h"
#include "registry/vm-spec.h"
#include "registry/vmstore.h"
#include "strv.h"

static void reservation_done(struct reservation *r) {
        strv_free(r->addresses);
        free(r->groups);
}

static bool group_reserved(const struct host_reservations *hr, const struct cluster_gpu *g) {
        for (size_t i = 0; i < hr->n; i++)
                for (size_t k = 0; k < hr->items[i].n; k++)
                        if (g->iommu_group >= 0 ? hr->items[i].groups[k] == g->iommu_group :
                                                  strcmp(hr->items[i].addresses[k], g->address) == 0)
                                return true;
        return false;
}

static bool agent_says_free(const struct cluster_gpu *g) {
        return g->state && (strcmp(g->state, "host") == 0 || strcmp(g->state, "vfio") == 0) &&
               (!g->owner || !g->owner[0]);
}

bool placement_view_gpu_free(const struct placement_view *v, size_t host, const struct cluster_gpu *g) {
        return host < v->n_hosts && v->hosts[host].state != HOST_UNREACHABLE && agent_says_free(g) &&
               !group_reserved(&v->reserved[host], g);
}

static void cluster_add(struct placement_view *v, const struct host_capacity *h, int sign) {
        if (h->state != HOST_UP)
                return;
        for (size_t m = 0; m < PLACEMENT_MAX_MODELS; m++)
                v->cluster.by_model[m] = (uint32_t) ((int64_t) v->cluster.by_model[m] + sign * h->free_by_model[m]);
}

/* Host i's record from its link and its reservations. */
static void host_compute(struct placement_view *v, size_t i) {
        struct hostlink *l = v->c->hosts[i];
        struct host_capacity *h = &v->hosts[i];
        const struct host_reservations *hr = &v->reserved[i];

        cluster_add(v, h, -1);
        *h = (struct host_capacity) {
                .name = l->name,
                .state = l->state != LINK_UP ? HOST_UNREACHABLE : l->maintenance ? HOST_MAINTENANCE : HOST_UP,
                .cpus = l->cpus,
                .memory_mib = l->memory_mib,
                .gpus_total = (uint32_t) l->n_gpus,
        };
        for (size_t k = 0; k < hr->n; k++) {
                h->cpus_used += hr->items[k].vcpus;
                h->memory_used_mib += hr->items[k].memory_mib;
        }
        for (size_t k = 0; k < l->n_gpus; k++) {
                int m;

                if (!placement_view_gpu_free(v, i, l->gpus[k]))
                        continue;
                m = model_table_intern(&v->models, l->gpus[k]->model ?: "");
                if (m < 0)
                        continue; /* beyond PLACEMENT_MAX_MODELS models: not placeable */
                h->free_by_model[m]++;
                h->free_total++;
        }
        cluster_add(v, h, +1);
        (void) placement_index_update(v->index, i);
}

static int host_index(const struct placement_view *v, const char *name, size_t *ret) {
        for (size_t i = 0; name && i < v->n_hosts; i++)
                if (strcmp(v->c->hosts[i]->name, name) == 0) {
                        *ret = i;
                        return 0;
                }
        return -ENOENT;
}

void placement_view_host_changed(struct placement_view *v, struct hostlink *l) {
        size_t i;

        if (v && host_index(v, l->name, &i) >= 0)
                host_compute(v, i);
}

/* The assignment's texts as a reservation. */
static int reservation_from(const struct vm_record *vm, struct reservation *ret) {
        struct vm_assignment a;
        int r;

        r = vm_assignment_parse(vm, &a);
        if (r < 0)
                return r;
        *ret = (struct reservation) { .vcpus = vm->vcpus, .memory_mib = vm->memory_mib, .addresses = a.addresses,
                                      .groups = a.groups, .n = a.n };
        memcpy(ret->uuid, vm->uuid, sizeof(ret->uuid));
        return 0;
}

static void reserve(struct placement_view *v, const struct vm_record *vm, bool add) {
        struct host_reservations *hr;
        size_t i;

        if (!vm || vm->power == VM_POWER_OFF || host_index(v, vm->host, &i) < 0)
                return;
        hr = &v->reserved[i];
        for (size_t k = 0; k < hr->n; k++)
                if (strcmp(hr->items[k].uuid, vm->uuid) == 0) {
                        reservation_done(&hr->items[k]);
                        hr->items[k] = hr->items[--hr->n];
                        break;
                }
        if (add) {
                struct reservation *t = realloc(hr->items, sizeof(*t) * (hr->n + 1));

                if (t) {
                        hr->items = t;
                        if (reservation_from(vm, &hr->items[hr->n]) >= 0)
                                hr->n++;
                }
        }
        host_compute(v, i);
}

void placement_view_vm_changed(struct placement_view *v, const struct vm_record *old, const struct vm_record *new) {
        if (!v)
                return;
        reserve(v, old, false);
        reserve(v, new, true);
}

static int add_reservation(const struct vm_record *vm, void *userdata) {
        reserve(userdata, vm, true);
        return 0;
}

int placement_view_new(struct clusterd *c, struct placement_view **ret) {
        struct placement_view *v = calloc(1, sizeof(*v));
        int r;

        if (!v)
                return -ENOMEM;
        v->c = c;
        v->n_hosts = c->n_hosts;
        v->hosts = calloc(c->n_hosts ?: 1, sizeof(*v->hosts));
        v->reserved = calloc(c->n_hosts ?: 1, sizeof(*v->reserved));
        r = v->hosts && v->reserved ? placement_index_new(v->hosts, v->n_hosts, &v->index) : -ENOMEM;
        for (size_t i = 0; r >= 0 && i < v->n_hosts; i++)
                host_compute(v, i);
        if (r >= 0)
                r = vmstore_foreach(c->db, add_reservation, v);
        if (r < 0) {
                placement_view_free(v);
                return r;
        }
        *ret = v;
        return 0;
}

struct placement_view *placement_view_free(struct placement_view *v) {
        if (!v)
                return NULL;
        for (size_t i = 0; v->reserved && i < v->n_hosts; i++) {
                for (size_t k = 0; k < v->reserved[i].n; k++)
                        reservation_done(&v->reserved[i].items[k]);
                free(v->reserved[i].items);
        }
        placement_index_free(v->index);
        model_table_done(&v->models);
        free(v->reserved);
        free(v->hosts);
        free(v);
        return NULL;
}

void placement_choice_done(struct placement_choice *p) {
        free(p->held);
        free(p->groups);
        *p = (struct placement_choice) {};
}
