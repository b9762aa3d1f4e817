/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The aggregator's load time and change-to-view latency. Starts gpupass-clusterd (its configuration
 * lists HOSTS agents that already run, each on its own bus) and times until its ListHosts shows every
 * host up and ListGpus shows HOSTS x GPUS GPUs. Then CHANGES times Prepare / ReturnToHost of one GPU
 * of the first host, each from the agent's reply (the agent emits PropertiesChanged before it replies)
 * until the aggregator's ListGpus shows the new state, polling it back to back.
 * Usage: cluster-bench HOSTS GPUS CHANGES HOST0-BUS-ADDRESS HOST0-NAME GPU-ADDRESS CLUSTERD [ARGS...]
 * (the aggregator's bus is the environment's system bus).
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <systemd/sd-bus.h>

#include "bench-stats.h"

#define CLUSTER_NAME "org.gpupass.cluster1"
#define CLUSTER_PATH "/org/gpupass/cluster1"
#define CLUSTER_INTERFACE "org.gpupass.cluster1.Manager"
#define TIMEOUT_NS 60000000000ull

/* ListHosts: how many hosts are up. */
static int hosts_up(sd_bus *bus, unsigned *ret_up) {
        sd_bus_message *reply = NULL;
        const char *name, *address, *state, *reason;
        unsigned up = 0;
        uint32_t cpus, gpus;
        uint64_t mem;
        int r;

        r = sd_bus_call_method(bus, CLUSTER_NAME, CLUSTER_PATH, CLUSTER_INTERFACE, "ListHosts", NULL, &reply, "");
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "(ssssutu)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(ssssutu)", &name, &address, &state, &reason, &cpus,
                                                  &mem, &gpus)) > 0)
                if (strcmp(state, "up") == 0)
                        up++;
        sd_bus_message_unref(reply);
        if (r < 0)
                return r;
        *ret_up = up;
        return 0;
}

/* ListGpus: the number of GPUs, and the state of one (NULL when not in the view). */
static int gpu_view(sd_bus *bus, const char *host, const char *address, unsigned *ret_count, char **ret_state) {
        sd_bus_message *reply = NULL;
        const char *h, *a, *model, *mode, *state, *owner, *previous;
        unsigned count = 0;
        char *found = NULL;
        int reconf, r;

        r = sd_bus_call_method(bus, CLUSTER_NAME, CLUSTER_PATH, CLUSTER_INTERFACE, "ListGpus", NULL, &reply, "");
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "(sssssssbas)");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'r', "sssssssbas")) > 0) {
                r = sd_bus_message_read(reply, "sssssssb", &h, &a, &model, &mode, &state, &owner, &previous, &reconf);
                if (r >= 0)
                        r = sd_bus_message_skip(reply, "as");
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
                if (r >= 0 && !found && strcmp(h, host) == 0 && strcmp(a, address) == 0)
                        found = strdup(state);
                count++;
        }
        sd_bus_message_unref(reply);
        if (r < 0) {
                free(found);
                return r;
        }
        *ret_count = count;
        *ret_state = found;
        return 0;
}

int main(int argc, char *argv[]) {
        sd_bus *cluster = NULL, *agent = NULL;
        unsigned hosts, gpus, changes, up = 0, count = 0, polls = 0;
        char *state = NULL, *gpu_path = NULL;
        uint64_t t0, loaded, *latency;
        pid_t pid;
        int r;

        if (argc < 8 || (hosts = (unsigned) atoi(argv[1])) == 0 || (gpus = (unsigned) atoi(argv[2])) == 0 ||
            (changes = (unsigned) atoi(argv[3])) == 0) {
                fprintf(stderr, "Usage: %s HOSTS GPUS CHANGES HOST0-BUS HOST0-NAME GPU CLUSTERD [ARGS...]\n", argv[0]);
                return 2;
        }
        latency = calloc(changes, sizeof(uint64_t));
        if (!latency || sd_bus_path_encode("/org/gpupass/agent1/gpu", argv[6], &gpu_path) < 0)
                return 1;
        r = sd_bus_open_system(&cluster);
        if (r >= 0)
                r = sd_bus_new(&agent);
        if (r >= 0)
                r = sd_bus_set_address(agent, argv[4]);
        if (r >= 0)
                r = sd_bus_set_bus_client(agent, true);
        if (r >= 0)
                r = sd_bus_start(agent);
        if (r < 0) {
                fprintf(stderr, "buses: %s\n", strerror(-r));
                return 1;
        }

        t0 = bench_now_ns();
        pid = fork();
        if (pid < 0)
                return 1;
        if (pid == 0) {
                execv(argv[7], argv + 7);
                _exit(127);
        }
        /* Until every host is up and every GPU in the view; errors while the name is not taken yet. */
        for (;;) {
                if (bench_now_ns() - t0 > TIMEOUT_NS) {
                        fprintf(stderr, "after 60 s: %u of %u hosts up, %u GPUs\n", up, hosts, count);
                        kill(pid, SIGTERM);
                        return 1;
                }
                polls++;
                free(state);
                state = NULL;
                if (hosts_up(cluster, &up) >= 0 && up == hosts &&
                    gpu_view(cluster, argv[5], argv[6], &count, &state) >= 0 && count == hosts * gpus)
                        break;
                usleep(1000);
        }
        loaded = bench_now_ns() - t0;
        printf("aggregator over %u agents on %u buses (%u GPUs each):\n", hosts, hosts, gpus);
        printf("  load: clusterd start -> all hosts up and %u GPUs in ListGpus  %.3f s   (%u polls; target <= 1 s)\n",
               count, loaded / 1e9, polls);
        printf("  CPU time of gpupass-clusterd by then: %.2f s (the rest of the wall time: the agents, their buses, "
               "this client)\n", bench_process_cpu_seconds(pid));

        for (unsigned i = 0; i < changes; i++) {
                sd_bus_error error = SD_BUS_ERROR_NULL;
                bool prepare = i % 2 == 0;
                const char *want = prepare ? "vfio" : "host";
                uint64_t replied;

                r = sd_bus_call_method(agent, "org.gpupass.agent1", gpu_path, "org.gpupass.agent1.Gpu",
                                       prepare ? "Prepare" : "ReturnToHost", &error, NULL, "");
                replied = bench_now_ns();
                if (r < 0) {
                        fprintf(stderr, "%s: %s\n", prepare ? "Prepare" : "ReturnToHost", error.message ?: strerror(-r));
                        sd_bus_error_free(&error);
                        break;
                }
                for (;;) {
                        free(state);
                        state = NULL;
                        r = gpu_view(cluster, argv[5], argv[6], &count, &state);
                        if (r < 0 || (state && strcmp(state, want) == 0))
                                break;
                        if (bench_now_ns() - replied > 10000000000ull) {
                                r = -ETIMEDOUT;
                                break;
                        }
                }
                if (r < 0) {
                        fprintf(stderr, "change %u: the view did not show %s: %s\n", i, want, strerror(-r));
                        break;
                }
                latency[i] = bench_now_ns() - replied;
        }
        if (r >= 0) {
                uint64_t one, call_only;

                /* What one poll costs, as the resolution of the figure above. */
                t0 = bench_now_ns();
                for (int i = 0; i < 20; i++) {
                        free(state);
                        state = NULL;
                        (void) gpu_view(cluster, argv[5], argv[6], &count, &state);
                }
                one = (bench_now_ns() - t0) / 20;
                /* The same call without reading the reply: the aggregator's and the bus's share of a poll. */
                t0 = bench_now_ns();
                for (int i = 0; i < 20; i++) {
                        sd_bus_message *reply = NULL;

                        (void) sd_bus_call_method(cluster, CLUSTER_NAME, CLUSTER_PATH, CLUSTER_INTERFACE, "ListGpus",
                                                  NULL, &reply, "");
                        sd_bus_message_unref(reply);
                }
                call_only = (bench_now_ns() - t0) / 20;
                printf("  change -> view (agent's reply to Prepare/ReturnToHost until ListGpus shows it), %u changes:\n"
                       "    p50 %.3f ms   max %.3f ms   (target <= 10 ms)\n"
                       "  resolution: one ListGpus poll of %u GPUs takes %.3f ms, of which the call without reading the "
                       "reply %.3f ms\n",
                       changes, bench_percentile(latency, changes, 50) / 1e6,
                       bench_percentile(latency, changes, 100) / 1e6, count, one / 1e6, call_only / 1e6);
        }
        free(state);
        free(latency);
        free(gpu_path);
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        sd_bus_unref(agent);
        sd_bus_unref(cluster);
        return r < 0 ? 1 : 0;
}
