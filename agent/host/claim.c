/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Ownership of GPUs by VMs. A claim is per IOMMU group (every GPU of the group gets the same owner), belongs
 * to the VM named by its UUID (not to the D-Bus connection that made it), is on disk before the reply, and
 * ends only with Release, which resets the devices before anyone else can claim them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bus-error.h"
#include "claim.h"
#include "gpu-bus.h"
#include "gpu.h"
#include "gpupass/bus-names.h"
#include "group-job.h"
#include "log.h"
#include "macro.h"
#include "manager.h"
#include "strv.h"
#include "vfio.h"

static int check_vm(const char *vm, sd_bus_error *error) {
        if (!vm_uuid_is_valid(vm))
                return sd_bus_error_setf(error, GPUPASS_ERROR_INVALID_ARGUMENT,
                                         "'%s' is not a VM UUID (expected 36 characters, "
                                         "e.g. 0f8fad5b-d9cb-469f-a165-70867728950e)", vm);
        return 0;
}

static int check_owner(struct gpu *g, const char *vm, sd_bus_error *error) {
        if (!g->owner)
                return sd_bus_error_setf(error, GPUPASS_ERROR_NOT_OWNER, "%s is not claimed; VM %s does not hold it",
                                         g->address, vm);
        if (strcasecmp(g->owner, vm) != 0)
                return sd_bus_error_setf(error, GPUPASS_ERROR_NOT_OWNER, "%s is claimed by VM %s, not by VM %s",
                                         g->address, g->owner, vm);
        return 0;
}

/* The checks every call on a held claim makes: a well-formed VM that holds it, and a GPU that is there. */
static int check_claim_holder(struct gpu *g, const char *vm, sd_bus_error *error) {
        int r;

        r = check_vm(vm, error);
        if (r < 0)
                return r;
        r = check_owner(g, vm, error);
        if (r < 0)
                return r;
        return gpu_check_actionable(g, error);
}

/* Saves the state with the group's PreviousModel cleared; on failure they are as they were. */
static int save_without_previous_models(struct manager *m, int group) {
        char *kept[m->n_gpus + 1];
        struct gpu *g;
        size_t n = 0;
        int r;

        FOREACH_GPU_IN_GROUP(g, m, group)
                kept[n++] = TAKE_PTR(g->previous_model);
        r = manager_save_state(m);
        n = 0;
        FOREACH_GPU_IN_GROUP(g, m, group) {
                g->previous_model = kept[n++]; /* gpu_set_string() clears it and announces the change */
        }
        return r;
}

int manager_record_claim(struct manager *m, int group, const char *vm, sd_bus_error *error) {
        struct gpu *g, *owned_by_other = NULL;
        int r;

        FOREACH_GPU_IN_GROUP(g, m, group)
                if (g->owner && strcasecmp(g->owner, vm) != 0)
                        owned_by_other = g;
        if (owned_by_other)
                return sd_bus_error_setf(error, GPUPASS_ERROR_BUSY, "%s is claimed by VM %s",
                                         owned_by_other->address, owned_by_other->owner);

        FOREACH_GPU_IN_GROUP(g, m, group) {
                free(g->owner);
                g->owner = strdup(vm);
                if (!g->owner) {
                        r = -ENOMEM;
                        goto revert;
                }
        }
        /* A new claim means the VM was configured for the GPU as it is now: the identity change is over,
         * also in the state file (else the next start reports it again, and the VM is flagged anew). */
        r = save_without_previous_models(m, group);
        if (r < 0)
                goto revert;

        FOREACH_GPU_IN_GROUP(g, m, group) {
                gpu_set_string(g, &g->previous_model, NULL, "PreviousModel");
                gpu_send_changed(g, "Owner");
                (void) gpu_refresh(g);
                log_struct(LOG_NOTICE, g->address, vm, /* host= */ NULL, "%s (%s) claimed by VM %s", g->address,
                           g->model, vm);
        }
        return 0;

revert:
        FOREACH_GPU_IN_GROUP(g, m, group)
                g->owner = mfree(g->owner);
        return bus_error_setf_errno(error, GPUPASS_ERROR_STATE_NOT_SAVED, r,
                                    "Cannot record the claim of IOMMU group %d on disk (%m); not claimed", group);
}

int gpu_claim(struct gpu *g, sd_bus_message *call, const char *vm, sd_bus_error *error) {
        struct manager *m = g->manager;
        int r;

        r = check_vm(vm, error);
        if (r < 0)
                return r;
        if (m->maintenance)
                return sd_bus_error_setf(error, GPUPASS_ERROR_IN_MAINTENANCE,
                                         "The host is in maintenance: no new claims (%s)", g->address);
        if (g->owner) {
                /* Its own Release runs (the reset): held no more, and not yet free. */
                if (strcasecmp(g->owner, vm) == 0 && g->releasing)
                        return sd_bus_error_setf(error, GPUPASS_ERROR_BUSY, "VM %s is releasing IOMMU group %d of %s; "
                                                 "claim it again once the release is done", vm, g->iommu_group,
                                                 g->address);
                if (strcasecmp(g->owner, vm) == 0)
                        return sd_bus_reply_method_return(call, /* types= */ NULL); /* the VM holds it already */
                return sd_bus_error_setf(error, GPUPASS_ERROR_BUSY, "%s is claimed by VM %s", g->address, g->owner);
        }
        r = gpu_check_actionable(g, error);
        if (r < 0)
                return r;
        r = gpu_check_preparable(g, error);
        if (r < 0)
                return r;
        if (g->state == GPU_STATE_VFIO) {
                r = manager_record_claim(m, g->iommu_group, vm, error);
                if (r < 0)
                        return r;
                return sd_bus_reply_method_return(call, /* types= */ NULL);
        }
        /* Not on vfio-pci yet: bind first, all or nothing; the job records the claim when the group is bound. */
        return gpu_start_bind_job(g, call, /* to_vfio= */ true, vm, error);
}

int gpu_release(struct gpu *g, sd_bus_message *call, const char *vm, sd_bus_error *error) {
        struct manager *m = g->manager;
        int r;

        r = check_vm(vm, error);
        if (r < 0)
                return r;
        /* Idempotent for the VM: a group it no longer holds (released already, or its release running for
         * another of the group's GPUs) is released, which is what was asked. */
        if (!g->owner || (g->releasing && strcasecmp(g->owner, vm) == 0))
                return sd_bus_reply_method_return(call, NULL);
        r = check_owner(g, vm, error);
        if (r < 0)
                return r;
        if (g->job_running)
                return sd_bus_error_setf(error, GPUPASS_ERROR_BUSY,
                                         "An operation on IOMMU group %d of %s is in progress", g->iommu_group,
                                         g->address);
        if (!g->present) {
                /* Gone from the bus: nothing to reset, the claim simply ends and the object with it. */
                r = manager_forget_missing_gpu(m, g);
                if (r < 0)
                        return bus_error_setf_errno(error, GPUPASS_ERROR_STATE_NOT_SAVED, r,
                                                    "Cannot record the release on disk (%m); VM %s keeps its claim",
                                                    vm);
                return sd_bus_reply_method_return(call, /* types= */ NULL);
        }
        return release_job_start(g, call, vm, error);
}

static int vfio_error(struct gpu *g, int r, sd_bus_error *error) {
        switch (r) {
        case -ENOENT:
        case -ENODEV:
                return sd_bus_error_setf(error, GPUPASS_ERROR_VFIO_UNAVAILABLE,
                                         "No VFIO device node for IOMMU group %d of %s (/dev/vfio/%d): this kernel "
                                         "offers no VFIO for it", g->iommu_group, g->address, g->iommu_group);
        case -EBUSY:
                return sd_bus_error_setf(error, GPUPASS_ERROR_BUSY,
                                         "IOMMU group %d of %s is open by another process (a VMM?)", g->iommu_group,
                                         g->address);
        case -EPERM:
                return sd_bus_error_setf(error, GPUPASS_ERROR_GROUP_NOT_VIABLE,
                                         "The kernel reports IOMMU group %d of %s not viable", g->iommu_group,
                                         g->address);
        default:
                return sd_bus_error_set_errnof(error, -r, "VFIO access to %s failed: %m", g->address);
        }
}

int gpu_open_vfio(struct gpu *g, sd_bus_message *call, const char *vm, sd_bus_error *error) {
        _cleanup_strv_free_ char **addresses = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ int *fds = NULL;
        size_t n = 0;
        int r;

        r = check_claim_holder(g, vm, error);
        if (r < 0)
                return r;

        /* The GPU's own descriptor first, then its companions'. */
        r = strv_extend(&addresses, g->address);
        for (char **c = g->companions; r >= 0 && c && *c; c++)
                r = strv_extend(&addresses, *c);
        if (r < 0)
                return r;
        r = vfio_open_for_vmm(g->iommu_group, addresses, &fds, &n);
        if (r < 0)
                return vfio_error(g, r, error);

        r = sd_bus_message_new_method_return(call, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "h");
        for (size_t i = 0; r >= 0 && i < n; i++)
                r = sd_bus_message_append(reply, "h", fds[i]); /* sd-bus duplicates the descriptor */
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r >= 0)
                r = sd_bus_send(/* bus= */ NULL, reply, /* ret_cookie= */ NULL);
        /* Our copies go now: the agent must not hold the group open (unbinding would block on it). */
        for (size_t i = 0; i < n; i++)
                close(fds[i]);
        if (r >= 0)
                log_struct(LOG_INFO, g->address, vm, /* host= */ NULL,
                           "Handed %zu VFIO descriptor(s) of %s to the launcher of VM %s", n, g->address, vm);
        return r;
}

int gpu_allow_user(struct gpu *g, sd_bus_message *call, const char *vm, uid_t uid, sd_bus_error *error) {
        struct manager *m = g->manager;
        _cleanup_strv_free_ char **members = NULL;
        struct gpu *peer;
        int r;

        if (uid == (uid_t) -1)
                return sd_bus_error_setf(error, GPUPASS_ERROR_INVALID_ARGUMENT, "uid %u is not a user", (unsigned) uid);
        r = check_claim_holder(g, vm, error);
        if (r < 0)
                return r;
        r = manager_group_assigned_members(m, g->iommu_group, &members);
        if (r < 0)
                return sd_bus_error_set_errnof(error, -r, "Cannot read IOMMU group %d: %m", g->iommu_group);
        r = vfio_chown_nodes(g->iommu_group, members, uid);
        if (r < 0)
                return vfio_error(g, r, error);

        FOREACH_GPU_IN_GROUP(peer, m, g->iommu_group)
                peer->allowed_uid = uid;
        r = manager_save_state(m);
        if (r < 0) {
                (void) vfio_chown_nodes(g->iommu_group, members, 0);
                FOREACH_GPU_IN_GROUP(peer, m, g->iommu_group)
                        peer->allowed_uid = (uid_t) -1;
                return bus_error_setf_errno(error, GPUPASS_ERROR_STATE_NOT_SAVED, r,
                                            "Cannot record the grant on disk (%m); access not granted");
        }
        log_struct(LOG_NOTICE, g->address, vm, /* host= */ NULL, "uid %u may open /dev/vfio/%d of VM %s until its release",
                   (unsigned) uid, g->iommu_group, vm);
        return sd_bus_reply_method_return(call, /* types= */ NULL);
}
