/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * One placement decision over the kept view (placement-view.c): the VM's requests in placement's terms,
 * the decision through the shape index (the benchmark's function), then the concrete GPUs on the chosen
 * host; or, when no host fits, each host's reason in an operator's words.
 */
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

struct demand {
        struct gpu_request requests[PLACEMENT_MAX_REQUESTS];
        struct gpu_request_spec *specs;
        size_t n;
        uint8_t *allowed;
        struct vm_demand vm;
};

static void demand_done(struct demand *d) {
        gpu_request_specs_free(d->specs, d->n);
        free(d->allowed);
}

/* A specific GPU: its host, its index there, whether it is free. */
static int resolve_specific(struct placement_view *v,
                            const struct gpu_request_spec *s, struct gpu_request *g, char **ret_why) {
        size_t hi = 0;
        struct hostlink *l = clusterd_find_host(v->c, s->host, &hi);

        if (!l || hi >= v->n_hosts)
                return asprintf(ret_why, "the VM asks for a GPU on host %s, which is not in the cluster", s->host) < 0
                        ? -ENOMEM : -ENOENT;
        g->count = 1;
        g->specific_host = (int) hi;
        g->specific_gpu = -1;
        for (size_t k = 0; k < l->n_gpus; k++)
                if (gpu_address_matches(l->gpus[k]->address, s->address)) {
                        g->specific_gpu = (int) k;
                        g->specific_gpu_free = placement_view_gpu_free(v, hi, l->gpus[k]);
                        g->specific_model = model_table_intern(&v->models, l->gpus[k]->model ?: "");
                }
        return 0;
}

/* Which hosts the VM may go to: its affinity, less the excluded ones, only the pinned one. NULL: any. */
static int allowed_hosts(const struct placement_view *p, const struct vm_record *vm, const uint8_t *excluded,
                         const char *pin, uint8_t **ret) {
        bool any_excluded = false;
        uint8_t *a;

        for (size_t i = 0; excluded && i < p->n_hosts; i++)
                any_excluded = any_excluded || excluded[i];
        *ret = NULL;
        if (!vm->affinity[0] && !any_excluded && !pin)
                return 0; /* the shape index answers: no per-host condition */
        a = calloc(p->n_hosts ?: 1, 1);
        if (!a)
                return -ENOMEM;
        for (size_t i = 0; i < p->n_hosts; i++) {
                const char *name = p->c->hosts[i]->name;
                size_t n = strlen(name);
                bool in_affinity = !vm->affinity[0];

                for (const char *s = vm->affinity; *s && !in_affinity; s += strcspn(s, ","), s += *s == ',')
                        in_affinity = strncmp(s, name, n) == 0 && (s[n] == ',' || s[n] == '\0');
                a[i] = in_affinity && !(excluded && excluded[i]) && !(pin && strcmp(pin, name) != 0);
        }
        *ret = a;
        return 0;
}

static int demand_build(struct placement_view *v, const struct vm_record *vm,
                        const uint8_t *excluded, const char *pin, struct demand *d, char **ret_why) {
        int r;

        *d = (struct demand) {};
        r = gpu_requests_parse(vm->gpus, &d->specs, &d->n, ret_why);
        if (r < 0)
                return r;
        for (size_t i = 0; i < d->n; i++) {
                struct gpu_request *g = &d->requests[i];

                *g = (struct gpu_request) { .count = d->specs[i].count, .specific_host = -1, .specific_model = -1 };
                if (d->specs[i].host)
                        r = resolve_specific(v, &d->specs[i], g, ret_why);
                for (char **m = d->specs[i].models; r >= 0 && m && *m; m++) {
                        int mi = model_table_intern(&v->models, *m);

                        if (mi >= 0)
                                g->models |= 1ULL << mi;
                }
                if (r < 0)
                        return r;
        }
        r = allowed_hosts(v, vm, excluded, pin, &d->allowed);
        if (r < 0)
                return r;
        d->vm = (struct vm_demand) { .vcpus = vm->vcpus, .memory_mib = vm->memory_mib, .requests = d->requests,
                                     .n_requests = d->n, .affinity = d->allowed };
        return 0;
}

/* Why host i cannot take the VM: its real state first (an up host is never "unreachable"). */
static char *host_reason(const struct placement_view *p, size_t i, const struct demand *d,
                         const uint8_t *excluded, char * const *failures, const char *pin, const char *vm_name) {
        struct hostlink *l = p->c->hosts[i];
        char *s = NULL;

        if (excluded && excluded[i])
                return strdup(failures && failures[i] ? failures[i] : "the claim failed");
        if (l->state == LINK_UNREACHABLE)
                return strdup("unreachable"); /* the Host object's UnreachableReason says why */
        if (l->state == LINK_CONNECTING)
                return strdup("connecting");
        if (pin && strcmp(pin, l->name) != 0)
                return asprintf(&s, "VM %s is powered on again on %s only", vm_name, pin) < 0 ? NULL : s;
        return placement_explain(&p->hosts[i], i, &d->vm, &p->models);
}

static int explain(const struct placement_view *p, const struct demand *d, const struct vm_record *vm,
                   const uint8_t *excluded, char * const *failures, const char *pin, char **ret_why) {
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);

        if (!f)
                return -ENOMEM;
        fprintf(f, "No host can run VM %s; it stays off.", vm->name);
        for (size_t i = 0; i < p->n_hosts; i++) {
                _cleanup_free_ char *why = host_reason(p, i, d, excluded, failures, pin, vm->name);

                fprintf(f, " %s: %s;", p->c->hosts[i]->name, why ?: "does not fit");
        }
        if (p->n_hosts == 0)
                fprintf(f, " the cluster has no hosts.");
        if (fclose(f) != 0) {
                free(text);
                return -ENOMEM;
        }
        *ret_why = text;
        return -ENOSPC;
}

/* The concrete GPUs on the chosen host: per request, free ones of the chosen model, not taken twice. */
static int pick_gpus(struct placement_view *v, const struct demand *d,
                     const struct placement *choice, struct placement_choice *ret) {
        struct hostlink *l = v->c->hosts[choice->host];
        _cleanup_strv_free_ char **held = NULL, **groups = NULL;
        int r = 0;

        for (size_t i = 0; i < d->n && r >= 0; i++) {
                const struct gpu_request *req = &d->requests[i];
                uint32_t taken = 0;

                for (size_t k = 0; k < l->n_gpus && taken < req->count && r >= 0; k++) {
                        struct cluster_gpu *g = l->gpus[k];
                        char group[16];

                        if (req->specific_host >= 0 ? (int) k != req->specific_gpu :
                            !placement_view_gpu_free(v, choice->host, g) || strv_contains(held, g->address) ||
                            model_table_find(&v->models, g->model ?: "") != choice->model_for_request[i])
                                continue;
                        snprintf(group, sizeof(group), "%d", g->iommu_group);
                        r = strv_extend(&held, g->address);
                        if (r >= 0)
                                r = strv_extend(&groups, group);
                        taken++;
                }
        }
        if (r < 0)
                return r;
        ret->host = (size_t) choice->host;
        ret->held = strv_join(held, ",");
        ret->groups = strv_join(groups, ",");
        if (!ret->held || !ret->groups) {
                placement_choice_done(ret);
                return -ENOMEM;
        }
        return 0;
}

int placement_view_choose(struct placement_view *v, const struct vm_record *vm, const uint8_t *excluded,
                          char * const *failures, const char *pin, struct placement_choice *ret, char **ret_why) {
                struct demand d;
        struct placement choice;
        uint64_t seed = 0;
        int r;

        *ret = (struct placement_choice) {};
        r = demand_build(v, vm, excluded, pin, &d, ret_why);
        if (r >= 0) {
                r = placement_index_choose(v->index, &d.vm, &v->cluster, POLICY_BEST_FIT, &seed, &choice);
                if (r == -ENOSPC)
                        r = explain(v, &d, vm, excluded, failures, pin, ret_why);
                else if (r == -EINVAL && asprintf(ret_why, "VM %s asks for more than %d GPU requests", vm->name,
                                                  PLACEMENT_MAX_REQUESTS) < 0)
                        r = -ENOMEM;
        }
        if (r >= 0)
                r = pick_gpus(v, &d, &choice, ret);
        demand_done(&d);
        return r;
}
