/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include <systemd/sd-bus.h>

/*
 * Who may change state, checked by the daemons themselves behind the bus policy (a permissive bus
 * configuration must not open the GPUs or the cluster): effective uid 0, or a member of the admin group
 * (primary or supplementary, from the sender's credentials as the bus reports them, augmented from /proc
 * as sd-bus documents). Otherwise org.gpupass.Error.AccessDenied naming the uid and `what`.
 */
int bus_check_caller(sd_bus_message *m, bool admin_gid_valid, gid_t admin_gid, const char *admin_group,
                     const char *what, sd_bus_error *error);
