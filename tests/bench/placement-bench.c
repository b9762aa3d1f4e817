/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Placement benchmark on a GPU-cluster trace (../shared/traces, Alibaba openb 2023), through the same
 * placement functions PowerOn uses. Prints speed (decisions per second on one core, at 1x, 10x and 100x
 * the host list, best fit against first fit measured in the same run) and quality (GPUs allocated when
 * filling the cluster in trace order, against first-fit and random-fit baselines; a replay with arrivals
 * and departures).
 *
 * Usage: placement-bench NODES.csv PODS.csv [PODS.csv...]
 * Columns are found by header name; a pod file without gpu_spec has no model constraints, one without
 * creation_time/deletion_time is replayed in file order with no departures.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "placement/placement-index.h"

struct vm_row {
        uint32_t vcpus;
        uint64_t memory_mib;
        uint32_t gpus;
        uint64_t models;
        long long created, deleted; /* -1: unknown */
};

struct trace {
        struct host_capacity *hosts;
        size_t n_hosts;
        struct vm_row *vms;
        size_t n_vms;
        struct model_table models;
        uint64_t all_models;
        uint64_t total_gpus;
};

/* Splits a CSV line in place (the trace has no quoted fields). */
static size_t split(char *line, char **fields, size_t max) {
        size_t n = 0;

        line[strcspn(line, "\r\n")] = '\0';
        for (char *p = line; n < max;) {
                fields[n++] = p;
                p = strchr(p, ',');
                if (!p)
                        break;
                *p++ = '\0';
        }
        return n;
}

static int column(char **header, size_t n, const char *name) {
        for (size_t i = 0; i < n; i++)
                if (strcmp(header[i], name) == 0)
                        return (int) i;
        return -1;
}

static FILE *open_or_die(const char *path) {
        FILE *f = fopen(path, "re");

        if (!f) {
                fprintf(stderr, "Cannot open %s: %m\n", path);
                exit(2);
        }
        return f;
}

static void load_nodes(struct trace *t, const char *path) {
        char line[4096], *h[64], *f[64];
        FILE *in = open_or_die(path);
        int c_cpu, c_mem, c_gpu, c_model;
        size_t nh;

        if (!fgets(line, sizeof(line), in))
                exit(2);
        nh = split(line, h, 64);
        c_cpu = column(h, nh, "cpu_milli");
        c_mem = column(h, nh, "memory_mib");
        c_gpu = column(h, nh, "gpu");
        c_model = column(h, nh, "model");
        if (c_cpu < 0 || c_mem < 0 || c_gpu < 0) {
                fprintf(stderr, "%s: needs columns cpu_milli, memory_mib, gpu\n", path);
                exit(2);
        }
        while (fgets(line, sizeof(line), in)) {
                size_t n = split(line, f, 64);
                struct host_capacity *hc;
                int model = -1;
                unsigned gpus;

                if (n <= (size_t) c_gpu)
                        continue;
                t->hosts = realloc(t->hosts, sizeof(*t->hosts) * (t->n_hosts + 1));
                hc = &t->hosts[t->n_hosts++];
                *hc = (struct host_capacity) { .name = "node", .state = HOST_UP };
                hc->cpus = (uint32_t) (strtoull(f[c_cpu], NULL, 10) / 1000);
                hc->memory_mib = strtoull(f[c_mem], NULL, 10);
                gpus = (unsigned) strtoul(f[c_gpu], NULL, 10);
                if (gpus > 0) {
                        model = model_table_intern(&t->models, c_model >= 0 && (size_t) c_model < n && *f[c_model]
                                                   ? f[c_model] : "unnamed");
                        hc->free_by_model[model] = (uint16_t) gpus;
                        hc->free_total = gpus;
                        hc->gpus_total = gpus;
                        t->all_models |= 1ULL << model;
                        t->total_gpus += gpus;
                }
        }
        fclose(in);
}

static void load_vms(struct trace *t, const char *path) {
        char line[4096], *h[64], *f[64];
        FILE *in = open_or_die(path);
        int c_cpu, c_mem, c_gpu, c_spec, c_created, c_deleted;
        size_t nh;

        if (!fgets(line, sizeof(line), in))
                exit(2);
        nh = split(line, h, 64);
        c_cpu = column(h, nh, "cpu_milli");
        c_mem = column(h, nh, "memory_mib");
        c_gpu = column(h, nh, "num_gpu");
        c_spec = column(h, nh, "gpu_spec");
        c_created = column(h, nh, "creation_time");
        c_deleted = column(h, nh, "deletion_time");
        if (c_cpu < 0 || c_mem < 0 || c_gpu < 0) {
                fprintf(stderr, "%s: needs columns cpu_milli, memory_mib, num_gpu\n", path);
                exit(2);
        }
        while (fgets(line, sizeof(line), in)) {
                size_t n = split(line, f, 64);
                struct vm_row *v;

                if (n <= (size_t) c_gpu)
                        continue;
                t->vms = realloc(t->vms, sizeof(*t->vms) * (t->n_vms + 1));
                v = &t->vms[t->n_vms++];
                *v = (struct vm_row) { .created = -1, .deleted = -1 };
                v->vcpus = (uint32_t) ((strtoull(f[c_cpu], NULL, 10) + 999) / 1000);
                v->memory_mib = strtoull(f[c_mem], NULL, 10);
                v->gpus = (uint32_t) strtoul(f[c_gpu], NULL, 10);
                if (c_spec >= 0 && (size_t) c_spec < n && *f[c_spec]) {
                        for (char *m = strtok(f[c_spec], "|"); m; m = strtok(NULL, "|")) {
                                int i = model_table_intern(&t->models, m);

                                if (i >= 0)
                                        v->models |= 1ULL << i;
                        }
                }
                if (c_created >= 0 && (size_t) c_created < n && *f[c_created])
                        v->created = strtoll(f[c_created], NULL, 10);
                if (c_deleted >= 0 && (size_t) c_deleted < n && *f[c_deleted])
                        v->deleted = strtoll(f[c_deleted], NULL, 10);
        }
        fclose(in);
}

static struct vm_demand demand_of(const struct trace *t, const struct vm_row *v, struct gpu_request *req) {
        *req = (struct gpu_request) { .count = v->gpus, .models = v->models ?: t->all_models, .specific_host = -1 };
        return (struct vm_demand) { .vcpus = v->vcpus, .memory_mib = v->memory_mib, .requests = req,
                                    .n_requests = v->gpus > 0 ? 1 : 0 };
}

static double now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static const char *policy_name(enum placement_policy p) {
        return p == POLICY_BEST_FIT ? "best-fit (gpupass)" : p == POLICY_FIRST_FIT ? "first-fit" : "random-fit";
}

static struct placement_index *index_or_die(struct host_capacity *hosts, size_t n) {
        struct placement_index *ix = NULL;

        if (placement_index_new(hosts, n, &ix) < 0) {
                fprintf(stderr, "Out of memory\n");
                exit(2);
        }
        return ix;
}

/* Fills the cluster in trace order, no departures, deciding as PowerOn does (placement_index_choose), or
 * by the linear scan alone when `linear`. */
static double fill(const struct trace *t, enum placement_policy policy, bool linear, uint64_t *ret_gpus,
                   size_t *ret_refused, size_t *ret_shapes) {
        struct host_capacity *hosts = malloc(sizeof(*hosts) * t->n_hosts);
        struct placement_index *ix;
        uint64_t seed = 42, gpus = 0;
        size_t refused = 0;
        struct cluster_free cluster;

        memcpy(hosts, t->hosts, sizeof(*hosts) * t->n_hosts);
        ix = index_or_die(hosts, t->n_hosts);
        double start, elapsed;

        cluster_free_compute(hosts, t->n_hosts, &cluster);
        start = now();
        for (size_t i = 0; i < t->n_vms; i++) {
                struct gpu_request req;
                struct vm_demand d = demand_of(t, &t->vms[i], &req);
                struct placement p;
                int r = linear ? placement_choose(hosts, t->n_hosts, &d, &cluster, policy, &seed, &p)
                               : placement_index_choose(ix, &d, &cluster, policy, &seed, &p);

                if (r < 0) {
                        refused++;
                        continue;
                }
                if (placement_index_commit(ix, &d, &p, &cluster) < 0) {
                        fprintf(stderr, "Out of memory\n");
                        exit(2);
                }
                gpus += t->vms[i].gpus;
        }
        elapsed = now() - start;
        if (ret_shapes)
                *ret_shapes = placement_index_shapes(ix);
        placement_index_free(ix);
        free(hosts);
        *ret_gpus = gpus;
        *ret_refused = refused;
        return elapsed;
}

struct event {
        long long time;
        size_t vm;
        bool arrival;
};

static int compare_events(const void *a, const void *b) {
        const struct event *x = a, *y = b;

        if (x->time != y->time)
                return x->time < y->time ? -1 : 1;
        if (x->arrival != y->arrival)
                return x->arrival ? 1 : -1; /* departures first at the same instant */
        return x->vm < y->vm ? -1 : x->vm > y->vm;
}

static void replay(const struct trace *t, enum placement_policy policy, size_t *ret_admitted, size_t *ret_refused) {
        struct host_capacity *hosts = malloc(sizeof(*hosts) * t->n_hosts);
        struct event *events = malloc(sizeof(*events) * t->n_vms * 2);
        struct placement *placed = calloc(t->n_vms, sizeof(*placed));
        bool *running = calloc(t->n_vms, sizeof(bool));
        size_t n = 0, admitted = 0, refused = 0;
        uint64_t seed = 42;
        struct cluster_free cluster;

        struct placement_index *ix;

        memcpy(hosts, t->hosts, sizeof(*hosts) * t->n_hosts);
        ix = index_or_die(hosts, t->n_hosts);
        cluster_free_compute(hosts, t->n_hosts, &cluster);
        for (size_t i = 0; i < t->n_vms; i++) {
                long long created = t->vms[i].created >= 0 ? t->vms[i].created : (long long) i;

                events[n++] = (struct event) { created, i, true };
                if (t->vms[i].deleted >= 0)
                        events[n++] = (struct event) { t->vms[i].deleted, i, false };
        }
        qsort(events, n, sizeof(*events), compare_events);
        for (size_t e = 0; e < n; e++) {
                struct gpu_request req;
                struct vm_demand d = demand_of(t, &t->vms[events[e].vm], &req);

                if (!events[e].arrival) {
                        if (running[events[e].vm]) {
                                if (placement_index_uncommit(ix, &d, &placed[events[e].vm], &cluster) < 0)
                                        exit(2);
                                running[events[e].vm] = false;
                        }
                        continue;
                }
                if (placement_index_choose(ix, &d, &cluster, policy, &seed, &placed[events[e].vm]) < 0) {
                        refused++;
                        continue;
                }
                if (placement_index_commit(ix, &d, &placed[events[e].vm], &cluster) < 0)
                        exit(2);
                running[events[e].vm] = true;
                admitted++;
        }
        placement_index_free(ix);
        free(hosts);
        free(events);
        free(placed);
        free(running);
        *ret_admitted = admitted;
        *ret_refused = refused;
}

/* Decisions per second: repeated fills of a fresh cluster for at least `seconds` of deciding (building the
 * cluster and its index is not counted: a running aggregator has them). Also the shapes at the end. */
static double speed(const struct trace *t, enum placement_policy policy, bool linear, double seconds,
                    size_t *ret_shapes) {
        size_t decisions = 0, refused;
        double elapsed = 0;
        uint64_t gpus;

        do {
                elapsed += fill(t, policy, linear, &gpus, &refused, ret_shapes);
                decisions += t->n_vms;
        } while (elapsed < seconds);
        return (double) decisions / elapsed;
}

static struct trace scaled(const struct trace *t, size_t factor) {
        struct trace s = *t;

        s.hosts = malloc(sizeof(*s.hosts) * t->n_hosts * factor);
        for (size_t i = 0; i < factor; i++)
                memcpy(s.hosts + i * t->n_hosts, t->hosts, sizeof(*t->hosts) * t->n_hosts);
        s.n_hosts = t->n_hosts * factor;
        s.total_gpus = t->total_gpus * factor;
        return s;
}

int main(int argc, char *argv[]) {
        static const enum placement_policy policies[] = { POLICY_BEST_FIT, POLICY_FIRST_FIT, POLICY_RANDOM_FIT };

        if (argc < 3) {
                fprintf(stderr, "Usage: %s NODES.csv PODS.csv [PODS.csv...]\n", argv[0]);
                return 2;
        }
        for (int a = 2; a < argc; a++) {
                struct trace t = {};
                uint64_t demanded = 0, bound;
                double base_speed = 0;

                load_nodes(&t, argv[1]);
                load_vms(&t, argv[a]);
                for (size_t i = 0; i < t.n_vms; i++)
                        demanded += t.vms[i].gpus;
                bound = demanded < t.total_gpus ? demanded : t.total_gpus;
                printf("== %s on %s: %zu hosts, %llu GPUs, %zu VMs demanding %llu GPUs, %zu models\n", argv[a], argv[1],
                       t.n_hosts, (unsigned long long) t.total_gpus, t.n_vms, (unsigned long long) demanded, t.models.n);

                printf("speed (decisions/s, one core; best fit as PowerOn decides, through the shape index):\n");
                for (size_t factor = 1; factor <= 100; factor *= 10) {
                        struct trace s = scaled(&t, factor);
                        size_t shapes;
                        double best = speed(&s, POLICY_BEST_FIT, false, factor == 100 ? 2.0 : 0.5, &shapes);
                        double first = speed(&s, POLICY_FIRST_FIT, false, factor == 100 ? 2.0 : 0.5, NULL);
                        char linear[64] = "not run (minutes per fill)";

                        /* The linear scan scores every host, for comparison; at x100 one fill takes minutes. */
                        if (factor < 100)
                                snprintf(linear, sizeof(linear), "%.0f/s", speed(&s, POLICY_BEST_FIT, true, 0.5, NULL));
                        if (factor == 1)
                                base_speed = best;
                        printf("  x%-3zu %7zu hosts, %5zu shapes after the fill: best-fit %8.0f/s (cost vs x1 %5.2fx, "
                               "hosts x%zu), first-fit %8.0f/s, best/first %.2f, best-fit by linear scan %s\n",
                               factor, s.n_hosts, shapes, best, base_speed / best, factor, first, best / first, linear);
                        free(s.hosts);
                }
                /* The rows above place the same VMs on more hosts, so the large clusters stay nearly empty and
                 * few hosts diverge from their machine type. Filled as full as x1 (the VM list repeated), hosts
                 * diverge in proportion: this is the cost a fragmented large cluster pays. */
                {
                        struct trace s = scaled(&t, 10);
                        size_t shapes, shapes_x1;
                        double full_x1 = speed(&t, POLICY_BEST_FIT, false, 0.5, &shapes_x1), full;

                        s.vms = malloc(sizeof(*s.vms) * t.n_vms * 10);
                        for (size_t i = 0; i < 10; i++)
                                memcpy(s.vms + i * t.n_vms, t.vms, sizeof(*t.vms) * t.n_vms);
                        s.n_vms = t.n_vms * 10;
                        full = speed(&s, POLICY_BEST_FIT, false, 0.0, &shapes);
                        printf("  x10 hosts and x10 VMs (as full as x1): best-fit %8.0f/s, %zu shapes after the fill "
                               "(x1: %.0f/s, %zu shapes): cost vs x1 %.2fx for %.1fx the shapes\n", full, shapes, full_x1,
                               shapes_x1, full_x1 / full, (double) shapes / (double) shapes_x1);
                        free(s.vms);
                        free(s.hosts);
                }

                printf("quality, fill in trace order without departures (upper bound %llu GPUs):\n",
                       (unsigned long long) bound);
                for (size_t i = 0; i < 3; i++) {
                        uint64_t gpus;
                        size_t refused;

                        fill(&t, policies[i], false, &gpus, &refused, NULL);
                        printf("  %-19s GPUs allocated %5llu (%.1f%% of bound), VMs refused %zu\n",
                               policy_name(policies[i]), (unsigned long long) gpus, 100.0 * (double) gpus / (double) bound,
                               refused);
                }
                printf("replay with arrivals and departures:\n");
                for (size_t i = 0; i < 3; i++) {
                        size_t admitted, refused;

                        replay(&t, policies[i], &admitted, &refused);
                        printf("  %-19s admitted %zu, refused %zu\n", policy_name(policies[i]), admitted, refused);
                }
                free(t.hosts);
                free(t.vms);
                model_table_done(&t.models);
        }
        return 0;
}
