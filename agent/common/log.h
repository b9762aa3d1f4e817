/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <errno.h>
#include <stdlib.h>
#include <syslog.h>

#include "macro.h"

/*
 * Logging for the daemons: to the journal with structured fields when stderr is the journal (systemd sets
 * JOURNAL_STREAM), else one line to stderr (tests, a foreground run). `gpu` is a PCI address or NULL; it
 * becomes the field GPUPASS_GPU so that `journalctl GPUPASS_GPU=0000:3b:00.0` shows one GPU's story.
 * Library functions do not log; they return errors, and the daemon logs where it decides.
 */
void log_full(int priority, const char *gpu, const char *format, ...) _printf_(3, 4);
/* The same with the VM (its UUID, field GPUPASS_VM) and the host (the aggregator's name for it, field
 * GPUPASS_HOST): `journalctl GPUPASS_VM=...` follows a VM through claims, power-on and maintenance. */
void log_struct(int priority, const char *gpu, const char *vm, const char *host, const char *format, ...)
        _printf_(5, 6);

#define LOG_FIELDS_MAX 5
/* The journal fields of one message: MESSAGE=, PRIORITY= and each of GPUPASS_GPU/VM/HOST that is set and
 * not empty; *ret_n of them, malloc'd, for log_fields_free(). What log_struct() sends to the journal. */
int log_journal_fields(int priority, const char *gpu, const char *vm, const char *host, const char *message,
                       char *ret_fields[static LOG_FIELDS_MAX], size_t *ret_n);
void log_fields_free(char **fields, size_t n);

#define log_debug(...)   log_full(LOG_DEBUG, NULL, __VA_ARGS__)
#define log_info(...)    log_full(LOG_INFO, NULL, __VA_ARGS__)
#define log_notice(...)  log_full(LOG_NOTICE, NULL, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, NULL, __VA_ARGS__)
#define log_error(...)   log_full(LOG_ERR, NULL, __VA_ARGS__)

/* Logs with errno set to `error` (so %m prints it) and returns -|error|; the _gpu form with GPUPASS_GPU. */
#define log_gpu_full_errno(priority, gpu, error, ...)           \
        ({                                                      \
                int _e_ = abs(error);                           \
                errno = _e_;                                    \
                log_full(priority, gpu, __VA_ARGS__);           \
                -_e_;                                           \
        })
#define log_full_errno(priority, error, ...) log_gpu_full_errno(priority, NULL, error, __VA_ARGS__)
#define log_notice_errno(error, ...)  log_full_errno(LOG_NOTICE, error, __VA_ARGS__)
#define log_warning_errno(error, ...) log_full_errno(LOG_WARNING, error, __VA_ARGS__)
#define log_error_errno(error, ...)   log_full_errno(LOG_ERR, error, __VA_ARGS__)
