/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once
/* Shared by the bus benchmarks: a monotonic clock in nanoseconds and percentiles of a sample set. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>
#include <stdlib.h>
#include <time.h>

static inline uint64_t bench_now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

static inline uint64_t bench_realtime_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

static inline int bench_cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

/* Sorts the samples in place; p in [0,100]: the nearest-rank percentile. */
static inline uint64_t bench_percentile(uint64_t *samples, size_t n, double p) {
        size_t rank;

        if (n == 0)
                return 0;
        qsort(samples, n, sizeof(uint64_t), bench_cmp_u64);
        rank = (size_t) (p / 100.0 * (double) n + 0.999999);
        if (rank < 1)
                rank = 1;
        if (rank > n)
                rank = n;
        return samples[rank - 1];
}

/* All threads; the load-independent figure of a noisy machine is CPU per operation. */
/* CPU time (user + system) a process has used so far, in seconds, from /proc/PID/stat. */
static inline double bench_process_cpu_seconds(pid_t pid) {
        char path[64], buf[1024], *p;
        unsigned long utime = 0, stime = 0;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
        f = fopen(path, "re");
        if (!f)
                return -1;
        if (!fgets(buf, sizeof(buf), f))
                buf[0] = 0;
        fclose(f);
        p = strrchr(buf, ')'); /* the command name may hold spaces */
        if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
                return -1;
        return (double) (utime + stime) / (double) sysconf(_SC_CLK_TCK);
}

