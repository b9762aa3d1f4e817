/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <libudev.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "agent-config.h"

struct pci_access;
struct gpu;

struct manager {
        sd_event *event;
        sd_bus *bus;
        struct udev *udev;
        struct udev_monitor *monitor;
        sd_event_source *monitor_source;
        struct pci_access *pacc;

        struct agent_config config;

        struct gpu **gpus; /* sorted by address */
        size_t n_gpus;

        const char *version;
        bool maintenance;
        bool iommu_enabled;
};

int manager_new(struct manager **ret);
struct manager *manager_free(struct manager *m);
int manager_startup(struct manager *m);
int manager_run(struct manager *m);

struct gpu *manager_find_gpu(struct manager *m, const char *address);
/* Enumerates PCI devices through udev: adds new GPUs, refreshes known ones, drops vanished ones. */
int manager_enumerate(struct manager *m);
/* Refreshes every GPU sharing IOMMU group `group` (a member's driver changed). */
void manager_refresh_group(struct manager *m, int group);
void manager_set_status(struct manager *m);

/* manager-bus.c */
int manager_bus_setup(struct manager *m);
int manager_emit_gpu_added(struct manager *m, struct gpu *g);
int manager_emit_gpu_removed(struct manager *m, struct gpu *g);
