/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libgpupass-simkernel.so: preloaded (before libumockdev-preload) into every process of a simulated host.
 * It makes a write(2) to one of the sysfs control files of the testbed behave like the kernel's: the
 * write is handed to gpupass-simhost's kernel emulator over a unix socket and returns only after the
 * emulator has applied it (links moved, attributes rewritten, uevents sent), with the kernel's return
 * value or errno. Everything else goes to the real write(2).
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

static const char * const control_files[] = {
        "driver_override", "unbind", "bind", "drivers_probe", "remove", "rescan", "new_id", "remove_id", "reset",
};

/* The testbed-relative path ("/sys/...") of fd if it is a control file, else 0. */
static int control_path(int fd, char *out, size_t size) {
        const char *root = getenv("UMOCKDEV_DIR");
        char proc[64], target[4096];
        const char *base;
        long n;
        size_t root_len;

        if (!root || !getenv("GPUPASS_SIMKERNEL_SOCKET"))
                return 0;
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
        /* A raw syscall: umockdev's preload wraps readlink(). */
        n = syscall(SYS_readlink, proc, target, sizeof(target) - 1);
        if (n <= 0)
                return 0;
        target[n] = '\0';
        root_len = strlen(root);
        if (strncmp(target, root, root_len) != 0 || strncmp(target + root_len, "/sys/", 5) != 0)
                return 0;
        base = strrchr(target, '/') + 1;
        for (size_t i = 0; i < sizeof(control_files) / sizeof(control_files[0]); i++)
                if (strcmp(base, control_files[i]) == 0) {
                        snprintf(out, size, "%s", target + root_len);
                        return 1;
                }
        return 0;
}

/* Sends "path\0data" and waits for the emulator's int64 answer: bytes written or -errno. */
static ssize_t forward(const char *path, const void *buf, size_t count) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        size_t path_len = strlen(path) + 1;
        char *message;
        int64_t answer;
        int fd;

        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", getenv("GPUPASS_SIMKERNEL_SOCKET"));
        fd = (int) syscall(SYS_socket, AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -1;
        if (syscall(SYS_connect, fd, &sa, sizeof(sa)) < 0) {
                close(fd);
                errno = EIO;
                return -1;
        }
        message = malloc(path_len + count);
        if (!message) {
                close(fd);
                errno = ENOMEM;
                return -1;
        }
        memcpy(message, path, path_len);
        memcpy(message + path_len, buf, count);
        if (syscall(SYS_sendto, fd, message, path_len + count, 0, NULL, 0) < 0 ||
            syscall(SYS_recvfrom, fd, &answer, sizeof(answer), 0, NULL, NULL) != sizeof(answer)) {
                free(message);
                close(fd);
                errno = EIO;
                return -1;
        }
        free(message);
        close(fd);
        if (answer < 0) {
                errno = (int) -answer;
                return -1;
        }
        return (ssize_t) answer;
}

EXPORT ssize_t write(int fd, const void *buf, size_t count) {
        static ssize_t (*real_write)(int, const void *, size_t);
        char path[4096];

        /* A zero-length write never reaches a sysfs store function. */
        if (count > 0 && control_path(fd, path, sizeof(path)))
                return forward(path, buf, count);
        if (!real_write)
                real_write = (ssize_t (*)(int, const void *, size_t)) dlsym(RTLD_NEXT, "write");
        return real_write(fd, buf, count);
}
