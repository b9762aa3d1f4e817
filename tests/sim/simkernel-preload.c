/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libgpupass-simkernel.so: preloaded (before libumockdev-preload) into every process of a simulated host.
 *
 * 1. It makes a write to one of the sysfs control files of the testbed behave like the kernel's: the write
 *    is handed to gpupass-simhost's kernel emulator over a unix socket (a fresh connection per write, so
 *    any thread may write) and returns only after the emulator has applied it (links moved, attributes
 *    rewritten, uevents sent), with the kernel's return value or errno. Everything else goes on to the
 *    next write() (umockdev's, then libc's). write(), pwrite() and writev() are covered; stdio is not:
 *    glibc's stdio calls its internal write, which no preload can see.
 *
 * 2. It gives every uevent monitor its own socket. umockdev's preload turns a NETLINK_KOBJECT_UEVENT socket
 *    into a unix socket bound at $UMOCKDEV_DIR/event<fd number>, unlinking whatever was there first; two
 *    processes whose monitors have the same fd number (gpupassd and a test, both at fd 5, is the common
 *    case) steal each other's socket and the first one silently stops receiving uevents. We bind such
 *    sockets at $UMOCKDEV_DIR/event<pid>.<fd> instead, which umockdev's sender still finds (it globs
 *    "event[0-9]*"), and leave the rest (recvmsg() faking a netlink sender) to umockdev.
 *
 * 3. Module loading. The host's modules directory is the testbed's: open(), fopen() and stat() of a path
 *    under /lib/modules/ (where libkmod looks: modules.dep.bin, the .ko files) go to $UMOCKDEV_DIR/lib/modules/.
 *    finit_module() (libkmod calls it through syscall()) and init_module() of such a file are handed to the
 *    emulator, which registers the driver the simulated module names, as the module's init would.
 */

/* meson builds with 64-bit file offsets, which renames pwrite() to pwrite64() in the headers: we define both
 * symbols ourselves. */
#undef _FILE_OFFSET_BITS

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

/* kernfs hands a sysfs store function at most one page; the rest of a longer write is not consumed. */
#define SYSFS_PAGE_SIZE 4096

static const char * const control_files[] = {
        "driver_override", "unbind", "bind", "drivers_probe", "remove", "rescan", "new_id", "remove_id", "reset",
};

/* The testbed-relative path of fd ("/sys/...") into out if it lies in the testbed under `prefix`, else 0.
 * Only while the emulator runs (GPUPASS_SIMKERNEL_SOCKET). */
static int testbed_path(int fd, const char *prefix, char *out, size_t size) {
        const char *root = getenv("UMOCKDEV_DIR");
        char proc[64], target[4096];
        size_t root_len;
        long n;

        if (!root || !getenv("GPUPASS_SIMKERNEL_SOCKET"))
                return 0;
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
        /* A raw syscall, which neither umockdev's readlink() wrapper nor errno bookkeeping gets in the way of. */
        n = syscall(SYS_readlink, proc, target, sizeof(target) - 1);
        if (n <= 0)
                return 0;
        target[n] = '\0';
        root_len = strlen(root);
        if (strncmp(target, root, root_len) != 0 || strncmp(target + root_len, prefix, strlen(prefix)) != 0)
                return 0;
        snprintf(out, size, "%s", target + root_len);
        return 1;
}

/* The testbed-relative path ("/sys/...") of fd if it is a control file, else 0. */
static int control_path(int fd, char *out, size_t size) {
        const char *base;

        if (!testbed_path(fd, "/sys/", out, size))
                return 0;
        base = strrchr(out, '/') + 1;
        for (size_t i = 0; i < sizeof(control_files) / sizeof(control_files[0]); i++)
                if (strcmp(base, control_files[i]) == 0)
                        return 1;
        return 0;
}

/* Sends "path\0data" and waits for the emulator's int64 answer: bytes consumed or -errno. */
static ssize_t forward(const char *path, const void *buf, size_t count) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char message[4096 + 1 + SYSFS_PAGE_SIZE];
        size_t path_len = strlen(path) + 1;
        int64_t answer;
        int fd, saved;

        if (count > SYSFS_PAGE_SIZE)
                count = SYSFS_PAGE_SIZE;
        memcpy(message, path, path_len);
        memcpy(message + path_len, buf, count);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", getenv("GPUPASS_SIMKERNEL_SOCKET"));
        /* Raw syscalls: umockdev wraps socket(), connect() and send(), and must not take this for a uevent
         * socket or record it. */
        fd = (int) syscall(SYS_socket, AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -1;
        if (syscall(SYS_connect, fd, &sa, sizeof(sa)) < 0 ||
            syscall(SYS_sendto, fd, message, path_len + count, MSG_NOSIGNAL, NULL, 0) < 0 ||
            syscall(SYS_recvfrom, fd, &answer, sizeof(answer), 0, NULL, NULL) != sizeof(answer)) {
                /* The simulated kernel is gone (gpupass-simhost exited): the closest a real sysfs comes. */
                syscall(SYS_close, fd);
                errno = EIO;
                return -1;
        }
        saved = errno;
        syscall(SYS_close, fd);
        errno = saved;
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

/* sysfs ignores the offset of a write to an attribute: the store function sees the buffer alone. */
EXPORT ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset) {
        static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
        char path[4096];

        if (count > 0 && control_path(fd, path, sizeof(path)))
                return forward(path, buf, count);
        if (!real_pwrite)
                real_pwrite = (ssize_t (*)(int, const void *, size_t, off_t)) dlsym(RTLD_NEXT, "pwrite");
        return real_pwrite(fd, buf, count, offset);
}

EXPORT ssize_t pwrite64(int fd, const void *buf, size_t count, off64_t offset) {
        static ssize_t (*real_pwrite64)(int, const void *, size_t, off64_t);
        char path[4096];

        if (count > 0 && control_path(fd, path, sizeof(path)))
                return forward(path, buf, count);
        if (!real_pwrite64)
                real_pwrite64 = (ssize_t (*)(int, const void *, size_t, off64_t)) dlsym(RTLD_NEXT, "pwrite64");
        return real_pwrite64(fd, buf, count, offset);
}

/* The kernel gathers the vectors into one buffer (up to a page) and calls the store function once. */
EXPORT ssize_t writev(int fd, const struct iovec *iov, int iovcnt) {
        static ssize_t (*real_writev)(int, const struct iovec *, int);
        char path[4096], data[SYSFS_PAGE_SIZE];
        size_t len = 0;

        if (iovcnt > 0 && control_path(fd, path, sizeof(path))) {
                for (int i = 0; i < iovcnt && len < sizeof(data); i++) {
                        size_t n = iov[i].iov_len < sizeof(data) - len ? iov[i].iov_len : sizeof(data) - len;

                        memcpy(data + len, iov[i].iov_base, n);
                        len += n;
                }
                if (len > 0)
                        return forward(path, data, len);
        }
        if (!real_writev)
                real_writev = (ssize_t (*)(int, const struct iovec *, int)) dlsym(RTLD_NEXT, "writev");
        return real_writev(fd, iov, iovcnt);
}

/* The VFIO nodes (/dev/vfio/..., /dev/iommu) do not exist in the testbed. umockdev 0.17's open() connects
 * each /dev path to its ioctl socket before the real open and keeps that connection when the open fails,
 * so a daemon that tries them at every reset leaks a socket each time until umockdev's fd map overflows
 * and aborts the process. Answer ENOENT for them before umockdev sees them, as a host without the nodes. */
static bool missing_vfio_node(const char *path) {
        const char *root = getenv("UMOCKDEV_DIR");
        char real[4096];
        struct stat st;

        if (!root || !path || !(strncmp(path, "/dev/vfio/", 10) == 0 || strcmp(path, "/dev/iommu") == 0))
                return false;
        if (snprintf(real, sizeof(real), "%s%s", root, path) >= (int) sizeof(real))
                return false;
        return syscall(SYS_newfstatat, AT_FDCWD, real, &st, 0) < 0;
}

/* The testbed's copy of a path under /lib/modules/ (libkmod's default directory), else path itself. */
static const char *modules_path(const char *path, char *buf, size_t size) {
        const char *root = getenv("UMOCKDEV_DIR");

        if (!root || !path || strncmp(path, "/lib/modules/", 13) != 0)
                return path;
        if (snprintf(buf, size, "%s%s", root, path) >= (int) size)
                return path;
        return buf;
}

/* open() and open64(): the VFIO nodes are missing, everything else goes to the next library (umockdev). */
typedef int (*open_fn)(const char *, int, ...);

static int open_next(open_fn *next, const char *symbol, const char *path, int flags, mode_t mode) {
        char moved[4096];

        if (missing_vfio_node(path)) {
                errno = ENOENT;
                return -1;
        }
        if (!*next)
                *next = (open_fn) dlsym(RTLD_NEXT, symbol);
        return (*next)(modules_path(path, moved, sizeof(moved)), flags, mode);
}

/* The mode argument exists only with O_CREAT or O_TMPFILE. */
#define OPEN_MODE(flags, mode)                                  \
        do {                                                    \
                va_list ap;                                     \
                if ((flags) & (O_CREAT | O_TMPFILE)) {          \
                        va_start(ap, flags);                    \
                        mode = va_arg(ap, mode_t);              \
                        va_end(ap);                             \
                }                                               \
        } while (0)

EXPORT int open(const char *path, int flags, ...) {
        static open_fn next_open;
        mode_t mode = 0;

        OPEN_MODE(flags, mode);
        return open_next(&next_open, "open", path, flags, mode);
}

EXPORT int open64(const char *path, int flags, ...) {
        static open_fn next_open64;
        mode_t mode = 0;

        OPEN_MODE(flags, mode);
        return open_next(&next_open64, "open64", path, flags, mode);
}

EXPORT int bind(int fd, const struct sockaddr *addr, socklen_t addrlen) {
        static int (*next_bind)(int, const struct sockaddr *, socklen_t);
        const char *root = getenv("UMOCKDEV_DIR");
        int domain = 0;
        socklen_t domain_len = sizeof(domain);

        /* A uevent socket that umockdev's socket() has already made a unix socket: a netlink address on an
         * AF_UNIX socket is nothing else. */
        if (root && addr && addrlen >= sizeof(sa_family_t) && addr->sa_family == AF_NETLINK &&
            getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &domain_len) == 0 && domain == AF_UNIX) {
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                int n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/event%d.%d", root, (int) getpid(), fd);

                if (n > 0 && (size_t) n < sizeof(sa.sun_path)) {
                        /* Left by an earlier socket of this pid with the same fd (closed, or lost in exec). */
                        (void) unlink(sa.sun_path);
                        return (int) syscall(SYS_bind, fd, &sa, sizeof(sa));
                }
        }
        if (!next_bind)
                next_bind = (int (*)(int, const struct sockaddr *, socklen_t)) dlsym(RTLD_NEXT, "bind");
        return next_bind(fd, addr, addrlen);
}

typedef FILE *(*fopen_fn)(const char *, const char *);

static FILE *fopen_next(fopen_fn *next, const char *symbol, const char *path, const char *mode) {
        char moved[4096];

        if (!*next)
                *next = (fopen_fn) dlsym(RTLD_NEXT, symbol);
        return (*next)(modules_path(path, moved, sizeof(moved)), mode);
}

EXPORT FILE *fopen(const char *path, const char *mode) {
        static fopen_fn next_fopen;

        return fopen_next(&next_fopen, "fopen", path, mode);
}

EXPORT FILE *fopen64(const char *path, const char *mode) {
        static fopen_fn next_fopen64;

        return fopen_next(&next_fopen64, "fopen64", path, mode);
}

EXPORT int stat(const char *path, struct stat *st) {
        static int (*next_stat)(const char *, struct stat *);
        char moved[4096];

        if (!next_stat)
                next_stat = (int (*)(const char *, struct stat *)) dlsym(RTLD_NEXT, "stat");
        return next_stat(modules_path(path, moved, sizeof(moved)), st);
}

/* The testbed-relative path ("/lib/modules/...") of a module file opened as fd, else 0. */
static int module_file(int fd, char *out, size_t size) {
        return testbed_path(fd, "/lib/modules/", out, size);
}

/* finit_module(fd, params, flags) of a testbed module: the emulator "runs its init". 0 or -1 and errno. */
static long load_module(const char *module_path) {
        ssize_t n = forward("finit_module", module_path, strlen(module_path));

        return n < 0 ? -1 : 0;
}

/* glibc has no finit_module() wrapper: libkmod calls syscall(__NR_finit_module, fd, params, flags). The
 * six register arguments are passed on unchanged for every other call (the shim's own raw calls too). */
EXPORT long syscall(long number, ...) {
        static long (*next_syscall)(long, ...);
        char path[4096];
        long a[6];
        va_list ap;

        va_start(ap, number);
        for (int i = 0; i < 6; i++)
                a[i] = va_arg(ap, long);
        va_end(ap);
        if (number == SYS_finit_module && module_file((int) a[0], path, sizeof(path)))
                return load_module(path);
        if (!next_syscall)
                next_syscall = (long (*)(long, ...)) dlsym(RTLD_NEXT, "syscall");
        return next_syscall(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}

/* init_module(image, len, params): libkmod's fallback for compressed modules. The simulated modules are
 * never compressed, so an image is not a testbed module: it would load into the real kernel. Refuse. */
EXPORT int init_module(void *image, unsigned long len, const char *params);
EXPORT int init_module(void *image, unsigned long len, const char *params) {
        if (getenv("GPUPASS_SIMKERNEL_SOCKET")) {
                errno = ENOSYS;
                return -1;
        }
        return (int) syscall(SYS_init_module, image, len, params);
}
