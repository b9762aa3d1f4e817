/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdarg.h>

#include "ctl.h"

/*
 * Calls METHOD of the aggregator's Manager with the arguments of TYPES (NULL: none); on failure prints
 * "Failed to WHAT: message (error name)" and returns -EXIT_CALL_FAILED. *ret (if not NULL) gets the reply.
 */
int ctl_call_cluster(sd_bus *bus, const char *method, const char *what, sd_bus_message **ret, const char *types,
                     ...);
/* METHOD(s arg) -> s: *ret_value points into *ret_reply (GetConsole, GetVmDomainXml). */
int ctl_call_cluster_string(sd_bus *bus, const char *method, const char *what, const char *arg,
                            sd_bus_message **ret_reply, const char **ret_value);
/*
 * The same for a call that waits for guests and VMMs (PowerOn, PowerOff, host maintenance): the aggregator
 * answers once an ACPI shutdown has ended, up to its ShutdownTimeoutSec (at most a day) and then a destroy,
 * so D-Bus's default 25 s would give up first. With --no-block it returns once the aggregator has taken the
 * call (a refusal made at once is reported): 1 while the call runs on (*ret is not set), 0 when it had
 * already answered.
 */
#define CTL_LONG_CALL_TIMEOUT_USEC ((86400ULL + 600ULL) * 1000000ULL)
int ctl_call_cluster_long(sd_bus *bus, const char *method, const char *what, sd_bus_message **ret,
                          const char *types, ...);
