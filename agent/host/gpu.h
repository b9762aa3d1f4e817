/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include <systemd/sd-bus.h>

#include "macro.h"
#include "pci-address.h"
#include "pci-identity.h"

struct manager;
struct iommu_group;

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
        char *reset_method;   /* sysfs reset_method ("flr pm bus"); NULL: the kernel cannot reset it */
        char **companions;    /* full addresses, sorted */
        char *driver;         /* NULL when unbound */
        enum gpu_state state;
        char *problem;        /* why it cannot be prepared, NULL if it can */
        char *owner;          /* VM UUID, NULL when unclaimed */
        uid_t allowed_uid;    /* AllowUser: owner of the /dev/vfio node during the claim; (uid_t) -1 none */
        bool needs_reconfiguration; /* the identity changed while claimed */
        char *previous_model; /* the model before the last identity change, until the GPU is claimed again */
        char *reset_failure;  /* why the reset at the last release failed; unavailable until returned */
        bool present;         /* false: claimed but gone from the bus ("missing") */
        struct iommu_group *group; /* the group's members as of the last gpu_refresh(); NULL: none or missing */

        bool job_running;     /* a bind job holds the group */
        bool releasing;       /* that job is the owner's Release (its reset): the owner holds it no more */
        unsigned rebind_failures; /* failed binds back to vfio-pci since the claimed card came back */
};

const char *gpu_state_to_string(enum gpu_state s);

int gpu_new(struct manager *m, const char *address, struct gpu **ret);
struct gpu *gpu_free(struct gpu *g);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct gpu *, gpu_free);
/* Re-reads identity, group, companions and drivers from sysfs; emits PropertiesChanged for what changed. */
int gpu_refresh(struct gpu *g);
/* After a bind or unbind in the GPU's group: re-reads only the driver links of the GPU and of the group's
 * members (as the last gpu_refresh() found them); falls back to gpu_refresh() when there is no such reading. */
int gpu_refresh_drivers(struct gpu *g);
/* Whether `address` (canonical) was a member of the GPU's IOMMU group at its last gpu_refresh(). */
bool gpu_group_has_member(const struct gpu *g, const char *address);

/* Refusals shared by Prepare and Claim, in DESIGN.md's order. 0 if the group can be bound, else a negative
 * errno with the D-Bus error filled in. */
int gpu_check_preparable(struct gpu *g, sd_bus_error *error);
/* NotFound for a missing GPU, Busy while a job holds its group. */
int gpu_check_actionable(struct gpu *g, sd_bus_error *error);
/* Sets or clears a field and emits PropertiesChanged for it. */
void gpu_set_owner(struct gpu *g, const char *vm);
void gpu_set_string(struct gpu *g, char **field, const char *value, const char *property);
void gpu_set_needs_reconfiguration(struct gpu *g, bool b);

/* claim.c: ownership. Each checks state and answers `call` (now or when its job is done). */
int gpu_claim(struct gpu *g, sd_bus_message *call, const char *vm, sd_bus_error *error);
int gpu_release(struct gpu *g, sd_bus_message *call, const char *vm, sd_bus_error *error);
int gpu_open_vfio(struct gpu *g, sd_bus_message *call, const char *vm, sd_bus_error *error);
int gpu_allow_user(struct gpu *g, sd_bus_message *call, const char *vm, uid_t uid, sd_bus_error *error);
