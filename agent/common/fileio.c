/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "macro.h"

int read_one_line_file(const char *path, char **ret) {
        _cleanup_close_ int fd = -EBADF;
        char buf[4096];
        ssize_t n;
        char *nl, *s;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        n = read(fd, buf, sizeof(buf) - 1);
        if (n < 0)
                return negative_errno();
        buf[n] = '\0';
        nl = strchr(buf, '\n');
        if (nl)
                *nl = '\0';
        s = strdup(buf);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int write_string_file(const char *path, const char *value) {
        _cleanup_close_ int fd = -EBADF;
        size_t len = strlen(value);
        ssize_t n;

        fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        n = write(fd, value, len);
        if (n < 0)
                return negative_errno();
        if ((size_t) n != len)
                return -EIO;
        return 0;
}

int read_link_basename(const char *path, char **ret) {
        char target[PATH_MAX];
        const char *base;
        ssize_t n;
        char *s;

        n = readlink(path, target, sizeof(target) - 1);
        if (n < 0)
                return negative_errno();
        target[n] = '\0';
        base = strrchr(target, '/');
        base = base ? base + 1 : target;
        if (!*base)
                return -EINVAL;
        s = strdup(base);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int parse_unsigned(const char *s, unsigned long long max, unsigned long long *ret) {
        unsigned long long v;
        char *end;

        if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 0);
        if (errno > 0)
                return -errno;
        if (*end || v > max)
                return -ERANGE;
        *ret = v;
        return 0;
}

int parse_signed_int(const char *s, int *ret) {
        long v;
        char *end;

        if (!s || !*s)
                return -EINVAL;
        errno = 0;
        v = strtol(s, &end, 10);
        if (errno > 0)
                return -errno;
        if (*end || v < INT_MIN || v > INT_MAX)
                return -ERANGE;
        *ret = (int) v;
        return 0;
}
