/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
 *   Runtime=libvirt                   # VMs run through libvirt there (default: none, claim and record)
 *   LibvirtUri=qemu:///system         # default: qemu+ssh://[USER@]HOST/system for ssh:, else qemu:///system
 *
 * and in [Cluster], for every libvirt host: ShutdownTimeoutSec=120 (ACPI shutdown, then destroy) and
 * OnCrash=off|restart (a crashed guest is off, or started again on its host with its GPUs).
 */
#define CLUSTERD_CONFIG_FILE "clusterd.conf"
#define CLUSTERD_SHUTDOWN_TIMEOUT_USEC (120 * 1000000ULL)

struct host_config {
        char *name;
        char *address; /* as configured */
        bool runtime_set;   /* Runtime= given */
        char *runtime_uri;  /* Runtime=libvirt: LibvirtUri=, or its default; NULL: Runtime=none */
        char *libvirt_uri;  /* LibvirtUri= as given */
};

struct clusterd_config {
        char *admin_group;
        struct host_config *hosts;
        size_t n_hosts;
        uint64_t shutdown_timeout_usec;
        bool restart_on_crash;
};

int clusterd_config_parse_string(struct clusterd_config *c, const char *text, int *ret_line);
int clusterd_config_load(struct clusterd_config *c, const char *path, int *ret_line);
void clusterd_config_done(struct clusterd_config *c);
/* The sd-bus address for a configured one: ssh:HOST and machine:NAME become sd-bus transports. */
int host_address_to_bus_address(const char *configured, char **ret);
