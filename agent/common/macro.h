/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Ownership in the type system, after systemd's CODING_STYLE: a variable declared with _cleanup_(f)
 * is released by f(&var) when it goes out of scope; TAKE_PTR hands it out and disarms the cleanup. */
#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))

#define TAKE_PTR(p)                             \
        ({                                      \
                typeof(p) _ptr_ = (p);          \
                (p) = NULL;                     \
                _ptr_;                          \
        })

#define TAKE_FD(fd)                             \
        ({                                      \
                int _fd_ = (fd);                \
                (fd) = -EBADF;                  \
                _fd_;                           \
        })

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

/* For a type with an unref/free function taking NULL: defines func##p(type *p), which _cleanup_(func##p)
 * calls on scope exit (as systemd's macro-fundamental.h). */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)                 \
        static inline void func##p(type *p) {                   \
                if (*p)                                         \
                        func(*p);                               \
        }

/* Equal strings, NULL equal only to NULL. */
static inline bool streq_ptr(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}

/* NULL read as "", for values where unset and empty mean the same. */
static inline const char *strempty(const char *s) {
        return s ?: "";
}

static inline void freep(void *p) {
        free(*(void **) p);
}

static inline void closep(int *fd) {
        if (*fd >= 0)
                close(*fd);
}

static inline void strv_free(char **l) {
        if (!l)
                return;
        for (char **i = l; *i; i++)
                free(*i);
        free(l);
}

static inline void strv_freep(char ***l) {
        strv_free(*l);
}

#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_strv_free_ _cleanup_(strv_freep)

static inline int negative_errno(void) {
        /* For the rare libc call that fails without setting errno: never return 0 as an error. */
        return errno > 0 ? -errno : -EIO;
}

static inline void *mfree(void *p) {
        free(p);
        return NULL;
}
