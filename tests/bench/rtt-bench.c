/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Method-call round trips of gpupassd against echo-service on the same bus: ListGpus and a property Get
 * (Model of the first GPU), interleaved call by call so that both see the same machine load, and the
 * ratio agent/echo of p50 and p99. With both PIDs, also the CPU time each server spent per round (one
 * ListGpus and one Get), which the load of a shared machine does not change as it changes latencies.
 * Usage: rtt-bench COUNT ECHO-BUS-NAME [AGENT-PID ECHO-PID] (system bus of the environment).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>

#include "bench-stats.h"

#define AGENT_NAME "org.gpupass.agent1"
#define AGENT_PATH "/org/gpupass/agent1"
#define ECHO_PATH "/org/gpupass/bench/echo"
#define ECHO_INTERFACE "org.gpupass.bench.Echo"
#define WARMUP 200

enum { AGENT_LIST, ECHO_LIST, AGENT_GET, ECHO_GET, N_KINDS };

static const char *const kind_names[N_KINDS] = {
        "agent ListGpus", "echo  ListGpus", "agent Get Model", "echo  Get Model",
};

static int timed_call(sd_bus *bus, const char *dest, const char *path, const char *iface, const char *method,
                      const char *prop_iface, const char *prop, uint64_t *ret_ns) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        uint64_t t0 = bench_now_ns();
        int r;

        if (prop)
                r = sd_bus_call_method(bus, dest, path, "org.freedesktop.DBus.Properties", "Get", &error, &reply,
                                       "ss", prop_iface, prop);
        else
                r = sd_bus_call_method(bus, dest, path, iface, method, &error, &reply, "");
        *ret_ns = bench_now_ns() - t0;
        if (r < 0)
                fprintf(stderr, "%s %s: %s\n", dest, prop ?: method, error.message ?: strerror(-r));
        sd_bus_error_free(&error);
        sd_bus_message_unref(reply);
        return r;
}

static int first_gpu_path(sd_bus *bus, char **ret) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *path = NULL;
        int r;

        r = sd_bus_call_method(bus, AGENT_NAME, AGENT_PATH, "org.gpupass.agent1.Manager", "ListGpus", &error,
                               &reply, "");
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "(osssssssiiasbbs)");
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'r', "osssssssiiasbbs");
        if (r > 0)
                r = sd_bus_message_read(reply, "o", &path);
        if (r > 0 && path) {
                *ret = strdup(path);
                r = *ret ? 0 : -ENOMEM;
        } else if (r >= 0)
                r = -ENODEV;
        if (r < 0)
                fprintf(stderr, "ListGpus: %s\n", error.message ?: strerror(-r));
        sd_bus_error_free(&error);
        sd_bus_message_unref(reply);
        return r;
}

int main(int argc, char *argv[]) {
        uint64_t *samples[N_KINDS] = {}, p50[N_KINDS], p99[N_KINDS];
        char *gpu = NULL;
        sd_bus *bus = NULL;
        double cpu_agent = 0, cpu_echo = 0;
        pid_t agent_pid = 0, echo_pid = 0;
        long count;
        int r;

        if (argc == 5) {
                agent_pid = (pid_t) atoi(argv[3]);
                echo_pid = (pid_t) atoi(argv[4]);
        } else if (argc != 3)
                argc = 0;
        if (argc == 0 || (count = strtol(argv[1], NULL, 10)) <= 0) {
                fprintf(stderr, "Usage: %s COUNT ECHO-BUS-NAME [AGENT-PID ECHO-PID]\n", argv[0]);
                return 2;
        }
        r = sd_bus_open_system(&bus);
        if (r < 0) {
                fprintf(stderr, "system bus: %s\n", strerror(-r));
                return 1;
        }
        r = first_gpu_path(bus, &gpu);
        if (r < 0)
                return 1;
        for (int k = 0; k < N_KINDS; k++) {
                samples[k] = calloc((size_t) count, sizeof(uint64_t));
                if (!samples[k])
                        return 1;
        }
        for (long i = -WARMUP; i < count; i++) {
                uint64_t t[N_KINDS];

                if (i == 0 && agent_pid > 0) {
                        cpu_agent = bench_process_cpu_seconds(agent_pid);
                        cpu_echo = bench_process_cpu_seconds(echo_pid);
                }

                /* Who goes first alternates: the second call of a pair finds warmer caches. */
                for (int j = 0; j < 2; j++) {
                        bool agent = (j == 0) == (i % 2 == 0);

                        r = agent ? timed_call(bus, AGENT_NAME, AGENT_PATH, "org.gpupass.agent1.Manager", "ListGpus",
                                               NULL, NULL, &t[AGENT_LIST])
                                  : timed_call(bus, argv[2], ECHO_PATH, ECHO_INTERFACE, "ListGpus", NULL, NULL,
                                               &t[ECHO_LIST]);
                        if (r < 0)
                                return 1;
                }
                for (int j = 0; j < 2; j++) {
                        bool agent = (j == 0) == (i % 2 == 0);

                        r = agent ? timed_call(bus, AGENT_NAME, gpu, NULL, NULL, "org.gpupass.agent1.Gpu", "Model",
                                               &t[AGENT_GET])
                                  : timed_call(bus, argv[2], ECHO_PATH, NULL, NULL, ECHO_INTERFACE, "Model",
                                               &t[ECHO_GET]);
                        if (r < 0)
                                return 1;
                }
                if (r < 0)
                        return 1;
                if (i >= 0)
                        for (int k = 0; k < N_KINDS; k++)
                                samples[k][i] = t[k];
        }
        printf("%ld round trips each, interleaved (order alternating), after %d warm-up rounds (GPU %s)\n", count, WARMUP, gpu);
        for (int k = 0; k < N_KINDS; k++) {
                p50[k] = bench_percentile(samples[k], (size_t) count, 50);
                p99[k] = bench_percentile(samples[k], (size_t) count, 99);
                printf("  %-16s p50 %7.1f us   p99 %7.1f us\n", kind_names[k], p50[k] / 1e3, p99[k] / 1e3);
        }
        printf("  ratio agent/echo  ListGpus p50 %.2fx p99 %.2fx   Get p50 %.2fx p99 %.2fx   (target <= 1.3x)\n",
               (double) p50[AGENT_LIST] / (double) p50[ECHO_LIST], (double) p99[AGENT_LIST] / (double) p99[ECHO_LIST],
               (double) p50[AGENT_GET] / (double) p50[ECHO_GET], (double) p99[AGENT_GET] / (double) p99[ECHO_GET]);
        if (agent_pid > 0) {
                cpu_agent = bench_process_cpu_seconds(agent_pid) - cpu_agent;
                cpu_echo = bench_process_cpu_seconds(echo_pid) - cpu_echo;
                printf("  CPU per round (ListGpus + Get): agent %.1f us, echo %.1f us, ratio %.2fx\n",
                       cpu_agent * 1e6 / (double) count, cpu_echo * 1e6 / (double) count,
                       cpu_echo > 0 ? cpu_agent / cpu_echo : 0.0);
        }
        for (int k = 0; k < N_KINDS; k++)
                free(samples[k]);
        free(gpu);
        sd_bus_unref(bus);
        return 0;
}
