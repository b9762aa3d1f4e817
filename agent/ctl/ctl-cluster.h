/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include <systemd/sd-bus.h>

/* gpupassctl's cluster verbs: they talk to gpupass-clusterd (org.gpupass.cluster1). */
extern bool arg_legend;
/* Prints "Failed to WHAT: message (error name)" and returns the call-failed exit code, negated. */
int ctl_report_error(const char *what, const sd_bus_error *error, int r);

int verb_cluster_hosts(sd_bus *bus, char **args);
int verb_cluster_gpus(sd_bus *bus, char **args);
int verb_cluster_vms(sd_bus *bus, char **args);
int verb_power_on(sd_bus *bus, char **args);
int verb_power_off(sd_bus *bus, char **args);
/* The QEMU arguments and libvirt <hostdev> elements for a running VM's GPUs. */
int verb_hostdev(sd_bus *bus, char **args);
