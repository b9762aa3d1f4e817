/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The aggregator's PowerOn, timed by a client of its bus (the environment's system bus).
 *
 * latency ROUNDS VM AGENT-BUS-ADDRESS: each round powers VM on (timed: the whole PowerOn call) and off, then
 * makes the agent calls that PowerOn makes, directly on the agent's bus: one Claim per IOMMU group of the
 * GPUs PowerOn was given (timed: the sum), then their Release. The GPUs stay on vfio-pci between rounds
 * (the first round, untimed, binds them), so both sides measure claims of GPUs already on vfio-pci. Rounds
 * alternate which side goes first, so both see the same load. Prints p50 and p99 of both and their ratio.
 *
 * burst N MODEL: creates VMs burst-0 .. burst-N-1 (1 vCPU, 64 MiB, "1:MODEL"), then issues
 * the N PowerOn calls at once (all outstanding) and times them until the last answer: all answered, how
 * many placed, VMs/s, p50/p99 of a call; then powers them all off the same way (timed too).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>

#include "bench-stats.h"

#define CLUSTER_NAME "org.gpupass.cluster1"
#define CLUSTER_PATH "/org/gpupass/cluster1"
#define CLUSTER_INTERFACE "org.gpupass.cluster1.Manager"
#define AGENT_NAME "org.gpupass.agent1"
#define AGENT_PATH "/org/gpupass/agent1"
#define AGENT_GPU_INTERFACE "org.gpupass.agent1.Gpu"
#define BENCH_VM "0f8fad5b-d9cb-469f-a165-70867728950e"
#define MAX_GROUPS 64
#define CALL_TIMEOUT_US (600ull * 1000000ull)

static int fail(const char *what, const sd_bus_error *e, int r) {
        fprintf(stderr, "%s: %s\n", what, e && e->message ? e->message : strerror(r < 0 ? -r : r));
        return r < 0 ? r : -EIO;
}

static int cluster_call(sd_bus *bus, const char *method, sd_bus_message **ret, const char *types, ...) {
        __attribute__((cleanup(sd_bus_error_free))) sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *m = NULL;
        va_list ap;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, CLUSTER_NAME, CLUSTER_PATH, CLUSTER_INTERFACE, method);
        if (r >= 0) {
                va_start(ap, types);
                r = sd_bus_message_appendv(m, types, ap);
                va_end(ap);
        }
        if (r >= 0)
                r = sd_bus_call(bus, m, CALL_TIMEOUT_US, &e, ret);
        sd_bus_message_unref(m);
        return r < 0 ? fail(method, &e, r) : r;
}

struct groups {
        size_t n;
        char *path[MAX_GROUPS];  /* one GPU object per IOMMU group */
        int32_t group[MAX_GROUPS];
};

/* The GPUs of a PowerOn answer (s host, as gpus), one per IOMMU group, as the agent names them. */
static int groups_of(sd_bus *agent, sd_bus_message *answer, struct groups *ret) {
        const char *host, *addr;
        int r;

        r = sd_bus_message_read(answer, "s", &host);
        if (r >= 0)
                r = sd_bus_message_enter_container(answer, 'a', "s");
        while (r >= 0 && (r = sd_bus_message_read(answer, "s", &addr)) > 0) {
                __attribute__((cleanup(sd_bus_error_free))) sd_bus_error e = SD_BUS_ERROR_NULL;
                sd_bus_message *reply = NULL;
                const char *path;
                int32_t group = -1;
                bool seen = false;

                r = sd_bus_call_method(agent, AGENT_NAME, AGENT_PATH, "org.gpupass.agent1.Manager", "GetGpu", &e,
                                       &reply, "s", addr);
                if (r < 0)
                        return fail("GetGpu", &e, r);
                r = sd_bus_message_read(reply, "o", &path);
                if (r >= 0)
                        r = sd_bus_get_property_trivial(agent, AGENT_NAME, path, AGENT_GPU_INTERFACE, "IommuGroup",
                                                        &e, 'i', &group);
                for (size_t i = 0; r >= 0 && i < ret->n; i++)
                        seen = seen || ret->group[i] == group;
                if (r >= 0 && !seen && ret->n < MAX_GROUPS) {
                        ret->path[ret->n] = strdup(path);
                        ret->group[ret->n++] = group;
                }
                sd_bus_message_unref(reply);
        }
        return r;
}

static int agent_call(sd_bus *agent, const char *path, const char *method) {
        __attribute__((cleanup(sd_bus_error_free))) sd_bus_error e = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_call_method(agent, AGENT_NAME, path, AGENT_GPU_INTERFACE, method, &e, NULL, "s", BENCH_VM);
        return r < 0 ? fail(method, &e, r) : r;
}

static int timed_power_on(sd_bus *cluster, const char *vm, uint64_t *ret_ns, sd_bus_message **ret_answer) {
        uint64_t t0 = bench_now_ns();
        int r;

        r = cluster_call(cluster, "PowerOn", ret_answer, "s", vm);
        *ret_ns = bench_now_ns() - t0;
        if (r >= 0)
                r = cluster_call(cluster, "PowerOff", NULL, "s", vm);
        return r;
}

static int timed_claims(sd_bus *agent, const struct groups *g, uint64_t *ret_ns) {
        uint64_t sum = 0;
        int r = 0;

        for (size_t i = 0; r >= 0 && i < g->n; i++) {
                uint64_t t0 = bench_now_ns();

                r = agent_call(agent, g->path[i], "Claim");
                sum += bench_now_ns() - t0;
        }
        for (size_t i = 0; r >= 0 && i < g->n; i++)
                r = agent_call(agent, g->path[i], "Release");
        *ret_ns = sum;
        return r;
}

static int latency(sd_bus *cluster, unsigned rounds, const char *vm, const char *agent_address) {
        uint64_t *power = calloc(rounds, sizeof(uint64_t)), *claims = calloc(rounds, sizeof(uint64_t)), t;
        struct groups g = {};
        sd_bus_message *answer = NULL;
        sd_bus *agent = NULL;
        int r;

        r = sd_bus_new(&agent);
        if (r >= 0)
                r = sd_bus_set_address(agent, agent_address);
        if (r >= 0)
                r = sd_bus_set_bus_client(agent, true);
        if (r >= 0)
                r = sd_bus_start(agent);
        if (r < 0 || !power || !claims)
                return fail("agent bus", NULL, r < 0 ? r : -ENOMEM);
        /* Untimed: binds the GPUs to vfio-pci and learns their groups. */
        r = timed_power_on(cluster, vm, &t, &answer);
        if (r < 0)
                return r;
        r = groups_of(agent, answer, &g);
        sd_bus_message_unref(answer);
        if (r < 0)
                return fail("the GPUs of the answer", NULL, r);
        for (unsigned i = 0; r >= 0 && i < rounds; i++) {
                if (i % 2 == 0) {
                        r = timed_power_on(cluster, vm, &power[i], NULL);
                        if (r >= 0)
                                r = timed_claims(agent, &g, &claims[i]);
                } else {
                        r = timed_claims(agent, &g, &claims[i]);
                        if (r >= 0)
                                r = timed_power_on(cluster, vm, &power[i], NULL);
                }
        }
        if (r < 0)
                return r;
        {
                uint64_t p50 = bench_percentile(power, rounds, 50), p99 = bench_percentile(power, rounds, 99);
                uint64_t c50 = bench_percentile(claims, rounds, 50), c99 = bench_percentile(claims, rounds, 99);

                printf("PowerOn of %s (%zu IOMMU group(s), GPUs on vfio-pci), %u rounds:\n", vm, g.n, rounds);
                printf("  whole PowerOn call      p50 %7.3f ms  p99 %7.3f ms\n", p50 / 1e6, p99 / 1e6);
                printf("  sum of the agent Claims p50 %7.3f ms  p99 %7.3f ms\n", c50 / 1e6, c99 / 1e6);
                printf("  ratio                   p50 %7.2fx    p99 %7.2fx  (target <= 1.3x)\n",
                       (double) p50 / (double) c50, (double) p99 / (double) c99);
        }
        for (size_t i = 0; i < g.n; i++)
                free(g.path[i]);
        free(power);
        free(claims);
        sd_bus_flush_close_unref(agent);
        return 0;
}

struct burst {
        unsigned outstanding, ok, failed;
        uint64_t started, last;
        uint64_t *lat;
        unsigned n_lat;
        char *first_error;
};

struct burst_call {
        struct burst *b;
        uint64_t sent;
};

static int on_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct burst_call *c = userdata;
        struct burst *b = c->b;
        const sd_bus_error *e = sd_bus_message_get_error(m);

        b->last = bench_now_ns();
        b->lat[b->n_lat++] = b->last - c->sent;
        if (e) {
                b->failed++;
                if (!b->first_error)
                        b->first_error = strdup(e->message ?: e->name);
        } else
                b->ok++;
        b->outstanding--;
        free(c);
        return 0;
}

/* METHOD on every VM at once (one string argument and, for SetVmGpus, REQUEST), all outstanding. */
static int all_at_once(sd_bus *bus, const char *method, unsigned n, const char *request, struct burst *b) {
        int r;

        *b = (struct burst) { .lat = calloc(n, sizeof(uint64_t)) };
        if (!b->lat)
                return -ENOMEM;
        b->started = bench_now_ns();
        for (unsigned i = 0; i < n; i++) {
                struct burst_call *c = calloc(1, sizeof(*c));
                sd_bus_message *m = NULL;
                char name[32];

                if (!c)
                        return -ENOMEM;
                snprintf(name, sizeof(name), "burst-%u", i);
                *c = (struct burst_call) { .b = b, .sent = bench_now_ns() };
                r = sd_bus_message_new_method_call(bus, &m, CLUSTER_NAME, CLUSTER_PATH, CLUSTER_INTERFACE, method);
                if (r >= 0 && strcmp(method, "CreateVm") == 0)
                        r = sd_bus_message_append(m, "sut", name, 1u, (uint64_t) 64);
                else if (r >= 0 && request)
                        r = sd_bus_message_append(m, "ss", name, request);
                else if (r >= 0)
                        r = sd_bus_message_append(m, "s", name);
                /* Not sd-bus's 25 s default: a thousand calls at once on a loaded machine take longer. */
                if (r >= 0)
                        r = sd_bus_call_async(bus, NULL, m, on_reply, c, CALL_TIMEOUT_US);
                m = sd_bus_message_unref(m);
                if (r < 0)
                        return fail(method, NULL, r);
                b->outstanding++;
        }
        while (b->outstanding > 0) {
                r = sd_bus_process(bus, NULL);
                if (r < 0)
                        return fail("processing replies", NULL, r);
                if (r == 0 && (r = sd_bus_wait(bus, UINT64_MAX)) < 0)
                        return fail("waiting for replies", NULL, r);
        }
        return 0;
}

static void burst_print(const char *what, struct burst *b, unsigned n) {
        double s = (double) (b->last - b->started) / 1e9;

        printf("  %-9s %u answered (%u ok, %u refused) in %.2f s: %.0f VMs/s; a call p50 %.0f ms p99 %.0f ms\n",
               what, b->ok + b->failed, b->ok, b->failed, s, n / s, bench_percentile(b->lat, b->n_lat, 50) / 1e6,
               bench_percentile(b->lat, b->n_lat, 99) / 1e6);
        if (b->first_error)
                printf("  first refusal: %s\n", b->first_error);
        free(b->first_error);
        free(b->lat);
}

static int burst(sd_bus *cluster, unsigned n, const char *model) {
        char request[256];
        struct burst b;
        int r;

        snprintf(request, sizeof(request), "1:%s", model);
        r = all_at_once(cluster, "CreateVm", n, NULL, &b);
        free(b.first_error);
        free(b.lat);
        if (r >= 0)
                r = all_at_once(cluster, "SetVmGpus", n, request, &b);
        if (r < 0 || b.failed > 0)
                return fail("SetVmGpus", NULL, r < 0 ? r : -EIO);
        free(b.first_error);
        free(b.lat);
        printf("%u PowerOn at once (all outstanding), then %u PowerOff:\n", n, n);
        r = all_at_once(cluster, "PowerOn", n, NULL, &b);
        if (r < 0)
                return r;
        burst_print("PowerOn", &b, n);
        r = all_at_once(cluster, "PowerOff", n, NULL, &b);
        if (r < 0)
                return r;
        burst_print("PowerOff", &b, n);
        return 0;
}

int main(int argc, char *argv[]) {
        sd_bus *cluster = NULL;
        int r;

        r = sd_bus_open_system(&cluster);
        if (r < 0)
                return fail("the aggregator's bus", NULL, r), 1;
        if (argc == 5 && strcmp(argv[1], "latency") == 0)
                r = latency(cluster, (unsigned) atoi(argv[2]), argv[3], argv[4]);
        else if (argc == 4 && strcmp(argv[1], "burst") == 0)
                r = burst(cluster, (unsigned) atoi(argv[2]), argv[3]);
        else {
                fprintf(stderr, "usage: poweron-bench latency ROUNDS VM AGENT-BUS-ADDRESS | burst N MODEL\n");
                return 2;
        }
        sd_bus_flush_close_unref(cluster);
        return r < 0 ? 1 : 0;
}
