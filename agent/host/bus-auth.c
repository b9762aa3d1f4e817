/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "bus-auth.h"
#include "bus-caller.h"

int bus_check_admin(sd_bus_message *m, const struct agent_config *config, sd_bus_error *error) {
        return bus_check_caller(m, config->admin_gid_valid, config->admin_gid, config->admin_group, "GPU state",
                                error);
}
