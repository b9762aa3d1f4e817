/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include <systemd/sd-bus.h>

#include "pci-address.h"
#include "pci-identity.h"

struct manager;

/*
 * GPU states, as the Gpu.State property spells them. "unavailable" means the GPU cannot go to a VM as
 * things are (boot VGA, no IOMMU group, group not viable): Problem says why.
 */
enum gpu_state {
        GPU_STATE_HOST,
        GPU_STATE_VFIO,
        GPU_STATE_CLAIMED,
        GPU_STATE_MISSING,
        GPU_STATE_UNAVAILABLE,
};

struct gpu {
        struct manager *manager;
        char address[PCI_ADDRESS_MAX];
        struct pci_address pci;
        char *object_path;

        struct pci_identity identity;
        char *model;
        const char *mode;     /* static string */
        int iommu_group;      /* -1: none */
        int numa_node;
        bool boot_vga;
        char **companions;    /* full addresses, sorted */
        char *driver;         /* NULL when unbound */
        enum gpu_state state;
        char *problem;        /* why it cannot be prepared, NULL if it can */
        char *owner;          /* VM UUID, NULL when unclaimed */
        bool needs_reconfiguration;

        bool job_running;     /* a bind job holds the group */
};

const char *gpu_state_to_string(enum gpu_state s);

int gpu_new(struct manager *m, const char *address, struct gpu **ret);
struct gpu *gpu_free(struct gpu *g);
/* Re-reads identity, group, companions and drivers from sysfs; emits PropertiesChanged for what changed. */
int gpu_refresh(struct gpu *g);

/* Refusals shared by Prepare and Claim, in DESIGN.md's order. 0 if the group can be bound, else a negative
 * errno with the D-Bus error filled in. */
int gpu_check_preparable(struct gpu *g, sd_bus_error *error);
/* Binds the GPU's group to vfio-pci (a job); `reply` is the method call to answer when done. */
int gpu_prepare(struct gpu *g, sd_bus_message *reply, sd_bus_error *error);
int gpu_return_to_host(struct gpu *g, sd_bus_message *reply, sd_bus_error *error);
