/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uevent -> D-Bus signal latency of gpupassd on the simulated host, against a baseline measured in the same run.
 * Unbinds and rebinds one GPU from its driver through sysfs (one write(2) each; the simulated kernel applies it
 * and sends the unbind or bind uevent before the write returns) and times until this client has received the
 * GPU's PropertiesChanged carrying the new Driver. Interleaved with those, the same unbind/bind of a device no
 * GPU shares a group with (a NIC), which uevent-relay (a bare libudev monitor that emits one signal per event,
 * on the same bus) answers with its Driver signal: the floor for "uevent in, signal out", since the agent
 * must at least wake, receive and send through dbus-daemon too. Every process wakes for every event (the
 * agent for the NIC's, the relay for the GPU's), so both series see the same machine.
 * The uevent's time is the kernel's receive timestamp of the datagram on this client's own monitor
 * (SO_TIMESTAMPNS, CLOCK_REALTIME), so the simulated kernel's time inside the write is apart; a signal's is when
 * this client parsed it. The monitor's thread also notes when it ran after each datagram: how long the
 * scheduler takes to wake a process for a uevent here, which neither the agent nor the relay can beat.
 * With the PIDs, also the agent's and the relay's CPU time per event (which the machine's load does not change).
 * Usage: signal-bench COUNT ADDRESS DRIVER RELAY-ADDRESS RELAY-DRIVER [AGENT-PID RELAY-PID]
 * (under gpupass-simhost, gpupassd on the system bus, uevent-relay as org.gpupass.bench.Relay for RELAY-ADDRESS).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <libudev.h>
#include <systemd/sd-bus.h>

#include "bench-stats.h"

#define TIMEOUT_NS 2000000000ull

struct watch {
        const char *address;    /* the relay's signal: of this device */
        const char *expected;   /* the Driver value the next signal must carry */
        bool seen;
        uint64_t seen_ns;
        uint64_t seen_realtime_ns;
};

/* The uevent side: when each bind/unbind uevent of the two devices reached this process, and when this
 * thread ran after it. */
struct uevent_clock {
        struct udev_monitor *monitor;
        const char *address[2];
        _Atomic uint64_t count[2];  /* uevents of each device seen so far */
        _Atomic uint64_t last_ns[2];
        _Atomic uint64_t last_wake_ns[2];
};

static void *uevent_thread(void *userdata) {
        struct uevent_clock *c = userdata;
        struct pollfd p = { .fd = udev_monitor_get_fd(c->monitor), .events = POLLIN };

        for (;;) {
                union {
                        struct cmsghdr h;
                        char buf[CMSG_SPACE(sizeof(struct timespec))];
                } control;
                char payload[8192];
                struct sockaddr_storage sender; /* umockdev's recvmsg() writes a netlink sender here */
                struct iovec iov = { .iov_base = payload, .iov_len = sizeof(payload) };
                struct msghdr msg = { .msg_name = &sender, .msg_namelen = sizeof(sender), .msg_iov = &iov,
                                      .msg_iovlen = 1, .msg_control = &control, .msg_controllen = sizeof(control) };
                uint64_t t = 0, woke;
                ssize_t n;

                if (poll(&p, 1, -1) < 0)
                        continue;
                /* Read here rather than through libudev, which hides the control messages: the message is
                 * a NUL-separated KEY=value list after libudev's header, searched as bytes. */
                n = recvmsg(p.fd, &msg, MSG_DONTWAIT);
                woke = bench_realtime_ns();
                if (n <= 0)
                        continue;
                for (struct cmsghdr *h = CMSG_FIRSTHDR(&msg); h; h = CMSG_NXTHDR(&msg, h))
                        if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_TIMESTAMPNS) {
                                struct timespec ts;

                                memcpy(&ts, CMSG_DATA(h), sizeof(ts));
                                t = (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
                        }
                if (t == 0)
                        t = woke;
                if (!memmem(payload, (size_t) n, "ACTION=bind", sizeof("ACTION=bind")) &&
                    !memmem(payload, (size_t) n, "ACTION=unbind", sizeof("ACTION=unbind")))
                        continue;
                for (int k = 0; k < 2; k++) {
                        char slot[64];

                        snprintf(slot, sizeof(slot), "PCI_SLOT_NAME=%s", c->address[k]);
                        if (memmem(payload, (size_t) n, slot, strlen(slot) + 1)) {
                                atomic_store(&c->last_ns[k], t);
                                atomic_store(&c->last_wake_ns[k], woke);
                                atomic_fetch_add(&c->count[k], 1);
                        }
                }
        }
        return NULL;
}

static int on_properties_changed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct watch *w = userdata;
        const char *iface, *name, *value;
        int r;

        (void) error;
        if (w->seen || sd_bus_message_read(m, "s", &iface) < 0 || strcmp(iface, "org.gpupass.agent1.Gpu") != 0)
                return 0;
        if (sd_bus_message_enter_container(m, 'a', "{sv}") < 0)
                return 0;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                if (sd_bus_message_read(m, "s", &name) < 0)
                        return 0;
                if (strcmp(name, "Driver") == 0) {
                        if (sd_bus_message_read(m, "v", "s", &value) < 0)
                                return 0;
                        if (strcmp(value, w->expected) == 0) {
                                w->seen = true;
                                w->seen_ns = bench_now_ns();
                                w->seen_realtime_ns = bench_realtime_ns();
                        }
                        return 0;
                }
                if (sd_bus_message_skip(m, "v") < 0 || sd_bus_message_exit_container(m) < 0)
                        return 0;
        }
        return 0;
}

/* Driver(s address, s driver) from uevent-relay. */
static int on_relay_driver(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct watch *w = userdata;
        const char *address, *driver;

        (void) error;
        if (w->seen || !w->address || sd_bus_message_read(m, "ss", &address, &driver) < 0)
                return 0;
        if (strcmp(address, w->address) == 0 && strcmp(driver, w->expected) == 0) {
                w->seen = true;
                w->seen_ns = bench_now_ns();
                w->seen_realtime_ns = bench_realtime_ns();
        }
        return 0;
}

static int sysfs_write(const char *path, const char *value) {
        int fd = open(path, O_WRONLY | O_CLOEXEC), r = 0;

        if (fd < 0)
                return -errno;
        if (write(fd, value, strlen(value)) < 0)
                r = -errno;
        close(fd);
        return r;
}

static int wait_for_signal(sd_bus *bus, struct watch *w, uint64_t start_ns) {
        while (!w->seen) {
                int r = sd_bus_process(bus, NULL);

                if (r < 0)
                        return r;
                if (r > 0)
                        continue;
                if (bench_now_ns() - start_ns > TIMEOUT_NS)
                        return -ETIMEDOUT;
                r = sd_bus_wait(bus, 100000);
                if (r < 0)
                        return r;
        }
        return 0;
}

static void print_row(const char *what, uint64_t *samples, size_t n, const char *note) {
        printf("  %-36s p50 %7.3f ms   p99 %7.3f ms   max %7.3f ms%s\n", what, bench_percentile(samples, n, 50) / 1e6,
               bench_percentile(samples, n, 99) / 1e6, bench_percentile(samples, n, 100) / 1e6, note);
}

enum { AGENT, RELAY };

int main(int argc, char *argv[]) {
        char gpu_path[256], match[512], *encoded = NULL;
        char unbind[2][256], bind[2][256];
        uint64_t *latency[2], *write_time[2], *signal_time[2], *wake_time;
        struct uevent_clock clock = {};
        double cpu[2] = {};
        pid_t pid[2] = {};
        struct udev *udev;
        pthread_t thread;
        sd_bus *bus = NULL;
        struct watch w = {};
        long count;
        int r;

        if ((argc != 6 && argc != 8) || (count = strtol(argv[1], NULL, 10)) <= 0) {
                fprintf(stderr, "Usage: %s COUNT ADDRESS DRIVER RELAY-ADDRESS RELAY-DRIVER [AGENT-PID RELAY-PID]\n",
                        argv[0]);
                return 2;
        }
        clock.address[AGENT] = argv[2];
        clock.address[RELAY] = argv[4];
        if (argc == 8) {
                pid[AGENT] = (pid_t) atoi(argv[6]);
                pid[RELAY] = (pid_t) atoi(argv[7]);
        }
        for (int k = 0; k < 2; k++) {
                latency[k] = calloc((size_t) count, sizeof(uint64_t));
                write_time[k] = calloc((size_t) count, sizeof(uint64_t));
                signal_time[k] = calloc((size_t) count, sizeof(uint64_t));
                if (!latency[k] || !write_time[k] || !signal_time[k])
                        return 1;
                snprintf(unbind[k], sizeof(unbind[k]), "/sys/bus/pci/drivers/%s/unbind", argv[k == AGENT ? 3 : 5]);
                snprintf(bind[k], sizeof(bind[k]), "/sys/bus/pci/drivers/%s/bind", argv[k == AGENT ? 3 : 5]);
        }
        wake_time = calloc((size_t) count * 2, sizeof(uint64_t));
        udev = udev_new();
        clock.monitor = udev ? udev_monitor_new_from_netlink(udev, "udev") : NULL;
        if (!clock.monitor || udev_monitor_filter_add_match_subsystem_devtype(clock.monitor, "pci", NULL) < 0 ||
            udev_monitor_enable_receiving(clock.monitor) < 0 ||
            setsockopt(udev_monitor_get_fd(clock.monitor), SOL_SOCKET, SO_TIMESTAMPNS, &(int) { 1 }, sizeof(int)) < 0 ||
            pthread_create(&thread, NULL, uevent_thread, &clock) != 0) {
                fprintf(stderr, "udev monitor: %m\n");
                return 1;
        }
        r = sd_bus_path_encode("/org/gpupass/agent1/gpu", argv[2], &encoded);
        if (!wake_time || r < 0)
                return 1;
        snprintf(gpu_path, sizeof(gpu_path), "%s", encoded);
        snprintf(match, sizeof(match),
                 "type='signal',sender='org.gpupass.agent1',interface='org.freedesktop.DBus.Properties',"
                 "member='PropertiesChanged',path='%s'", gpu_path);

        r = sd_bus_open_system(&bus);
        if (r >= 0)
                r = sd_bus_add_match(bus, NULL, match, on_properties_changed, &w);
        if (r >= 0)
                r = sd_bus_add_match(bus, NULL,
                                     "type='signal',sender='org.gpupass.bench.Relay',interface='org.gpupass.bench.Relay',"
                                     "member='Driver'", on_relay_driver, &w);
        if (r < 0) {
                fprintf(stderr, "bus: %s\n", strerror(-r));
                return 1;
        }
        for (int k = 0; k < 2; k++)
                if (pid[k] > 0)
                        cpu[k] = bench_process_cpu_seconds(pid[k]);
        /* GPU unbind, NIC unbind, GPU bind, NIC bind, ...: the two series alternate event by event. */
        for (long i = 0; i < 2 * count; i++) {
                int k = i % 2 == 0 ? AGENT : RELAY;
                long j = i / 2; /* the j-th event of series k */
                bool unbinding = j % 2 == 0;
                const char *address = clock.address[k], *driver = argv[k == AGENT ? 3 : 5];
                uint64_t t0, t1;

                w = (struct watch) { .address = k == RELAY ? address : NULL, .expected = unbinding ? "" : driver };
                t0 = bench_now_ns();
                r = sysfs_write(unbinding ? unbind[k] : bind[k], address);
                t1 = bench_now_ns();
                if (r < 0) {
                        fprintf(stderr, "event %ld: writing %s to %s: %s\n", i, address, unbinding ? unbind[k] : bind[k],
                                strerror(-r));
                        return 1;
                }
                r = wait_for_signal(bus, &w, t0);
                if (r < 0) {
                        fprintf(stderr, "event %ld (%s of %s): no %s with Driver \"%s\": %s\n", i,
                                unbinding ? "unbind" : "bind", address,
                                k == AGENT ? "PropertiesChanged" : "relay signal", w.expected, strerror(-r));
                        return 1;
                }
                /* The client's monitor thread wakes with the others; wait for it to have noted the event. */
                while (atomic_load(&clock.count[k]) < (uint64_t) j + 1) {
                        if (bench_now_ns() - t0 > TIMEOUT_NS) {
                                fprintf(stderr, "event %ld: this client's udev monitor did not see it\n", i);
                                return 1;
                        }
                        usleep(50);
                }
                latency[k][j] = w.seen_ns - t0;
                write_time[k][j] = t1 - t0;
                signal_time[k][j] = w.seen_realtime_ns - atomic_load(&clock.last_ns[k]);
                wake_time[i] = atomic_load(&clock.last_wake_ns[k]) - atomic_load(&clock.last_ns[k]);
        }
        for (int k = 0; k < 2; k++)
                if (pid[k] > 0)
                        cpu[k] = (bench_process_cpu_seconds(pid[k]) - cpu[k]) * 1e6 / (double) count;

        printf("%ld uevents to gpupassd (unbind/bind of %s from %s, until its PropertiesChanged(Driver)),\n"
               "interleaved with %ld to the baseline (unbind/bind of %s from %s, until uevent-relay's signal)\n",
               count, argv[2], argv[3], count, argv[4], argv[5]);
        print_row("gpupassd: uevent -> signal", signal_time[AGENT], (size_t) count, "   (target p99 <= 5 ms)");
        print_row("baseline relay: uevent -> signal", signal_time[RELAY], (size_t) count, "");
        print_row("floor: uevent -> monitor thread ran", wake_time, (size_t) count * 2, "");
        {
                double a50 = (double) bench_percentile(signal_time[AGENT], (size_t) count, 50);
                double a99 = (double) bench_percentile(signal_time[AGENT], (size_t) count, 99);
                double b50 = (double) bench_percentile(signal_time[RELAY], (size_t) count, 50);
                double b99 = (double) bench_percentile(signal_time[RELAY], (size_t) count, 99);

                printf("  gpupassd vs baseline: p50 %+.3f ms (%.2fx)   p99 %+.3f ms (%.2fx)\n", (a50 - b50) / 1e6,
                       a50 / b50, (a99 - b99) / 1e6, a99 / b99);
        }
        print_row("gpupassd: write -> signal", latency[AGENT], (size_t) count, "   (with the simulated kernel)");
        print_row("baseline: write -> signal", latency[RELAY], (size_t) count, "");
        print_row("the simulated kernel's write()", write_time[AGENT], (size_t) count, "");
        if (pid[AGENT] > 0)
                printf("  CPU per event: gpupassd %.1f us, relay %.1f us (each also woke for the other's events)\n",
                       cpu[AGENT], cpu[RELAY]);
        for (int k = 0; k < 2; k++) {
                free(latency[k]);
                free(write_time[k]);
                free(signal_time[k]);
        }
        free(wake_time);
        free(encoded);
        sd_bus_unref(bus);
        return 0;
}
