/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The aggregator's load time and change-to-view latency, both timed by the signals the view emits.
 *
 * Load: from starting gpupass-clusterd (its configuration lists HOSTS agents that already run, each on
 * its own bus) until the PropertiesChanged of its Host objects have shown every host `up` with GPUS
 * GPUs; then one ListHosts and ListGpus confirm it (HOSTS x GPUS GPUs), and that time is printed too.
 *
 * Change -> view: CHANGES alternating Claim / Release of one GPU of the first host, called on its agent.
 * Timed from the agent's own PropertiesChanged of that GPU (as this client receives it on the agent's
 * bus) to the aggregator's PropertiesChanged of that host's FreeGpuCount: what the aggregator adds to
 * the agent's announcement (it hears the same signal, updates the view and announces it). The client
 * sleeps in poll() on both buses, so it wakes at the first of the two. Baselines from the same run:
 * a Peer.Ping round trip to the agent and to the aggregator.
 *
 * Usage: cluster-bench HOSTS GPUS CHANGES HOST0-BUS-ADDRESS HOST0-NAME GPU-ADDRESS CLUSTERD [ARGS...]
 * (the aggregator's bus is the environment's system bus).
 */
#include <errno.h>
#include <poll.h>
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
#define CLUSTER_HOST_PREFIX "/org/gpupass/cluster1/host"
#define CLUSTER_HOST_INTERFACE "org.gpupass.cluster1.Host"
#define AGENT_NAME "org.gpupass.agent1"
#define AGENT_GPU_INTERFACE "org.gpupass.agent1.Gpu"
#define BENCH_VM "0f8fad5b-d9cb-469f-a165-70867728950e"
#define TIMEOUT_NS 60000000000ull
#define PINGS 200

struct host_seen {
        char *name;
        bool up;
        uint64_t complete_at;    /* first seen up with all its GPUs */
        uint32_t gpus;
        uint32_t free_gpus;
};

struct bench {
        sd_bus *cluster, *agent;
        struct host_seen *hosts;
        size_t n_hosts, n_expected;
        unsigned gpus_expected;
        size_t n_complete;         /* up with all their GPUs */
        const char *host0;
        uint64_t complete_at;      /* when the signals first showed every host complete */
        /* the change in flight */
        int32_t want_free;         /* -1: none */
        uint64_t agent_signal_at, view_at, replied_at;
        bool replied;
        int reply_error;
        char *reply_message;
        unsigned signals;          /* Host PropertiesChanged received */
};

static struct host_seen *host_get(struct bench *b, const char *name) {
        struct host_seen *t;

        for (size_t i = 0; i < b->n_hosts; i++)
                if (strcmp(b->hosts[i].name, name) == 0)
                        return &b->hosts[i];
        t = realloc(b->hosts, sizeof(*t) * (b->n_hosts + 1));
        if (!t)
                return NULL;
        b->hosts = t;
        t = &b->hosts[b->n_hosts];
        *t = (struct host_seen) { .name = strdup(name) };
        if (!t->name)
                return NULL;
        b->n_hosts++;
        return t;
}

static bool host_complete(const struct bench *b, const struct host_seen *h) {
        return h->up && h->gpus == b->gpus_expected;
}

/* PropertiesChanged of a Host object: State, GpuCount, FreeGpuCount are what the bench follows. */
static int on_host_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct bench *b = userdata;
        uint64_t now = bench_now_ns();
        char *name = NULL;
        struct host_seen *h;
        const char *interface;
        bool was_complete;
        int r;

        if (sd_bus_path_decode(sd_bus_message_get_path(m), CLUSTER_HOST_PREFIX, &name) <= 0)
                return 0;
        h = host_get(b, name);
        free(name);
        if (!h)
                return -ENOMEM;
        b->signals++;
        was_complete = host_complete(b, h);
        r = sd_bus_message_read(m, "s", &interface);
        if (r < 0 || strcmp(interface, CLUSTER_HOST_INTERFACE) != 0)
                return 0;
        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                const char *property, *state;

                r = sd_bus_message_read(m, "s", &property);
                if (r < 0)
                        break;
                if (strcmp(property, "State") == 0) {
                        r = sd_bus_message_read(m, "v", "s", &state);
                        h->up = r >= 0 && strcmp(state, "up") == 0;
                } else if (strcmp(property, "GpuCount") == 0)
                        r = sd_bus_message_read(m, "v", "u", &h->gpus);
                else if (strcmp(property, "FreeGpuCount") == 0)
                        r = sd_bus_message_read(m, "v", "u", &h->free_gpus);
                else
                        r = sd_bus_message_skip(m, "v");
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
        }
        if (r < 0)
                return 0;
        if (!was_complete && host_complete(b, h)) {
                b->n_complete++;
                if (!h->complete_at)
                        h->complete_at = now;
        }
        else if (was_complete && !host_complete(b, h))
                b->n_complete--;
        if (b->n_complete == b->n_expected && b->complete_at == 0)
                b->complete_at = now;
        if (b->want_free >= 0 && b->view_at == 0 && strcmp(h->name, b->host0) == 0 &&
            h->free_gpus == (uint32_t) b->want_free)
                b->view_at = now;
        return 0;
}

/* The agent's PropertiesChanged of the GPU that carries its State (claimed, vfio): what the view follows.
 * (Owner comes in a signal of its own just before.) */
static int on_agent_gpu_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct bench *b = userdata;
        uint64_t now = bench_now_ns();
        const char *interface, *property;
        int r;

        if (b->want_free < 0 || b->agent_signal_at != 0)
                return 0;
        r = sd_bus_message_read(m, "s", &interface);
        if (r >= 0)
                r = sd_bus_message_enter_container(m, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                r = sd_bus_message_read(m, "s", &property);
                if (r >= 0 && strcmp(property, "State") == 0) {
                        b->agent_signal_at = now;
                        break;
                }
                if (r >= 0)
                        r = sd_bus_message_skip(m, "v");
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
        }
        return 0;
}

static int on_change_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct bench *b = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);

        b->replied = true;
        b->replied_at = bench_now_ns();
        if (e) {
                b->reply_error = -EIO;
                b->reply_message = strdup(e->message ?: e->name);
        }
        return 0;
}

/* Dispatches what both buses have, then sleeps in poll() on both until something arrives (or max_ns). */
static int pump(struct bench *b, uint64_t max_ns) {
        sd_bus *buses[2] = { b->cluster, b->agent };
        struct pollfd p[2];
        uint64_t wait_ns = max_ns;
        bool any = false;
        int r;

        for (int i = 0; i < 2; i++) {
                while ((r = sd_bus_process(buses[i], NULL)) > 0)
                        any = true;
                if (r < 0)
                        return r;
        }
        if (any)
                return 0;
        for (int i = 0; i < 2; i++) {
                uint64_t until;

                p[i] = (struct pollfd) { .fd = sd_bus_get_fd(buses[i]), .events = (short) sd_bus_get_events(buses[i]) };
                if (sd_bus_get_timeout(buses[i], &until) > 0 && until != UINT64_MAX) {
                        struct timespec ts;
                        uint64_t now_us;

                        clock_gettime(CLOCK_MONOTONIC, &ts);
                        now_us = (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000;
                        if (until <= now_us)
                                wait_ns = 0;
                        else if ((until - now_us) * 1000 < wait_ns)
                                wait_ns = (until - now_us) * 1000;
                }
        }
        r = poll(p, 2, (int) ((wait_ns + 999999) / 1000000));
        return r < 0 ? -errno : 0;
}

/* ListHosts and ListGpus: hosts up, and GPUs in the view. */
static int view_counts(sd_bus *bus, unsigned *ret_up, unsigned *ret_gpus) {
        sd_bus_message *reply = NULL;
        const char *name, *address, *state, *reason;
        unsigned up = 0, count = 0;
        uint32_t cpus, gpus;
        uint64_t mem;
        int r;

        r = sd_bus_call_method(bus, CLUSTER_NAME, CLUSTER_PATH, CLUSTER_INTERFACE, "ListHosts", NULL, &reply, "");
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "(ssssutu)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(ssssutu)", &name, &address, &state, &reason, &cpus,
                                                  &mem, &gpus)) > 0)
                up += strcmp(state, "up") == 0;
        reply = sd_bus_message_unref(reply);
        if (r < 0)
                return r;
        r = sd_bus_call_method(bus, CLUSTER_NAME, CLUSTER_PATH, CLUSTER_INTERFACE, "ListGpus", NULL, &reply, "");
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "(sssssssbas)");
        while (r >= 0 && (r = sd_bus_message_skip(reply, "(sssssssbas)")) > 0)
                count++;
        sd_bus_message_unref(reply);
        if (r < 0)
                return r;
        *ret_up = up;
        *ret_gpus = count;
        return 0;
}

/* p50 of PINGS Peer.Ping round trips to `name` on `bus`. */
static int ping_p50(sd_bus *bus, const char *name, const char *path, uint64_t *ret) {
        uint64_t samples[PINGS];

        for (int i = 0; i < PINGS; i++) {
                uint64_t t = bench_now_ns();
                int r = sd_bus_call_method(bus, name, path, "org.freedesktop.DBus.Peer", "Ping", NULL, NULL, "");

                if (r < 0)
                        return r;
                samples[i] = bench_now_ns() - t;
        }
        *ret = bench_percentile(samples, PINGS, 50);
        return 0;
}

/* CPU seconds per role of the processes listed in $BENCH_PIDS ("ROLE PID" lines), in file order. */
#define ROLES_MAX 4
struct roles {
        char name[ROLES_MAX][32];
        unsigned count[ROLES_MAX];
        double cpu[ROLES_MAX];
        size_t n;
};

/* On-CPU time from the scheduler (/proc/PID/schedstat, nanoseconds): clock ticks are too coarse for
 * a hundred processes that each run a millisecond. */
static double cpu_seconds(pid_t pid) {
        char path[64];
        unsigned long long ns = 0;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/schedstat", (int) pid);
        f = fopen(path, "re");
        if (!f)
                return -1;
        if (fscanf(f, "%llu", &ns) != 1)
                ns = 0;
        fclose(f);
        return (double) ns / 1e9;
}

static void roles_read(struct roles *ret) {
        const char *path = getenv("BENCH_PIDS");
        char role[32];
        FILE *f;
        int pid;

        *ret = (struct roles) {};
        if (!path || !(f = fopen(path, "re")))
                return;
        while (fscanf(f, "%31s %d", role, &pid) == 2) {
                size_t i;
                double s = cpu_seconds(pid);

                for (i = 0; i < ret->n && strcmp(ret->name[i], role) != 0; i++)
                        ;
                if (i == ret->n) {
                        if (ret->n == ROLES_MAX)
                                continue;
                        snprintf(ret->name[ret->n++], sizeof(ret->name[0]), "%s", role);
                }
                ret->count[i]++;
                ret->cpu[i] += s > 0 ? s : 0;
        }
        fclose(f);
}

static double self_cpu_seconds(void) {
        struct timespec ts;

        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static int add_matches(struct bench *b, const char *gpu_path) {
        int r;

        r = sd_bus_add_match(b->cluster, NULL,
                             "type='signal',sender='" CLUSTER_NAME "',interface='org.freedesktop.DBus.Properties',"
                             "member='PropertiesChanged',path_namespace='" CLUSTER_HOST_PREFIX "'",
                             on_host_changed, b);
        if (r < 0)
                return r;
        return sd_bus_match_signal(b->agent, NULL, AGENT_NAME, gpu_path, "org.freedesktop.DBus.Properties",
                                   "PropertiesChanged", on_agent_gpu_changed, b);
}

static int open_buses(struct bench *b, const char *agent_address) {
        int r;

        r = sd_bus_open_system(&b->cluster);
        if (r >= 0)
                r = sd_bus_new(&b->agent);
        if (r >= 0)
                r = sd_bus_set_address(b->agent, agent_address);
        if (r >= 0)
                r = sd_bus_set_bus_client(b->agent, true);
        if (r >= 0)
                r = sd_bus_start(b->agent);
        return r;
}

/* One Claim or Release; fills the three timestamps. */
static int one_change(struct bench *b, const char *gpu_path, bool claim, int32_t want_free) {
        uint64_t sent;
        int r;

        b->want_free = want_free;
        b->agent_signal_at = b->view_at = 0;
        b->replied = false;
        sent = bench_now_ns();
        r = sd_bus_call_method_async(b->agent, NULL, AGENT_NAME, gpu_path, AGENT_GPU_INTERFACE,
                                     claim ? "Claim" : "Release", on_change_reply, b, "s", BENCH_VM);
        if (r < 0)
                return r;
        while (!(b->replied && (b->view_at || b->reply_error))) {
                if (bench_now_ns() - sent > 10000000000ull)
                        return -ETIMEDOUT;
                r = pump(b, 100000000);
                if (r < 0)
                        return r;
        }
        if (b->reply_error) {
                fprintf(stderr, "%s: %s\n", claim ? "Claim" : "Release", b->reply_message ?: "failed");
                return b->reply_error;
        }
        if (!b->agent_signal_at)
                return -ENOMSG;
        return 0;
}

int main(int argc, char *argv[]) {
        struct bench b = { .want_free = -1 };
        unsigned changes, up = 0, count = 0;
        uint64_t t0, confirmed, *latency, *call_to_view, ping_agent, ping_cluster;
        char *gpu_path = NULL;
        size_t done = 0;
        int32_t free_before;
        struct roles cpu_before, cpu_after;
        double self_before, self_after;
        pid_t pid;
        int r;

        if (argc < 8 || (b.n_expected = (size_t) atoi(argv[1])) == 0 ||
            (b.gpus_expected = (unsigned) atoi(argv[2])) == 0 || (changes = (unsigned) atoi(argv[3])) == 0) {
                fprintf(stderr, "Usage: %s HOSTS GPUS CHANGES HOST0-BUS HOST0-NAME GPU CLUSTERD [ARGS...]\n", argv[0]);
                return 2;
        }
        b.host0 = argv[5];
        latency = calloc(changes, sizeof(uint64_t));
        call_to_view = calloc(changes, sizeof(uint64_t));
        if (!latency || !call_to_view || sd_bus_path_encode("/org/gpupass/agent1/gpu", argv[6], &gpu_path) < 0)
                return 1;
        r = open_buses(&b, argv[4]);
        if (r >= 0)
                r = add_matches(&b, gpu_path);
        if (r < 0) {
                fprintf(stderr, "buses: %s\n", strerror(-r));
                return 1;
        }
        /* Outside the timing: the GPU on vfio-pci, so that Claim is the claim alone. */
        (void) sd_bus_call_method(b.agent, AGENT_NAME, gpu_path, AGENT_GPU_INTERFACE, "Prepare", NULL, NULL, "");

        roles_read(&cpu_before);
        self_before = self_cpu_seconds();
        t0 = bench_now_ns();
        pid = fork();
        if (pid < 0)
                return 1;
        if (pid == 0) {
                execv(argv[7], argv + 7);
                _exit(127);
        }
        /* Signals until every host is complete; a quiet second asks the view directly (nothing is missed
         * that way, whatever the signals did). Then ListHosts and ListGpus confirm. */
        for (;;) {
                uint64_t quiet_since = bench_now_ns();

                while (!b.complete_at && bench_now_ns() - quiet_since < 1000000000ull) {
                        unsigned before = b.signals;

                        r = pump(&b, 100000000);
                        if (r < 0)
                                break;
                        if (b.signals != before)
                                quiet_since = bench_now_ns();
                }
                if (r >= 0 && view_counts(b.cluster, &up, &count) >= 0 && up == b.n_expected &&
                    count == b.n_expected * b.gpus_expected)
                        break;
                if (r < 0 || bench_now_ns() - t0 > TIMEOUT_NS) {
                        fprintf(stderr, "after %.1f s: %zu of %zu hosts complete by their signals, ListHosts %u up, "
                                "ListGpus %u GPUs\n", (bench_now_ns() - t0) / 1e9, b.n_complete, b.n_expected, up, count);
                        kill(pid, SIGTERM);
                        return 1;
                }
                b.complete_at = 0; /* the signals said complete but the view did not: wait for more */
        }
        confirmed = bench_now_ns() - t0;
        roles_read(&cpu_after);
        self_after = self_cpu_seconds();
        printf("aggregator over %zu agents on %zu buses (%u GPUs each):\n", b.n_expected, b.n_expected,
               b.gpus_expected);
        printf("  load: clusterd start -> Host signals show all %zu up with %u GPUs  %.3f s   (target <= 1 s)\n"
               "        ... and ListHosts/ListGpus confirm %u up, %u GPUs             %.3f s\n",
               b.n_expected, b.gpus_expected, (b.complete_at - t0) / 1e9, up, count, confirmed / 1e9);
        {
                uint64_t *at = calloc(b.n_hosts ?: 1, sizeof(uint64_t));
                size_t n = 0;

                for (size_t i = 0; at && i < b.n_hosts; i++)
                        if (b.hosts[i].complete_at)
                                at[n++] = b.hosts[i].complete_at - t0;
                if (n > 0)
                        printf("  hosts complete (by their signals): first %.3f s, 10%% %.3f s, half %.3f s, 90%% %.3f s, "
                               "last %.3f s\n", bench_percentile(at, n, 0) / 1e9, bench_percentile(at, n, 10) / 1e9,
                               bench_percentile(at, n, 50) / 1e9, bench_percentile(at, n, 90) / 1e9,
                               bench_percentile(at, n, 100) / 1e9);
                free(at);
        }
        printf("  CPU used meanwhile (%ld cores): gpupass-clusterd %.3f s, this client %.3f s",
               sysconf(_SC_NPROCESSORS_ONLN), cpu_seconds(pid), self_after - self_before);
        for (size_t i = 0; i < cpu_after.n && i < cpu_before.n; i++)
                printf(", %s (%u) %.3f s", cpu_after.name[i], cpu_after.count[i],
                       cpu_after.cpu[i] - cpu_before.cpu[i]);
        printf("\n");

        {
                struct host_seen *h0 = host_get(&b, b.host0);

                free_before = h0 ? (int32_t) h0->free_gpus : -1;
        }
        if (free_before <= 0) {
                fprintf(stderr, "host %s shows no free GPU to claim\n", b.host0);
                r = -ENOENT;
        }
        for (unsigned i = 0; r >= 0 && i < changes; i++) {
                bool claim = i % 2 == 0;

                r = one_change(&b, gpu_path, claim, claim ? free_before - 1 : free_before);
                if (r < 0) {
                        fprintf(stderr, "change %u (%s): %s\n", i, claim ? "Claim" : "Release", strerror(-r));
                        break;
                }
                latency[done] = b.view_at > b.agent_signal_at ? b.view_at - b.agent_signal_at : 0;
                call_to_view[done] = b.view_at - (b.replied_at < b.view_at ? b.replied_at : b.view_at);
                done++;
        }
        b.want_free = -1;
        if (r >= 0)
                r = ping_p50(b.agent, AGENT_NAME, "/org/gpupass/agent1", &ping_agent);
        if (r >= 0)
                r = ping_p50(b.cluster, CLUSTER_NAME, CLUSTER_PATH, &ping_cluster);
        if (r >= 0) {
                uint64_t p50 = bench_percentile(latency, done, 50), p99 = bench_percentile(latency, done, 99);

                printf("  change -> view (the agent's PropertiesChanged of the GPU to the Host object's FreeGpuCount), "
                       "%zu Claim/Release:\n"
                       "    p50 %.3f ms   p99 %.3f ms   max %.3f ms   (target <= 10 ms)\n"
                       "    the agent's reply to the view: p50 %.3f ms (0: the view was first)\n"
                       "  baseline, same run: Peer.Ping round trip p50 to the agent %.3f ms, to the aggregator %.3f ms;\n"
                       "    change -> view p50 = %.1fx the agent's round trip, %.1fx the aggregator's\n",
                       done, p50 / 1e6, p99 / 1e6, bench_percentile(latency, done, 100) / 1e6,
                       bench_percentile(call_to_view, done, 50) / 1e6, ping_agent / 1e6, ping_cluster / 1e6,
                       (double) p50 / (double) ping_agent, (double) p50 / (double) ping_cluster);
        }
        for (size_t i = 0; i < b.n_hosts; i++)
                free(b.hosts[i].name);
        free(b.hosts);
        free(b.reply_message);
        free(latency);
        free(call_to_view);
        free(gpu_path);
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        sd_bus_unref(b.agent);
        sd_bus_unref(b.cluster);
        return r < 0 ? 1 : 0;
}
