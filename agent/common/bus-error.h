/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>

#include <systemd/sd-bus.h>

#include "macro.h"

/*
 * One of our named errors (org.gpupass.Error.*) whose message says which errno caused it: `%m` in format
 * prints `error`. sd_bus_error_set_errnof() would name the error after the errno instead, and a client
 * tells StateNotSaved from Busy by its name.
 */
_printf_(4, 5)
static inline int bus_error_setf_errno(sd_bus_error *e, const char *name, int error, const char *format, ...) {
        va_list ap;
        int r;

        errno = abs(error);
        va_start(ap, format);
        r = sd_bus_error_setfv(e, name, format, ap);
        va_end(ap);
        return r;
}

/* The same as a reply to `call`, for a job that answers when it is done. */
_printf_(4, 5)
static inline int bus_reply_errorf_errno(sd_bus_message *call, const char *name, int error, const char *format, ...) {
        va_list ap;
        int r;

        errno = abs(error);
        va_start(ap, format);
        r = sd_bus_reply_method_errorfv(call, name, format, ap);
        va_end(ap);
        return r;
}
