/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/vfio.h>

#include "macro.h"
#include "strv.h"
#include "sysfs-pci.h"
#include "vfio.h"

/* The iommufd binding of device cdevs is newer than the 6.1 headers this builds against; the ABI is fixed
 * (include/uapi/linux/vfio.h since 6.6). */
#ifndef VFIO_DEVICE_BIND_IOMMUFD
struct vfio_device_bind_iommufd {
        uint32_t argsz;
        uint32_t flags;
        int32_t iommufd;
        uint32_t out_devid;
};
#define VFIO_DEVICE_BIND_IOMMUFD _IO(VFIO_TYPE, VFIO_BASE + 18)
#endif

#define VFIO_CONTAINER "/dev/vfio/vfio"
#define IOMMUFD_DEVICE "/dev/iommu"

int vfio_group_path(int group, char **ret) {
        return asprintf(ret, "/dev/vfio/%d", group) < 0 ? -ENOMEM : 0;
}

int vfio_device_cdev_path(const char *address, char **ret) {
        _cleanup_free_ char *dir_path = NULL;
        struct dirent *de;
        DIR *dir;
        int r = -ENOENT;

        /* vfio-pci registers vfio-dev/vfioX under the device (since 6.1); only kernels with device cdevs (6.6+,
         * CONFIG_VFIO_DEVICE_CDEV) also create the /dev/vfio/devices/vfioX node: check the node. */
        if (asprintf(&dir_path, SYSFS_PCI_DEVICES "/%s/vfio-dev", address) < 0)
                return -ENOMEM;
        dir = opendir(dir_path);
        if (!dir)
                return -ENOENT;
        while ((de = readdir(dir)))
                if (strncmp(de->d_name, "vfio", 4) == 0) {
                        _cleanup_free_ char *node = NULL;

                        if (asprintf(&node, "/dev/vfio/devices/%s", de->d_name) < 0) {
                                r = -ENOMEM;
                                break;
                        }
                        if (access(node, F_OK) < 0)
                                break;
                        *ret = TAKE_PTR(node);
                        r = 0;
                        break;
                }
        closedir(dir);
        return r;
}

int vfio_group_open_viable(int group, int *ret_fd) {
        struct vfio_group_status status = { .argsz = sizeof(status) };
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -EBADF;
        int r;

        r = vfio_group_path(group, &path);
        if (r < 0)
                return r;
        fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        if (ioctl(fd, VFIO_GROUP_GET_STATUS, &status) < 0)
                return negative_errno();
        /* Viable: every device in the group is bound to a vfio driver or to none. */
        if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE))
                return -EPERM;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

/* Legacy path: group -> container with the type1 IOMMU -> device. */
static int vfio_open_device_legacy(int group, const char *address, int *ret_container, int *ret_group,
                                   int *ret_device) {
        _cleanup_close_ int container = -EBADF, group_fd = -EBADF;
        int device, r;

        r = vfio_group_open_viable(group, &group_fd);
        if (r < 0)
                return r;
        container = open(VFIO_CONTAINER, O_RDWR | O_CLOEXEC);
        if (container < 0)
                return negative_errno();
        if (ioctl(container, VFIO_GET_API_VERSION) != VFIO_API_VERSION)
                return -EPROTO;
        if (ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) <= 0)
                return -EOPNOTSUPP;
        if (ioctl(group_fd, VFIO_GROUP_SET_CONTAINER, &container) < 0)
                return negative_errno();
        if (ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) < 0)
                return negative_errno();
        device = ioctl(group_fd, VFIO_GROUP_GET_DEVICE_FD, address);
        if (device < 0)
                return negative_errno();
        *ret_container = TAKE_FD(container);
        *ret_group = TAKE_FD(group_fd);
        *ret_device = device;
        return 0;
}

/* cdev path: the device node bound to a fresh iommufd. */
static int vfio_open_device_cdev(const char *address, int *ret_iommufd, int *ret_device) {
        struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind) };
        _cleanup_close_ int iommufd = -EBADF, device = -EBADF;
        _cleanup_free_ char *path = NULL;
        int r;

        r = vfio_device_cdev_path(address, &path);
        if (r < 0)
                return r;
        device = open(path, O_RDWR | O_CLOEXEC);
        if (device < 0)
                return negative_errno();
        iommufd = open(IOMMUFD_DEVICE, O_RDWR | O_CLOEXEC);
        if (iommufd < 0)
                return negative_errno();
        bind.iommufd = iommufd;
        if (ioctl(device, VFIO_DEVICE_BIND_IOMMUFD, &bind) < 0)
                return negative_errno();
        *ret_iommufd = TAKE_FD(iommufd);
        *ret_device = TAKE_FD(device);
        return 0;
}

int vfio_reset_device(int group, const char *address) {
        struct vfio_device_info info = { .argsz = sizeof(info) };
        _cleanup_close_ int container = -EBADF, group_fd = -EBADF, iommufd = -EBADF, device = -EBADF;
        int r;

        r = vfio_open_device_legacy(group, address, &container, &group_fd, &device);
        if (r == -ENOENT)
                r = vfio_open_device_cdev(address, &iommufd, &device);
        if (r < 0)
                return r;
        if (ioctl(device, VFIO_DEVICE_GET_INFO, &info) < 0)
                return negative_errno();
        if (!(info.flags & VFIO_DEVICE_FLAGS_RESET))
                return 0;
        if (ioctl(device, VFIO_DEVICE_RESET) < 0)
                return negative_errno();
        return 1;
}

int vfio_device_read_ids(int device_fd, unsigned *ret_vendor, unsigned *ret_device) {
        struct vfio_region_info region = { .argsz = sizeof(region), .index = VFIO_PCI_CONFIG_REGION_INDEX };
        uint8_t header[4];

        if (ioctl(device_fd, VFIO_DEVICE_GET_REGION_INFO, &region) < 0)
                return negative_errno();
        if (pread(device_fd, header, sizeof(header), (off_t) region.offset) != sizeof(header))
                return -EIO;
        *ret_vendor = (unsigned) (header[0] | header[1] << 8);
        *ret_device = (unsigned) (header[2] | header[3] << 8);
        return 0;
}

/* Descriptors being opened, closed unless handed out. */
struct fd_array {
        int *fds;
        size_t n;
};

static void fd_array_done(struct fd_array *a) {
        for (size_t i = 0; a->fds && i < a->n; i++)
                if (a->fds[i] >= 0)
                        close(a->fds[i]);
        free(a->fds);
}

static int fd_array_new(size_t n, struct fd_array *ret) {
        int *fds = calloc(n, sizeof(int));

        if (!fds)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                fds[i] = -EBADF;
        *ret = (struct fd_array) { .fds = fds, .n = n };
        return 0;
}

int vfio_open_for_vmm(int group, char * const *addresses, int **ret_fds, size_t *ret_n) {
        _cleanup_(fd_array_done) struct fd_array a = {};
        size_t n = strv_length(addresses);
        _cleanup_free_ char *first = NULL;
        int r;

        /* Kernels with device cdevs: one unbound cdev per device, the VMM binds them to its own iommufd. */
        if (n > 0 && vfio_device_cdev_path(addresses[0], &first) >= 0) {
                r = fd_array_new(n, &a);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < n; i++) {
                        _cleanup_free_ char *path = NULL;

                        r = vfio_device_cdev_path(addresses[i], &path);
                        if (r < 0)
                                return r;
                        a.fds[i] = open(path, O_RDWR | O_CLOEXEC);
                        if (a.fds[i] < 0)
                                return negative_errno();
                }
        } else {
                /* Otherwise the group: it carries every device of the group, companions included. */
                r = fd_array_new(1, &a);
                if (r < 0)
                        return r;
                r = vfio_group_open_viable(group, &a.fds[0]);
                if (r < 0)
                        return r;
        }
        *ret_n = a.n;
        *ret_fds = TAKE_PTR(a.fds);
        return 0;
}

static int chown_node(const char *path, uid_t uid) {
        if (chown(path, uid, uid == 0 ? 0 : (gid_t) -1) < 0)
                return negative_errno();
        if (chmod(path, 0600) < 0)
                return negative_errno();
        return 0;
}

int vfio_chown_nodes(int group, char * const *addresses, uid_t uid) {
        _cleanup_free_ char *path = NULL;
        int r;

        r = vfio_group_path(group, &path);
        if (r < 0)
                return r;
        r = chown_node(path, uid);
        if (r < 0)
                return r;
        for (size_t i = 0; addresses && addresses[i]; i++) {
                _cleanup_free_ char *cdev = NULL;

                if (vfio_device_cdev_path(addresses[i], &cdev) < 0)
                        continue;
                r = chown_node(cdev, uid);
                if (r < 0)
                        return r;
        }
        return 0;
}
