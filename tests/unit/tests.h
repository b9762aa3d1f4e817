/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Minimal assertions: a failing check prints where and what, and fails the test binary. */
#define ASSERT_TRUE(expr)                                                                       \
        do {                                                                                    \
                if (!(expr)) {                                                                  \
                        fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__,    \
                                #expr);                                                         \
                        abort();                                                                \
                }                                                                               \
        } while (0)

#define ASSERT_STREQ(a, b)                                                                      \
        do {                                                                                    \
                const char *_a_ = (a), *_b_ = (b);                                              \
                if (!_a_ || !_b_ || strcmp(_a_, _b_) != 0) {                                    \
                        fprintf(stderr, "%s:%d: \"%s\" != \"%s\" (%s vs %s)\n", __FILE__,       \
                                __LINE__, _a_ ?: "(null)", _b_ ?: "(null)", #a, #b);            \
                        abort();                                                                \
                }                                                                               \
        } while (0)

#define ASSERT_EQ(a, b)                                                                         \
        do {                                                                                    \
                long long _a_ = (long long) (a), _b_ = (long long) (b);                         \
                if (_a_ != _b_) {                                                               \
                        fprintf(stderr, "%s:%d: %lld != %lld (%s vs %s)\n", __FILE__, __LINE__, \
                                _a_, _b_, #a, #b);                                              \
                        abort();                                                                \
                }                                                                               \
        } while (0)
