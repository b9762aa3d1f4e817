/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "dlfcn-util.h"

#include "macro.h"

_printf_(2, 3)
static void set_message(char **ret_message, const char *format, ...) {
        va_list ap;

        if (!ret_message)
                return;
        va_start(ap, format);
        if (vasprintf(ret_message, format, ap) < 0)
                *ret_message = NULL;
        va_end(ap);
}

int dlopen_many_sym_sentinel(void **dlp, const char *filename, char **ret_message, ...) {
        void (**fn)(void);
        void (*resolved[32])(void);
        size_t n = 0;
        va_list ap;
        void *dl;

        if (*dlp)
                return 0;
        dl = dlopen(filename, RTLD_NOW | RTLD_NODELETE);
        if (!dl) {
                const char *e = dlerror();

                set_message(ret_message, "%s cannot be loaded: %s", filename, e ?: "unknown error");
                return -EOPNOTSUPP;
        }

        /* Resolve everything first, assign only when all symbols are there. */
        va_start(ap, ret_message);
        while ((fn = va_arg(ap, void (**)(void)))) {
                const char *symbol = va_arg(ap, const char *);

                if (n >= sizeof(resolved) / sizeof(resolved[0])) {
                        va_end(ap);
                        (void) dlclose(dl);
                        set_message(ret_message, "%s: too many symbols requested (at %s)", filename, symbol);
                        return -E2BIG;
                }
                resolved[n] = (void (*)(void)) dlsym(dl, symbol);
                if (!resolved[n]) {
                        va_end(ap);
                        (void) dlclose(dl);
                        set_message(ret_message, "%s has no symbol %s", filename, symbol);
                        return -ENXIO;
                }
                n++;
        }
        va_end(ap);

        va_start(ap, ret_message);
        for (size_t i = 0; (fn = va_arg(ap, void (**)(void))); i++) {
                (void) va_arg(ap, const char *);
                *fn = resolved[i];
        }
        va_end(ap);
        *dlp = dl;
        return 0;
}
