/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-bus.h>

#include "agent-config.h"

/*
 * The daemon's own check of who calls a mutating method, behind the bus policy file (defence in depth:
 * a permissive bus configuration must not open the GPUs to everyone). Allowed: effective uid 0, or a
 * member of the configured admin group (primary or supplementary, from the sender's credentials as the
 * bus reports them). Otherwise org.gpupass.Error.AccessDenied naming the uid.
 */
int bus_check_admin(sd_bus_message *m, const struct agent_config *config, sd_bus_error *error);
