/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The values behind each Host object. Free CPU and memory are the host's capacity less what its running
 * VMs reserve, the same arithmetic placement does at PowerOn; the reservations are summed from the
 * registry once at start-up and then moved by each VM change, so a change costs no registry scan.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clusterd.h"
#include "bus/cluster-objects.h"
#include "gpupass/bus-names.h"
#include "link/hostlink.h"
#include "macro.h"
#include "strv.h"
#include "registry/vm-table.h"
#include "registry/vmstore.h"

bool cluster_gpu_is_free_on(const struct hostlink *l, size_t index) {
        const char *state = l->gpus[index]->state;

        return l->state == LINK_UP && state && (strcmp(state, "host") == 0 || strcmp(state, "vfio") == 0);
}

struct host_view *host_view_find(struct clusterd *c, const char *name) {
        size_t i;

        if (!c->host_views || !name || !clusterd_find_host(c, name, &i))
                return NULL;
        return &c->host_views[i];
}

/* Claims the agent shows for VMs this registry does not know: another aggregator's, or a host-local
 * hook's. Never released by this aggregator; shown so that an operator sees who holds the GPU. */
static char **foreign_claims(const struct host_view *v) {
        const struct hostlink *l = v->link;
        char **list = NULL;

        for (size_t k = 0; k < l->n_gpus; k++) {
                const struct cluster_gpu *g = l->gpus[k];
                _cleanup_free_ char *item = NULL;

                if (!g->owner || !g->owner[0] || !v->clusterd->known_vms ||
                    vm_table_get(v->clusterd->known_vms, g->owner))
                        continue;
                if (asprintf(&item, "%s %s", g->address, g->owner) < 0 || strv_consume(&list, TAKE_PTR(item)) < 0)
                        break; /* shown in part: the next change tries again */
        }
        return list;
}

void host_values_done(struct host_values *h) {
        strv_free(h->foreign);
        h->foreign = NULL;
}

void host_values_compute(const struct host_view *v, struct host_values *ret) {
        const struct hostlink *l = v->link;

        *ret = (struct host_values) {
                .state = hostlink_state_to_string(l),
                .unreachable_reason = l->state == LINK_UNREACHABLE ? l->error : NULL,
                .cpus = l->cpus,
                .memory_mib = l->memory_mib,
                /* More can be reserved than the host has (its agent reported less after a restart). */
                .free_cpus = l->cpus > v->cpus_used ? l->cpus - v->cpus_used : 0,
                .free_memory_mib = l->memory_mib > v->memory_used_mib ? l->memory_mib - v->memory_used_mib : 0,
                .gpus = (uint32_t) l->n_gpus,
                .maintenance = l->maintenance,
                .foreign = foreign_claims(v),
        };
        for (size_t k = 0; k < l->n_gpus; k++)
                ret->free_gpus += cluster_gpu_is_free_on(l, k);
}

/*
 * The Gpus property (every GPU of the host, as ListGpus gives them) changes with any GPU field, also where no
 * count does (a free GPU prepared, a companion found after its GPU): announced in a PropertiesChanged of its
 * own, after the counters', so that the counters' signals stay as they were.
 */
static void host_view_refresh_gpus(struct host_view *v) {
        char *text = NULL;
        const char *names[] = { "Gpus", NULL };

        if (host_gpus_text(v->link, &text) < 0)
                return; /* out of memory: announced with the next change */
        if (v->shown_gpus && strcmp(text, v->shown_gpus) == 0) {
                free(text);
                return;
        }
        free(v->shown_gpus);
        v->shown_gpus = text;
        host_emit_properties_changed(v, (char **) names);
}

void host_view_refresh(struct clusterd *c, struct hostlink *l) {
        struct host_view *v = host_view_find(c, l->name);
        struct host_values now;
        const char *names[11];
        size_t n = 0;
        char *reason;

        if (!v)
                return;
        host_values_compute(v, &now);
        if (!streq_ptr(strempty(now.state), strempty(v->shown.state)))
                names[n++] = "State";
        if (!streq_ptr(strempty(now.unreachable_reason), strempty(v->shown.unreachable_reason)))
                names[n++] = "UnreachableReason";
        if (now.cpus != v->shown.cpus)
                names[n++] = "CpuCount";
        if (now.memory_mib != v->shown.memory_mib)
                names[n++] = "MemoryMiB";
        if (now.free_cpus != v->shown.free_cpus)
                names[n++] = "FreeCpus";
        if (now.free_memory_mib != v->shown.free_memory_mib)
                names[n++] = "FreeMemoryMiB";
        if (now.gpus != v->shown.gpus)
                names[n++] = "GpuCount";
        if (now.free_gpus != v->shown.free_gpus)
                names[n++] = "FreeGpuCount";
        if (now.maintenance != v->shown.maintenance)
                names[n++] = "Maintenance";
        if (!strv_equal(now.foreign, v->shown.foreign))
                names[n++] = "ForeignClaims";
        names[n] = NULL;
        if (n > 0) {
                /* The link's error text changes under us: keep a copy of what was announced. */
                reason = now.unreachable_reason ? strdup(now.unreachable_reason) : NULL;
                free(v->shown.unreachable_reason);
                host_values_done(&v->shown);
                v->shown = now;
                v->shown.unreachable_reason = reason;
                host_emit_properties_changed(v, (char **) names);
        } else
                host_values_done(&now);
        host_view_refresh_gpus(v);
}

static void reserve(struct clusterd *c, const struct vm_record *vm, int sign) {
        struct host_view *v;

        if (!vm || vm->power == VM_POWER_OFF)
                return;
        v = host_view_find(c, vm->host);
        if (!v)
                return;
        v->cpus_used = (uint32_t) ((int64_t) v->cpus_used + sign * (int64_t) vm->vcpus);
        v->memory_used_mib = (uint64_t) ((int64_t) v->memory_used_mib + sign * (int64_t) vm->memory_mib);
}

void host_views_vm_changed(struct clusterd *c, const struct vm_record *old, const struct vm_record *new) {
        struct host_view *a, *b;

        reserve(c, old, -1);
        reserve(c, new, +1);
        a = old && old->power != VM_POWER_OFF ? host_view_find(c, old->host) : NULL;
        b = new && new->power != VM_POWER_OFF ? host_view_find(c, new->host) : NULL;
        if (a)
                host_view_refresh(c, a->link);
        if (b && b != a)
                host_view_refresh(c, b->link);
}

static int add_reservation(const struct vm_record *vm, void *userdata) {
        reserve(userdata, vm, +1);
        return 0;
}

int host_views_setup(struct clusterd *c) {
        int r;

        c->host_views = calloc(c->n_hosts ?: 1, sizeof(*c->host_views));
        if (!c->host_views)
                return -ENOMEM;
        for (size_t i = 0; i < c->n_hosts; i++) {
                struct host_view *v = &c->host_views[i];

                v->clusterd = c;
                v->link = c->hosts[i];
                r = sd_bus_path_encode(GPUPASS_CLUSTER_HOST_PREFIX, c->hosts[i]->name, &v->path);
                if (r < 0)
                        return r;
        }
        r = vmstore_foreach(c->db, add_reservation, c);
        if (r < 0)
                return r;
        for (size_t i = 0; i < c->n_hosts; i++) {
                struct host_view *v = &c->host_views[i];

                host_values_compute(v, &v->shown);
                v->shown.unreachable_reason = v->shown.unreachable_reason ? strdup(v->shown.unreachable_reason) : NULL;
                (void) host_gpus_text(v->link, &v->shown_gpus);
        }
        return 0;
}

/* After a reload changed c->hosts: one view per host again, InterfacesRemoved for the Host objects that are
 * gone and InterfacesAdded for the new ones (a readdressed host keeps its object). old_paths: the paths
 * of the views before, NULL-terminated. */
int host_views_rebuild(struct clusterd *c, char **old_paths) {
        int r;

        r = host_views_setup(c);
        if (r < 0)
                return r;
        for (char **p = old_paths; p && *p; p++) {
                bool kept = false;

                for (size_t i = 0; i < c->n_hosts && !kept; i++)
                        kept = strcmp(c->host_views[i].path, *p) == 0;
                if (!kept)
                        (void) sd_bus_emit_interfaces_removed(c->bus, *p, GPUPASS_CLUSTER_HOST_IFACE, NULL);
        }
        for (size_t i = 0; i < c->n_hosts; i++)
                if (!strv_contains(old_paths, c->host_views[i].path))
                        (void) sd_bus_emit_interfaces_added(c->bus, c->host_views[i].path,
                                                            GPUPASS_CLUSTER_HOST_IFACE, NULL);
        return 0;
}

void host_views_free(struct clusterd *c) {
        for (size_t i = 0; c->host_views && i < c->n_hosts; i++) {
                free(c->host_views[i].path);
                free(c->host_views[i].shown.unreachable_reason);
                host_values_done(&c->host_views[i].shown);
                free(c->host_views[i].shown_gpus);
        }
        c->host_views = mfree(c->host_views);
}
