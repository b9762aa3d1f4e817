/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <systemd/sd-journal.h>

#include "log.h"

/* True when stderr is the journal stream systemd connected us to (see systemd.exec, $JOURNAL_STREAM). */
static bool stderr_is_journal(void) {
        static int cached = -1;
        const char *e;
        unsigned long long dev, ino;
        struct stat st;

        if (cached >= 0)
                return cached;
        e = getenv("JOURNAL_STREAM");
        cached = e && sscanf(e, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) >= 0 &&
                 (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;
        return cached;
}

void log_fields_free(char **fields, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(fields[i]);
}

int log_journal_fields(int priority, const char *gpu, const char *vm, const char *host, const char *message,
                       char *ret_fields[static LOG_FIELDS_MAX], size_t *ret_n) {
        const struct {
                const char *name, *value;
        } optional[] = {
                { "GPUPASS_GPU", gpu },
                { "GPUPASS_VM", vm },
                { "GPUPASS_HOST", host },
        };
        char *f[LOG_FIELDS_MAX] = {};
        size_t n = 0;

        if (asprintf(&f[n++], "MESSAGE=%s", message) < 0 || asprintf(&f[n++], "PRIORITY=%i", priority) < 0)
                goto fail;
        for (size_t i = 0; i < ELEMENTSOF(optional); i++)
                if (optional[i].value && *optional[i].value &&
                    asprintf(&f[n++], "%s=%s", optional[i].name, optional[i].value) < 0)
                        goto fail;
        memcpy(ret_fields, f, sizeof(f));
        *ret_n = n;
        return 0;
fail:
        f[n - 1] = NULL; /* asprintf leaves it undefined */
        log_fields_free(f, n);
        return -ENOMEM;
}

static void _printf_(5, 0) log_vstruct(int priority, const char *gpu, const char *vm, const char *host,
                                       const char *format, va_list ap) {
        int saved_errno = errno;
        char *message = NULL;

        errno = saved_errno; /* for %m */
        if (vasprintf(&message, format, ap) < 0)
                message = NULL;
        if (!message)
                return;

        if (stderr_is_journal()) {
                char *fields[LOG_FIELDS_MAX];
                struct iovec iov[LOG_FIELDS_MAX];
                size_t n;

                if (log_journal_fields(priority, gpu, vm, host, message, fields, &n) >= 0) {
                        for (size_t i = 0; i < n; i++)
                                iov[i] = (struct iovec) { .iov_base = fields[i], .iov_len = strlen(fields[i]) };
                        (void) sd_journal_sendv(iov, (int) n);
                        log_fields_free(fields, n);
                }
        } else if (priority <= LOG_INFO || getenv("GPUPASS_DEBUG"))
                fprintf(stderr, "%s\n", message);
        free(message);
        errno = saved_errno;
}

void log_struct(int priority, const char *gpu, const char *vm, const char *host, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        log_vstruct(priority, gpu, vm, host, format, ap);
        va_end(ap);
}

void log_full(int priority, const char *gpu, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        log_vstruct(priority, gpu, NULL, NULL, format, ap);
        va_end(ap);
}
