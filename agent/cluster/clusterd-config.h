/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>

/*
 * clusterd.conf, INI, in $CONFIGURATION_DIRECTORY (default /etc/gpupass):
 *
 *   [Cluster]
 *   AdminGroup=gpupass
 *
 *   [Host gpu-node-1]
 *   Address=ssh:gpu-node-1            # sd-bus remote transport: ssh HOST systemd-stdio-bridge
 *   [Host gpu-node-2]
 *   Address=machine:gpu-node-2        # a local container
 *   [Host lab]
 *   Address=unix:path=/run/lab/bus    # any D-Bus address
 */
#define CLUSTERD_CONFIG_FILE "clusterd.conf"

struct host_config {
        char *name;
        char *address; /* as configured */
};

struct clusterd_config {
        char *admin_group;
        struct host_config *hosts;
        size_t n_hosts;
};

int clusterd_config_parse_string(struct clusterd_config *c, const char *text, int *ret_line);
int clusterd_config_load(struct clusterd_config *c, const char *path, int *ret_line);
void clusterd_config_done(struct clusterd_config *c);
/* The sd-bus address for a configured one: ssh:HOST and machine:NAME become sd-bus transports. */
int host_address_to_bus_address(const char *configured, char **ret);
