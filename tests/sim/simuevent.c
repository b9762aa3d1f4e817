/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Uevents to the libudev monitors of the simulated processes.
 *
 * umockdev's preload turns a process's NETLINK_KOBJECT_UEVENT socket into a unix datagram socket bound in the
 * testbed directory (our shim names it event<pid>.<fd>), and fakes a netlink kernel sender on recvmsg().
 * umockdev_testbed_uevent() would send to those sockets, but it aborts the whole process when one of them
 * is full (EAGAIN): a unix datagram socket holds only net.unix.max_dgram_qlen (10) messages, so one
 * monitor that does not read for 11 events would kill the simulated host. It also builds the message
 * through libudev in the sending process, which would have to run under the preload itself. So we send
 * the same message ourselves, in the format of systemd's device_monitor_send_device(): the "libudev"
 * header with the subsystem hash its socket filter checks, then ACTION, DEVPATH, SUBSYSTEM, the device's
 * uevent attribute (DRIVER, PCI_CLASS, PCI_ID, PCI_SUBSYS_ID, PCI_SLOT_NAME, MODALIAS) and SEQNUM, as
 * the kernel orders them.
 *
 * A full socket gets a moment to drain (the kernel's netlink buffers hold far more than 10 events); after
 * that its event is dropped with a warning, as netlink drops for an overrun receiver (ENOBUFS).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <glob.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "simhost.h"

#define UDEV_MONITOR_MAGIC 0xfeedcafe
#define FULL_SOCKET_PATIENCE_MS 1000

struct monitor_netlink_header {
        char prefix[8];
        uint32_t magic;
        uint32_t header_size;
        uint32_t properties_off;
        uint32_t properties_len;
        uint32_t filter_subsystem_hash;
        uint32_t filter_devtype_hash;
        uint32_t filter_tag_bloom_hi;
        uint32_t filter_tag_bloom_lo;
};

/* MurmurHash2 with seed 0, systemd's string_hash32(): what a monitor's socket filter compares. */
static uint32_t string_hash32(const char *str) {
        const uint32_t m = 0x5bd1e995;
        size_t len = strlen(str);
        const unsigned char *data = (const unsigned char *) str;
        uint32_t h = (uint32_t) len;

        for (; len >= 4; data += 4, len -= 4) {
                uint32_t k;

                memcpy(&k, data, 4);
                k *= m;
                k ^= k >> 24;
                k *= m;
                h *= m;
                h ^= k;
        }
        switch (len) {
        case 3:
                h ^= (uint32_t) data[2] << 16;
                /* fall through */
        case 2:
                h ^= (uint32_t) data[1] << 8;
                /* fall through */
        case 1:
                h ^= data[0];
                h *= m;
        }
        h ^= h >> 13;
        h *= m;
        h ^= h >> 15;
        return h;
}

static void send_one(const char *socket_path, const struct iovec *iov) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct msghdr msg = { .msg_iov = (struct iovec *) iov, .msg_iovlen = 2 };
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

        if (fd < 0)
                g_error("cannot create a uevent socket: %m");
        g_strlcpy(sa.sun_path, socket_path, sizeof(sa.sun_path));
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                /* The monitor was closed (or its process ended): nobody listens there any more. */
                if (errno == ECONNREFUSED || errno == ENOENT)
                        (void) unlink(socket_path);
                else
                        fprintf(stderr, "gpupass-simhost: cannot reach uevent socket %s: %m\n", socket_path);
                close(fd);
                return;
        }
        for (int waited = 0;; waited += 100) {
                struct pollfd p = { .fd = fd, .events = POLLOUT };

                if (sendmsg(fd, &msg, MSG_NOSIGNAL) >= 0)
                        break;
                if (errno != EAGAIN || waited >= FULL_SOCKET_PATIENCE_MS) {
                        fprintf(stderr, "gpupass-simhost: uevent to %s dropped (%m): its monitor does not read\n",
                                socket_path);
                        break;
                }
                (void) poll(&p, 1, 100);
        }
        close(fd);
}

void sim_uevent(struct simhost *h, struct simdev *d, const char *action) {
        static uint64_t seqnum;
        g_autofree char *uevent_path = sim_path(h, "%s/uevent", d->devpath), *attribute = NULL;
        g_autofree char *pattern = g_build_filename(h->root, "event[0-9]*", NULL);
        g_autoptr(GString) properties = g_string_new(NULL);
        struct monitor_netlink_header header = {
                .prefix = "libudev",
                .magic = htonl(UDEV_MONITOR_MAGIC),
                .header_size = sizeof(header),
                .properties_off = sizeof(header),
                .filter_subsystem_hash = htonl(string_hash32("pci")),
        };
        struct iovec iov[2];
        glob_t gl;

        /* NUL-separated KEY=value strings. */
        g_string_append_printf(properties, "ACTION=%s%cDEVPATH=%s%cSUBSYSTEM=pci%c", action, 0,
                               d->devpath + strlen("/sys"), 0, 0);
        if (g_file_get_contents(uevent_path, &attribute, NULL, NULL)) {
                g_auto(GStrv) lines = g_strsplit(attribute, "\n", -1);

                for (char **l = lines; *l; l++)
                        if (**l)
                                g_string_append_printf(properties, "%s%c", *l, 0);
        }
        g_string_append_printf(properties, "SEQNUM=%" G_GUINT64_FORMAT "%c", ++seqnum, 0);
        header.properties_len = (uint32_t) properties->len;
        iov[0] = (struct iovec) { .iov_base = &header, .iov_len = sizeof(header) };
        iov[1] = (struct iovec) { .iov_base = properties->str, .iov_len = properties->len };

        if (glob(pattern, GLOB_NOSORT, NULL, &gl) != 0)
                return; /* no monitor anywhere */
        for (size_t i = 0; i < gl.gl_pathc; i++)
                send_one(gl.gl_pathv[i], iov);
        globfree(&gl);
}
