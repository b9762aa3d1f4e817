/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/signalfd.h>

#include <libudev.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "agent-config.h"
#include "ledger.h"
#include "macro.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct udev_enumerate *, udev_enumerate_unref);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct udev_device *, udev_device_unref);

struct pci_access;
struct gpu;
struct pci_identity;

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

        char *state_dir;           /* $STATE_DIRECTORY */
        char *passthrough_dir;     /* $CONFIGURATION_DIRECTORY/passthrough.d: GPUs bound to vfio-pci at boot */
        struct ledger loaded;      /* the state file as read at start-up, until applied */
        struct ledger inventory;   /* last identity seen per slot (only its identities are used) */
        char *state_problem;       /* why the state file could not be used, "" when fine */
        bool bus_ready;            /* the name is ours: signals reach clients */
        char **pending_identity_signals; /* addresses whose IdentityChanged waits for the bus */
        char *status_sent;         /* the last STATUS= sent to the service manager */
};

#define GPU_CONCAT_(a, b) a##b
#define GPU_CONCAT(a, b) GPU_CONCAT_(a, b)
#define FOREACH_GPU_(g, m, i) for (size_t i = 0; i < (m)->n_gpus && ((g) = (m)->gpus[i], true); i++)
/* Every GPU of the manager, in address order; `g` is a struct gpu * declared by the caller. */
#define FOREACH_GPU(g, m) FOREACH_GPU_(g, m, GPU_CONCAT(gpu_index_, __COUNTER__))
/* Every GPU of the manager in IOMMU group `group`, as ratbagd's RATBAGD_DEVICE_FOREACH. */
#define FOREACH_GPU_IN_GROUP(g, m, group) \
        FOREACH_GPU(g, m)                 \
                if ((g)->iommu_group != (group)) {} else

int manager_new(struct manager **ret);
struct manager *manager_free(struct manager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct manager *, manager_free);
int manager_startup(struct manager *m);
int manager_run(struct manager *m);

struct gpu *manager_find_gpu(struct manager *m, const char *address);
/* A GPU found at `address`: read, inserted, announced on the bus. */
int manager_add_gpu(struct manager *m, const char *address);
/* A GPU gone from the bus (and not claimed): announced and freed. */
void manager_remove_gpu(struct manager *m, struct gpu *g);
/* Refreshes every GPU sharing IOMMU group `group` (a member's driver changed). */
void manager_refresh_group(struct manager *m, int group);
/* The same, leaving out one GPU (already refreshed by the caller; NULL: none). */
void manager_refresh_group_except(struct manager *m, int group, struct gpu *done);
void manager_set_status(struct manager *m);

void manager_set_group_job(struct manager *m, int group, bool running);
/* After a uevent in the group: a claimed GPU's functions found on host drivers go back to vfio-pci. */
void manager_rebind_claimed_group(struct manager *m, int group);
/* A placeholder for a claimed GPU that is not on the bus (State "missing"). */
int manager_add_missing_gpu(struct manager *m, const char *address, const struct pci_identity *id, const char *model,
                            struct gpu **ret);
/* Ends the claim of a missing GPU and drops its object. */
int manager_forget_missing_gpu(struct manager *m, struct gpu *g);

/* manager-config.c */
/* The directories and gpupassd.conf, at start-up. */
int manager_load_config(struct manager *m);
/* SIGHUP: gpupassd.conf again; a file that does not parse leaves the running configuration in place. */
int manager_on_reload(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata);

/* manager-udev.c */
/* The udev monitor, attached to the event loop; enabled before enumerating. */
int manager_udev_setup(struct manager *m);
/* Enumerates PCI devices through udev: adds new GPUs, refreshes known ones, drops vanished ones. */
int manager_enumerate(struct manager *m);

/* manager-state.c */
int manager_save_state(struct manager *m);
int manager_load_state(struct manager *m);
int manager_apply_state(struct manager *m);
int manager_check_identity(struct manager *m, struct gpu *g);
void manager_flush_identity_signals(struct manager *m);
/* Ends the claim on every GPU of `group`, on disk first; with reset_failure they become unavailable. */
int manager_end_claim(struct manager *m, int group, const char *reset_failure);
int manager_clear_reset_failures(struct manager *m, int group, sd_bus_error *error);
/* The addresses of the group's GPUs and companions, the functions that go to a VM. */
int manager_group_assigned_members(struct manager *m, int group, char ***ret);

/* manager-bus.c */
int manager_bus_setup(struct manager *m);
int manager_emit_gpu_added(struct manager *m, struct gpu *g);
int manager_emit_gpu_removed(struct manager *m, struct gpu *g);
