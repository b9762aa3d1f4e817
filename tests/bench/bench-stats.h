/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once
/* Shared by the bus benchmarks: a monotonic clock in nanoseconds and percentiles of a sample set. */
#include <stdint.h>
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
