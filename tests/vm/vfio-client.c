/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A stand-in for a VMM, for tests/vm. Two ways to get at a claimed GPU without privileges:
 *   vfio-client openvfio ADDRESS VM   as root (the launcher): OpenVfio(VM) on the agent, then drop to
 *                                     uid/gid 65534 and use the received descriptors;
 *   vfio-client open GROUP ADDRESS    already unprivileged (AllowUser): open /dev/vfio/GROUP itself.
 * Either way it attaches the group to its own container, gets the device and reads the vendor and device
 * ID through the VFIO config region, printing "ids vvvv:dddd uid N".
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/vfio.h>
#include <systemd/sd-bus.h>

#include "vfio.h"

static int device_from_group(int group_fd, const char *address) {
        struct vfio_group_status status = { .argsz = sizeof(status) };
        int container, device;

        if (ioctl(group_fd, VFIO_GROUP_GET_STATUS, &status) < 0) {
                perror("VFIO_GROUP_GET_STATUS");
                return -1;
        }
        if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE)) {
                fprintf(stderr, "group not viable\n");
                return -1;
        }
        container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
        if (container < 0 || ioctl(group_fd, VFIO_GROUP_SET_CONTAINER, &container) < 0 ||
            ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) < 0) {
                perror("container");
                return -1;
        }
        device = ioctl(group_fd, VFIO_GROUP_GET_DEVICE_FD, address);
        if (device < 0)
                perror("VFIO_GROUP_GET_DEVICE_FD");
        return device;
}

static int drop_privileges(void) {
        if (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0) {
                perror("drop privileges");
                return -1;
        }
        return 0;
}

static int report(int device) {
        unsigned vendor, dev;
        int r = vfio_device_read_ids(device, &vendor, &dev);

        if (r < 0) {
                fprintf(stderr, "reading config space: %s\n", strerror(-r));
                return 1;
        }
        printf("ids %04x:%04x uid %u\n", vendor, dev, (unsigned) getuid());
        return 0;
}

int main(int argc, char *argv[]) {
        if (argc == 4 && strcmp(argv[1], "openvfio") == 0) {
                sd_bus *bus = NULL;
                sd_bus_message *reply = NULL;
                sd_bus_error error = SD_BUS_ERROR_NULL;
                char *path = NULL;
                int fd, device, r;

                if (sd_bus_open_system(&bus) < 0 || sd_bus_path_encode("/org/gpupass/agent1/gpu", argv[2], &path) < 0)
                        return 1;
                r = sd_bus_call_method(bus, "org.gpupass.agent1", path, "org.gpupass.agent1.Gpu", "OpenVfio", &error,
                                       &reply, "s", argv[3]);
                if (r < 0) {
                        fprintf(stderr, "OpenVfio: %s (%s)\n", error.message, error.name);
                        return 1;
                }
                r = sd_bus_message_enter_container(reply, 'a', "h");
                if (r >= 0)
                        r = sd_bus_message_read(reply, "h", &fd);
                if (r <= 0) {
                        fprintf(stderr, "no descriptor in the reply\n");
                        return 1;
                }
                fd = fcntl(fd, F_DUPFD_CLOEXEC, 3); /* the message owns its copy */
                printf("received %s descriptor\n", fd >= 0 ? "a" : "no");
                sd_bus_message_unref(reply);
                sd_bus_flush_close_unref(bus);
                free(path);
                if (drop_privileges() < 0)
                        return 1;
                device = device_from_group(fd, argv[2]);
                return device < 0 ? 1 : report(device);
        }
        if (argc == 4 && strcmp(argv[1], "open") == 0) {
                char node[64];
                int group, device;

                snprintf(node, sizeof(node), "/dev/vfio/%s", argv[2]);
                group = open(node, O_RDWR | O_CLOEXEC);
                if (group < 0) {
                        fprintf(stderr, "open %s: %m\n", node);
                        return 1;
                }
                device = device_from_group(group, argv[3]);
                return device < 0 ? 1 : report(device);
        }
        fprintf(stderr, "Usage: %s openvfio ADDRESS VM | open GROUP ADDRESS\n", argv[0]);
        return 2;
}
