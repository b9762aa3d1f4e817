/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <strings.h>

#include "ctl.h"

/*
 * Memory sizes as an operator types them: a number of MiB, or with a binary suffix M/MiB, G/GiB,
 * T/TiB (case-insensitive). Decimal units (MB, GB) are refused rather than silently read as binary.
 */
int parse_size_mib(const char *s, uint64_t *ret_mib) {
        static const struct {
                const char *suffix;
                unsigned shift;
        } units[] = {
                { "", 0 }, { "m", 0 }, { "mib", 0 }, { "g", 10 }, { "gib", 10 }, { "t", 20 }, { "tib", 20 },
        };
        unsigned long long v;
        char *end;

        if (!s || !isdigit((unsigned char) s[0]))
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno != 0 || v == 0)
                return -EINVAL;
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
                if (strcasecmp(end, units[i].suffix) != 0)
                        continue;
                if (v > (UINT64_MAX >> units[i].shift))
                        return -EINVAL;
                *ret_mib = (uint64_t) v << units[i].shift;
                return 0;
        }
        return -EINVAL;
}

int parse_vcpus(const char *s, uint32_t *ret_vcpus) {
        unsigned long v;
        char *end;

        if (!s || !isdigit((unsigned char) s[0]))
                return -EINVAL;
        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno != 0 || *end != '\0' || v == 0 || v > UINT32_MAX)
                return -EINVAL;
        *ret_vcpus = (uint32_t) v;
        return 0;
}
