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
