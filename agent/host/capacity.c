/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capacity.h"
#include "fileio.h"
#include "macro.h"

#define SYSFS_CPU_ONLINE "/sys/devices/system/cpu/online"
#define SYSFS_MEMORY "/sys/devices/system/memory"

int cpu_list_count(const char *list, uint32_t *ret) {
        const char *p = list;
        uint64_t n = 0;

        if (!*p)
                return -EINVAL;
        for (;;) {
                char *end;
                unsigned long a, b;

                if (*p < '0' || *p > '9')
                        return -EINVAL;
                a = strtoul(p, &end, 10);
                b = a;
                if (*end == '-') {
                        p = end + 1;
                        if (*p < '0' || *p > '9')
                                return -EINVAL;
                        b = strtoul(p, &end, 10);
                        if (b < a)
                                return -EINVAL;
                }
                n += b - a + 1;
                if (n > UINT32_MAX)
                        return -ERANGE;
                if (*end == '\0' || *end == '\n')
                        break;
                if (*end != ',')
                        return -EINVAL;
                p = end + 1;
        }
        *ret = (uint32_t) n;
        return 0;
}

int capacity_cpus(uint32_t *ret) {
        _cleanup_free_ char *line = NULL;
        int r;

        r = read_one_line_file(SYSFS_CPU_ONLINE, &line);
        if (r < 0)
                return r;
        return cpu_list_count(line, ret);
}

int capacity_memory_mib(uint64_t *ret) {
        _cleanup_free_ char *size = NULL;
        unsigned long long block;
        uint64_t online = 0;
        struct dirent *de;
        char *end;
        DIR *dir;
        int r;

        r = read_one_line_file(SYSFS_MEMORY "/block_size_bytes", &size);
        if (r < 0)
                return r;
        errno = 0;
        block = strtoull(size, &end, 16); /* hexadecimal without 0x, as the kernel prints it */
        if (errno != 0 || end == size || block == 0)
                return -EINVAL;
        dir = opendir(SYSFS_MEMORY);
        if (!dir)
                return -errno;
        while ((de = readdir(dir))) {
                _cleanup_free_ char *path = NULL, *state = NULL;

                if (strncmp(de->d_name, "memory", 6) != 0 || de->d_name[6] < '0' || de->d_name[6] > '9')
                        continue;
                if (asprintf(&path, SYSFS_MEMORY "/%s/online", de->d_name) < 0) {
                        closedir(dir);
                        return -ENOMEM;
                }
                if (read_one_line_file(path, &state) >= 0 && strcmp(state, "1") == 0)
                        online++;
        }
        closedir(dir);
        *ret = online * block / (1024 * 1024);
        return 0;
}
