/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * uevent -> D-Bus signal latency of gpupassd on the simulated host: unbinds and rebinds one GPU from its
 * driver through sysfs (one write(2) each; the simulated kernel applies it and sends the unbind or bind
 * uevent before the write returns) and times until this client has received the GPU's PropertiesChanged
 * carrying the new Driver. The uevent's arrival is observed by this client too (its own libudev monitor, on
 * a thread that only waits for it), so the agent's share, uevent in -> signal out, is reported apart from
 * the simulated kernel's time inside the write. The uevent's time is the kernel's receive timestamp of the
 * datagram (SO_TIMESTAMPNS, CLOCK_REALTIME), so a late wakeup of that thread does not count; the signal's is
 * when this client parsed it.
 * With the agent's PID, also its CPU time per event (which the machine's load does not change).
 * Usage: signal-bench COUNT ADDRESS DRIVER [AGENT-PID] (under gpupass-simhost, gpupassd on the system bus).
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
        const char *expected;   /* the Driver value the next signal must carry */
        bool seen;
        uint64_t seen_ns;
        uint64_t seen_realtime_ns;
};

/* The uevent side: the time each bind/unbind uevent of the GPU reached this process. */
struct uevent_clock {
        struct udev_monitor *monitor;
        const char *address;
        _Atomic uint64_t count;  /* uevents of the GPU seen so far */
        _Atomic uint64_t last_ns;
};

static void *uevent_thread(void *userdata) {
        struct uevent_clock *c = userdata;
        struct pollfd p = { .fd = udev_monitor_get_fd(c->monitor), .events = POLLIN };

        for (;;) {
                union {
                        struct cmsghdr h;
                        char buf[CMSG_SPACE(sizeof(struct timespec))];
                } control;
                char payload[8192], slot[64];
                struct sockaddr_storage sender; /* umockdev's recvmsg() writes a netlink sender here */
                struct iovec iov = { .iov_base = payload, .iov_len = sizeof(payload) };
                struct msghdr msg = { .msg_name = &sender, .msg_namelen = sizeof(sender), .msg_iov = &iov,
                                      .msg_iovlen = 1, .msg_control = &control, .msg_controllen = sizeof(control) };
                uint64_t t = 0;
                ssize_t n;

                if (poll(&p, 1, -1) < 0)
                        continue;
                /* Read here rather than through libudev, which hides the control messages: the message is
                 * a NUL-separated KEY=value list after libudev's header, searched as bytes. */
                n = recvmsg(p.fd, &msg, MSG_DONTWAIT);
                if (n <= 0)
                        continue;
                for (struct cmsghdr *h = CMSG_FIRSTHDR(&msg); h; h = CMSG_NXTHDR(&msg, h))
                        if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_TIMESTAMPNS) {
                                struct timespec ts;

                                memcpy(&ts, CMSG_DATA(h), sizeof(ts));
                                t = (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
                        }
                if (t == 0)
                        t = bench_realtime_ns();
                snprintf(slot, sizeof(slot), "PCI_SLOT_NAME=%s", c->address);
                if (memmem(payload, (size_t) n, slot, strlen(slot) + 1) &&
                    (memmem(payload, (size_t) n, "ACTION=bind", sizeof("ACTION=bind")) ||
                     memmem(payload, (size_t) n, "ACTION=unbind", sizeof("ACTION=unbind")))) {
                        atomic_store(&c->last_ns, t);
                        atomic_fetch_add(&c->count, 1);
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

int main(int argc, char *argv[]) {
        char gpu_path[256], match[512], unbind[256], bind[256], *encoded = NULL;
        uint64_t *latency, *write_time, *agent_time;
        struct uevent_clock clock = { .address = argv[2] };
        struct udev *udev;
        pthread_t thread;
        sd_bus *bus = NULL;
        struct watch w = {};
        long count;
        int r;

        double cpu = 0;
        pid_t agent_pid = argc == 5 ? (pid_t) atoi(argv[4]) : 0;

        if ((argc != 4 && argc != 5) || (count = strtol(argv[1], NULL, 10)) <= 0) {
                fprintf(stderr, "Usage: %s COUNT ADDRESS DRIVER [AGENT-PID]\n", argv[0]);
                return 2;
        }
        latency = calloc((size_t) count, sizeof(uint64_t));
        write_time = calloc((size_t) count, sizeof(uint64_t));
        agent_time = calloc((size_t) count, sizeof(uint64_t));
        udev = udev_new();
        clock.monitor = udev ? udev_monitor_new_from_netlink(udev, "udev") : NULL;
        if (!clock.monitor || udev_monitor_filter_add_match_subsystem_devtype(clock.monitor, "pci", NULL) < 0 ||
            udev_monitor_enable_receiving(clock.monitor) < 0 ||
            setsockopt(udev_monitor_get_fd(clock.monitor), SOL_SOCKET, SO_TIMESTAMPNS, &(int) { 1 }, sizeof(int)) < 0 || pthread_create(&thread, NULL, uevent_thread, &clock) != 0) {
                fprintf(stderr, "udev monitor: %m\n");
                return 1;
        }
        r = sd_bus_path_encode("/org/gpupass/agent1/gpu", argv[2], &encoded);
        if (!latency || !write_time || !agent_time || r < 0)
                return 1;
        snprintf(gpu_path, sizeof(gpu_path), "%s", encoded);
        snprintf(match, sizeof(match),
                 "type='signal',sender='org.gpupass.agent1',interface='org.freedesktop.DBus.Properties',"
                 "member='PropertiesChanged',path='%s'", gpu_path);
        snprintf(unbind, sizeof(unbind), "/sys/bus/pci/drivers/%s/unbind", argv[3]);
        snprintf(bind, sizeof(bind), "/sys/bus/pci/drivers/%s/bind", argv[3]);

        r = sd_bus_open_system(&bus);
        if (r >= 0)
                r = sd_bus_add_match(bus, NULL, match, on_properties_changed, &w);
        if (r < 0) {
                fprintf(stderr, "bus: %s\n", strerror(-r));
                return 1;
        }
        if (agent_pid > 0)
                cpu = bench_process_cpu_seconds(agent_pid);
        for (long i = 0; i < count; i++) {
                bool unbinding = i % 2 == 0;
                uint64_t t0, t1;

                w = (struct watch) { .expected = unbinding ? "" : argv[3] };
                t0 = bench_now_ns();
                r = sysfs_write(unbinding ? unbind : bind, argv[2]);
                t1 = bench_now_ns();
                if (r < 0) {
                        fprintf(stderr, "event %ld: writing %s to %s: %s\n", i, argv[2], unbinding ? unbind : bind,
                                strerror(-r));
                        return 1;
                }
                r = wait_for_signal(bus, &w, t0);
                if (r < 0) {
                        fprintf(stderr, "event %ld (%s): no PropertiesChanged with Driver \"%s\": %s\n", i,
                                unbinding ? "unbind" : "bind", w.expected, strerror(-r));
                        return 1;
                }
                /* The client's monitor thread wakes with the agent's; wait for it to have noted the event. */
                while (atomic_load(&clock.count) < (uint64_t) i + 1) {
                        if (bench_now_ns() - t0 > TIMEOUT_NS) {
                                fprintf(stderr, "event %ld: this client's udev monitor did not see it\n", i);
                                return 1;
                        }
                        usleep(50);
                }
                latency[i] = w.seen_ns - t0;
                write_time[i] = t1 - t0;
                agent_time[i] = w.seen_realtime_ns - atomic_load(&clock.last_ns);
        }
        printf("%ld uevents (unbind/bind of %s from %s), each until its PropertiesChanged(Driver) arrived\n", count,
               argv[2], argv[3]);
        printf("  uevent -> signal  p50 %7.3f ms   p99 %7.3f ms   max %7.3f ms   (target p99 <= 5 ms)\n",
               bench_percentile(agent_time, (size_t) count, 50) / 1e6, bench_percentile(agent_time, (size_t) count, 99) / 1e6,
               bench_percentile(agent_time, (size_t) count, 100) / 1e6);
        printf("  write -> signal   p50 %7.3f ms   p99 %7.3f ms   max %7.3f ms   (with the simulated kernel)\n",
               bench_percentile(latency, (size_t) count, 50) / 1e6, bench_percentile(latency, (size_t) count, 99) / 1e6,
               bench_percentile(latency, (size_t) count, 100) / 1e6);
        printf("  of which the simulated kernel's write()  p50 %7.3f ms   p99 %7.3f ms\n",
               bench_percentile(write_time, (size_t) count, 50) / 1e6,
               bench_percentile(write_time, (size_t) count, 99) / 1e6);
        if (agent_pid > 0)
                printf("  gpupassd CPU per event %.1f us\n",
                       (bench_process_cpu_seconds(agent_pid) - cpu) * 1e6 / (double) count);
        free(latency);
        free(write_time);
        free(agent_time);
        free(encoded);
        sd_bus_unref(bus);
        return 0;
}
