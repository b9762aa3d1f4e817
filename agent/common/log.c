/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/stat.h>

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

void log_full(int priority, const char *gpu, const char *format, ...) {
        int saved_errno = errno;
        char *message = NULL;
        va_list ap;

        va_start(ap, format);
        errno = saved_errno; /* for %m */
        if (vasprintf(&message, format, ap) < 0)
                message = NULL;
        va_end(ap);
        if (!message)
                return;

        if (stderr_is_journal()) {
                if (gpu)
                        sd_journal_send("MESSAGE=%s", message, "PRIORITY=%i", priority, "GPUPASS_GPU=%s", gpu,
                                        NULL);
                else
                        sd_journal_send("MESSAGE=%s", message, "PRIORITY=%i", priority, NULL);
        } else if (priority <= LOG_INFO || getenv("GPUPASS_DEBUG"))
                fprintf(stderr, "%s\n", message);
        free(message);
        errno = saved_errno;
}
