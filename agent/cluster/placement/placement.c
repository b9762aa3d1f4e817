/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "placement/placement-fit.h"
#include "placement/placement.h"

int model_table_find(const struct model_table *t, const char *name) {
        for (size_t i = 0; i < t->n; i++)
                if (strcmp(t->names[i], name) == 0)
                        return (int) i;
        return -ENOENT;
}

int model_table_intern(struct model_table *t, const char *name) {
        int i = model_table_find(t, name);
        char **n;

        if (i >= 0)
                return i;
        if (t->n >= PLACEMENT_MAX_MODELS)
                return -ENOSPC;
        n = realloc(t->names, sizeof(char *) * (t->n + 1));
        if (!n)
                return -ENOMEM;
        t->names = n;
        t->names[t->n] = strdup(name);
        if (!t->names[t->n])
                return -ENOMEM;
        return (int) t->n++;
}

void model_table_done(struct model_table *t) {
        for (size_t i = 0; i < t->n; i++)
                free(t->names[i]);
        free(t->names);
        *t = (struct model_table) {};
}

int fit_compare(const struct fit *a, const struct fit *b) {
        if (a->strands != b->strands)
                return a->strands < b->strands ? -1 : 1;
        if (a->scarcity != b->scarcity)
                return a->scarcity < b->scarcity ? -1 : 1;
        if (a->leftover_chosen != b->leftover_chosen)
                return a->leftover_chosen < b->leftover_chosen ? -1 : 1;
        if (a->leftover_total != b->leftover_total)
                return a->leftover_total < b->leftover_total ? -1 : 1;
        if (a->cpus_left != b->cpus_left)
                return a->cpus_left < b->cpus_left ? -1 : 1;
        if (a->memory_left != b->memory_left)
                return a->memory_left < b->memory_left ? -1 : 1;
        return 0;
}

/* Whether model a is a better choice than model b for a request: more free in the cluster (when known),
 * then fewer free on this host (tighter). */
static bool model_better(const uint16_t *free, const struct cluster_free *cluster, int a, int b) {
        if (b < 0)
                return true;
        if (cluster && cluster->by_model[a] != cluster->by_model[b])
                return cluster->by_model[a] > cluster->by_model[b];
        return free[a] < free[b];
}

static uint32_t scarcity_of(const struct cluster_free *cluster, int model) {
        return cluster && model >= 0 ? UINT32_MAX - cluster->by_model[model] : 0;
}

/*
 * Assigns a model to each request from `free` (modified), tightest model first, backtracking when a
 * tight choice starves a later request. Requests are few (a VM asks for one or two kinds of GPU), so the
 * search is tiny. Returns true and the chosen models when every request fits.
 */
static bool assign_models(uint16_t *free, const struct cluster_free *cluster, const struct gpu_request *req,
                          size_t i, size_t n, int *chosen, uint32_t *leftover) {
        uint64_t candidates;

        if (i == n)
                return true;
        if (req[i].specific_host >= 0) {
                chosen[i] = req[i].specific_model;
                return assign_models(free, cluster, req, i + 1, n, chosen, leftover);
        }
        candidates = req[i].models;
        while (candidates) {
                int best = -1;

                for (uint64_t c = candidates; c; c &= c - 1) {
                        int m = __builtin_ctzll(c);

                        if (free[m] >= req[i].count && model_better(free, cluster, m, best))
                                best = m;
                }
                if (best < 0)
                        return false;
                candidates &= ~(1ULL << best);
                free[best] = (uint16_t) (free[best] - req[i].count);
                if (assign_models(free, cluster, req, i + 1, n, chosen, leftover)) {
                        chosen[i] = best;
                        *leftover += free[best];
                        return true;
                }
                free[best] = (uint16_t) (free[best] + req[i].count);
        }
        return false;
}

/* How many of the `left_gpus` free GPUs left on the host after the VM would lack their share (cpus / gpus
 * and memory / gpus each) of the CPU and memory the host would have left. */
static uint32_t stranded_gpus(const struct host_capacity *h, uint32_t left_gpus, const struct vm_demand *vm) {
        uint64_t cpus_left = h->cpus - h->cpus_used - vm->vcpus;
        uint64_t memory_left = h->memory_mib - h->memory_used_mib - vm->memory_mib;
        uint64_t by_cpu, by_memory, served;

        if (!h->gpus_total || !left_gpus)
                return 0;
        by_cpu = h->cpus ? cpus_left * h->gpus_total / h->cpus : left_gpus;
        by_memory = h->memory_mib ? memory_left * h->gpus_total / h->memory_mib : left_gpus;
        served = by_cpu < by_memory ? by_cpu : by_memory;
        return served >= left_gpus ? 0 : left_gpus - (uint32_t) served;
}

/* The GPUs a fit takes from a host: how many, how many of the chosen model stay free, how scarce it is. */
struct gpu_take {
        uint32_t taken, leftover, scarcity;
};

/* The common case, one request of a count of some models, decided without copying the host's table. */
static bool fit_one_request(const struct host_capacity *h, const struct gpu_request *r,
                            const struct cluster_free *cluster, int *chosen, struct gpu_take *ret) {
        int best = -1;

        if (h->free_total < r->count)
                return false;
        for (uint64_t c = r->models; c; c &= c - 1) {
                int m = __builtin_ctzll(c);

                if (h->free_by_model[m] >= r->count && model_better(h->free_by_model, cluster, m, best))
                        best = m;
        }
        if (best < 0)
                return false;
        chosen[0] = best;
        *ret = (struct gpu_take) { .taken = r->count, .leftover = h->free_by_model[best] - r->count,
                                   .scarcity = scarcity_of(cluster, best) };
        return true;
}

/* Several requests (or a specific GPU): each gets a model, over a copy of the host's free counts. */
static bool fit_requests(const struct host_capacity *h, size_t index, const struct vm_demand *vm,
                         const struct cluster_free *cluster, int *chosen, struct gpu_take *ret) {
        uint16_t free[PLACEMENT_MAX_MODELS];
        struct gpu_take t = {};

        for (size_t i = 0; i < vm->n_requests; i++) {
                const struct gpu_request *r = &vm->requests[i];

                if (r->specific_host >= 0) {
                        if ((size_t) r->specific_host != index || !r->specific_gpu_free)
                                return false;
                        t.taken++;
                } else
                        t.taken += r->count;
        }
        if (t.taken > h->free_total)
                return false;
        memcpy(free, h->free_by_model, sizeof(free));
        if (!assign_models(free, cluster, vm->requests, 0, vm->n_requests, chosen, &t.leftover))
                return false;
        for (size_t i = 0; i < vm->n_requests; i++) {
                uint32_t s = scarcity_of(cluster, chosen[i]);

                t.scarcity = s > t.scarcity ? s : t.scarcity;
        }
        *ret = t;
        return true;
}

bool host_fits(const struct host_capacity *h, size_t index, const struct vm_demand *vm,
                      const struct cluster_free *cluster, int *chosen, struct fit *ret_fit) {
        struct gpu_take t = {};
        uint32_t left_gpus;

        if (h->state != HOST_UP)
                return false;
        if (vm->affinity && !vm->affinity[index])
                return false;
        if (h->cpus_used + vm->vcpus > h->cpus || h->memory_used_mib + vm->memory_mib > h->memory_mib)
                return false;
        if (vm->n_requests == 1 && vm->requests[0].specific_host < 0) {
                if (!fit_one_request(h, &vm->requests[0], cluster, chosen, &t))
                        return false;
        } else if (vm->n_requests > 0 && !fit_requests(h, index, vm, cluster, chosen, &t))
                return false;
        /* Each free GPU left on the host should keep its share of the host's CPU and memory: a VM that eats
         * into those shares strands GPUs that no VM can use for lack of CPU or memory. Counted in GPUs, so
         * a host where the VM strands one GPU is preferred to one where it strands three. */
        left_gpus = h->free_total - t.taken;
        *ret_fit = (struct fit) {
                .strands = stranded_gpus(h, left_gpus, vm),
                .scarcity = t.scarcity,
                .leftover_chosen = t.leftover,
                .leftover_total = left_gpus,
                .cpus_left = h->cpus - h->cpus_used - vm->vcpus,
                .memory_left = h->memory_mib - h->memory_used_mib - vm->memory_mib,
        };
        return true;
}

/* xorshift64*: reproducible randomness for the random-fit baseline. */
static uint64_t next_random(uint64_t *state) {
        uint64_t x = *state ?: 0x9e3779b97f4a7c15ULL;

        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        *state = x;
        return x * 0x2545f4914f6cdd1dULL;
}

int placement_choose(const struct host_capacity *hosts, size_t n_hosts, const struct vm_demand *vm,
                     const struct cluster_free *cluster, enum placement_policy policy, uint64_t *random_state,
                     struct placement *ret) {
        struct fit best_fit = {}, fit;
        int chosen[PLACEMENT_MAX_REQUESTS];
        size_t feasible = 0;
        int best = -1;

        if (vm->n_requests > PLACEMENT_MAX_REQUESTS)
                return -EINVAL;

        for (size_t i = 0; i < n_hosts; i++) {
                if (!host_fits(&hosts[i], i, vm, policy == POLICY_BEST_FIT ? cluster : NULL, chosen, &fit))
                        continue;
                feasible++;
                if (policy == POLICY_RANDOM_FIT) {
                        /* Reservoir sampling: each feasible host equally likely. */
                        if (next_random(random_state) % feasible != 0)
                                continue;
                } else if (best >= 0 && (policy == POLICY_FIRST_FIT || fit_compare(&fit, &best_fit) >= 0))
                        continue;
                best = (int) i;
                best_fit = fit;
                ret->host = best;
                memcpy(ret->model_for_request, chosen, sizeof(int) * vm->n_requests);
                if (policy == POLICY_FIRST_FIT)
                        break;
        }
        return best >= 0 ? 0 : -ENOSPC;
}

static char *gib(uint64_t mib, char buf[static 32]) {
        if (mib % 1024 == 0)
                snprintf(buf, 32, "%llu GiB", (unsigned long long) (mib / 1024));
        else
                snprintf(buf, 32, "%llu MiB", (unsigned long long) mib);
        return buf;
}

static char *models_text(uint64_t mask, const struct model_table *models) {
        char *s = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&s, &len);
        bool first = true;

        if (!f)
                return NULL;
        for (uint64_t c = mask; c; c &= c - 1) {
                int m = __builtin_ctzll(c);

                fprintf(f, "%s%s", first ? "" : " or ", (size_t) m < models->n ? models->names[m] : "?");
                first = false;
        }
        fclose(f);
        return s;
}

char *placement_explain(const struct host_capacity *h, size_t index, const struct vm_demand *vm,
                        const struct model_table *models) {
        int chosen[PLACEMENT_MAX_REQUESTS];
        char a[32], b[32];
        struct fit fit;
        char *s = NULL;

        if (host_fits(h, index, vm, NULL, chosen, &fit))
                return NULL;
        if (h->state == HOST_UNREACHABLE)
                return strdup("unreachable");
        if (h->state == HOST_MAINTENANCE)
                return strdup("in maintenance");
        if (vm->affinity && !vm->affinity[index])
                return strdup("outside affinity");
        if (h->memory_used_mib + vm->memory_mib > h->memory_mib) {
                if (asprintf(&s, "needs %s, %s free", gib(vm->memory_mib, a),
                             gib(h->memory_mib - (h->memory_used_mib < h->memory_mib ? h->memory_used_mib : h->memory_mib), b)) < 0)
                        return NULL;
                return s;
        }
        if (h->cpus_used + vm->vcpus > h->cpus) {
                if (asprintf(&s, "needs %u vCPUs, %u free", vm->vcpus,
                             h->cpus - (h->cpus_used < h->cpus ? h->cpus_used : h->cpus)) < 0)
                        return NULL;
                return s;
        }
        for (size_t i = 0; i < vm->n_requests; i++) {
                const struct gpu_request *r = &vm->requests[i];
                unsigned available = 0;
                char *names;
                int k;

                if (r->specific_host >= 0) {
                        if ((size_t) r->specific_host != index)
                                return strdup("does not have the requested GPU");
                        if (!r->specific_gpu_free)
                                return strdup("the requested GPU is not free");
                        continue;
                }
                for (uint64_t c = r->models; c; c &= c - 1) {
                        unsigned f = h->free_by_model[__builtin_ctzll(c)];

                        available = f > available ? f : available;
                }
                if (available >= r->count)
                        continue;
                names = models_text(r->models, models);
                if (available == 0)
                        k = asprintf(&s, "no free %s", names ?: "GPU");
                else
                        k = asprintf(&s, "needs %u %s, %u free", r->count, names ?: "GPU", available);
                free(names);
                return k < 0 ? NULL : s;
        }
        return strdup("not enough free GPUs for all requests at once");
}

void cluster_free_compute(const struct host_capacity *hosts, size_t n_hosts, struct cluster_free *ret) {
        *ret = (struct cluster_free) {};
        for (size_t i = 0; i < n_hosts; i++)
                if (hosts[i].state == HOST_UP)
                        for (size_t m = 0; m < PLACEMENT_MAX_MODELS; m++)
                                ret->by_model[m] += hosts[i].free_by_model[m];
}

static void apply(struct host_capacity *h, const struct vm_demand *vm, const struct placement *p, int sign,
                  struct cluster_free *cluster) {
        h->cpus_used = (uint32_t) ((int64_t) h->cpus_used + sign * (int64_t) vm->vcpus);
        h->memory_used_mib = (uint64_t) ((int64_t) h->memory_used_mib + sign * (int64_t) vm->memory_mib);
        for (size_t i = 0; i < vm->n_requests; i++) {
                const struct gpu_request *r = &vm->requests[i];
                int m = p->model_for_request[i];
                uint32_t count = r->specific_host >= 0 ? 1 : r->count;

                if (m >= 0) {
                        h->free_by_model[m] = (uint16_t) ((int) h->free_by_model[m] - sign * (int) count);
                        if (cluster)
                                cluster->by_model[m] = (uint32_t) ((int64_t) cluster->by_model[m] - sign * (int64_t) count);
                }
                h->free_total = (uint32_t) ((int64_t) h->free_total - sign * (int64_t) count);
        }
}

void placement_commit(struct host_capacity *host, const struct vm_demand *vm, const struct placement *p,
                      struct cluster_free *cluster) {
        apply(host, vm, p, +1, cluster);
}

void placement_uncommit(struct host_capacity *host, const struct vm_demand *vm, const struct placement *p,
                        struct cluster_free *cluster) {
        apply(host, vm, p, -1, cluster);
}
