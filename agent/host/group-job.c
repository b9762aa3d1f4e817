/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The jobs that act on a whole IOMMU group off the event loop: binding it to vfio-pci or back to the host
 * drivers (Prepare, ReturnToHost, Claim, and a claimed card that came back), and the reset at Release. Each
 * marks the group busy while it runs and answers its call from the loop thread when done.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bind.h"
#include "bus-error.h"
#include "claim.h"
#include "fileio.h"
#include "gpupass/bus-names.h"
#include "gpu.h"
#include "group-job.h"
#include "iommu-group.h"
#include "job.h"
#include "log.h"
#include "macro.h"
#include "manager.h"
#include "strv.h"
#include "sysfs-pci.h"
#include "vfio.h"

/* One bind job: the plan is what the worker thread may touch; the rest is for the loop thread. */
struct bind_job {
        struct manager *manager;
        sd_bus_message *call;
        struct bind_plan *plan;
        bool to_vfio;
        char *claim_vm; /* Claim: record this VM as owner once the group is on vfio-pci */
        bool rebind;    /* a claimed card back after a surprise removal: no call to answer */
};

static int bind_job_work(void *userdata) {
        struct bind_job *j = userdata;

        return j->to_vfio ? bind_plan_to_vfio(j->plan) : bind_plan_to_host(j->plan);
}

static struct bind_job *bind_job_free(struct bind_job *j) {
        if (!j)
                return NULL;
        sd_bus_message_unref(j->call);
        bind_plan_free(j->plan);
        free(j->claim_vm);
        return mfree(j);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct bind_job *, bind_job_free);

static void bind_job_done(int result, void *userdata) {
        _cleanup_(bind_job_freep) struct bind_job *j = userdata;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        struct manager *m = j->manager;
        const char *verb = j->rebind ? "Re-binding the returned card" : j->claim_vm ? "Claim" :
                           j->to_vfio ? "Prepare" : "ReturnToHost";
        int group = j->plan->group, r;

        manager_set_group_job(m, j->plan->group, false);
        /* The uevents have refreshed most of it already; read the final state before answering, so the
         * reply never races the properties. */
        manager_refresh_group(m, j->plan->group);

        if (j->rebind) {
                /* Functions that came back while this ran were skipped (the group was busy), and a failure is
                 * retried (see gpu_rebind_claimed()): check again either way. */
                unsigned failures = 0;
                struct gpu *g;

                FOREACH_GPU_IN_GROUP(g, m, group)
                        if (g->owner) {
                                g->rebind_failures = result < 0 ? g->rebind_failures + 1 : 0;
                                failures = g->rebind_failures;
                        }
                if (result >= 0)
                        log_notice("%s: IOMMU group %d is on vfio-pci again", verb, group);
                else if (failures < GPU_REBIND_ATTEMPTS)
                        log_warning("%s of IOMMU group %d to vfio-pci failed, trying again: %s", verb, group,
                                    bind_plan_error(j->plan, result));
                else
                        log_error("%s of IOMMU group %d to vfio-pci failed %u times, it stays on the host drivers: %s",
                                  verb, group, failures, bind_plan_error(j->plan, result));
                manager_rebind_claimed_group(m, group);
                manager_set_status(m);
                return;
        }

        if (result < 0) {
                const char *msg = bind_plan_error(j->plan, result);

                log_error("%s of IOMMU group %d failed, group rolled back: %s", verb, j->plan->group, msg);
                r = sd_bus_reply_method_errorf(j->call, GPUPASS_ERROR_BIND_FAILED, "%s of IOMMU group %d failed: %s",
                                               verb, j->plan->group, msg);
        } else {
                log_info("%s of IOMMU group %d: %s", verb, j->plan->group,
                         j->to_vfio ? "bound to vfio-pci" : "returned to the host drivers");
                if (j->claim_vm)
                        r = manager_record_claim(m, j->plan->group, j->claim_vm, &error);
                else if (!j->to_vfio)
                        r = manager_clear_reset_failures(m, j->plan->group, &error);
                else
                        r = 0;
                r = r < 0 ? sd_bus_reply_method_error(j->call, &error) :
                            sd_bus_reply_method_return(j->call, /* types= */ NULL);
        }
        if (r < 0)
                log_warning_errno(r, "Failed to send reply to %s, ignoring: %m", verb);
        manager_set_status(m);
}

/* A job over every assigned member of the group; call is NULL for a rebind nobody asked for. */
static int bind_job_start(struct gpu *g, const struct iommu_group *group, sd_bus_message *call, bool to_vfio,
                          const char *claim_vm) {
        _cleanup_(bind_job_freep) struct bind_job *j = NULL;
        int r;

        j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        j->manager = g->manager;
        j->to_vfio = to_vfio;
        j->rebind = !call;
        if (claim_vm) {
                j->claim_vm = strdup(claim_vm);
                if (!j->claim_vm)
                        return -ENOMEM;
        }
        r = bind_plan_new(g->iommu_group, &j->plan);
        if (r < 0)
                return r;
        for (size_t i = 0; i < group->n_members; i++) {
                if (!member_is_assigned(&group->members[i]))
                        continue;
                r = bind_plan_add(j->plan, group->members[i].address);
                if (r < 0)
                        return r;
        }
        j->call = sd_bus_message_ref(call); /* NULL stays NULL */
        r = job_start(g->manager->event, bind_job_work, bind_job_done, j);
        if (r < 0)
                return r;
        TAKE_PTR(j); /* bind_job_done() frees it */
        manager_set_group_job(g->manager, g->iommu_group, true);
        return 1;
}

int gpu_start_bind_job(struct gpu *g, sd_bus_message *call, bool to_vfio, const char *claim_vm,
                       sd_bus_error *error) {
        _cleanup_(iommu_group_freep) struct iommu_group *group = NULL;
        int r;

        r = iommu_group_load(g->manager->pacc, g->iommu_group, &group);
        if (r < 0)
                return sd_bus_error_set_errnof(error, -r, "Cannot read IOMMU group %d: %m", g->iommu_group);
        return bind_job_start(g, group, call, to_vfio, claim_vm);
}

int gpu_rebind_claimed(struct gpu *g) {
        _cleanup_(iommu_group_freep) struct iommu_group *group = NULL;
        size_t elsewhere = 0;
        int r;

        if (!g->owner || !g->present || g->iommu_group < 0 || g->job_running ||
            g->rebind_failures >= GPU_REBIND_ATTEMPTS)
                return 0;
        r = iommu_group_load(g->manager->pacc, g->iommu_group, &group);
        if (r < 0)
                return r;
        for (size_t i = 0; i < group->n_members; i++)
                if (member_is_assigned(&group->members[i]) &&
                    !streq_ptr(group->members[i].driver, "vfio-pci"))
                        elsewhere++;
        if (elsewhere == 0)
                return 0;
        log_full(LOG_WARNING, g->address, "GPU %s, claimed by VM %s, is back with %zu function(s) of IOMMU group %d "
                 "on host drivers: binding them to vfio-pci again", g->address, g->owner, elsewhere, g->iommu_group);
        return bind_job_start(g, group, /* call= */ NULL, /* to_vfio= */ true, /* claim_vm= */ NULL);
}

int gpu_prepare(struct gpu *g, sd_bus_message *call, sd_bus_error *error) {
        int r;

        r = gpu_check_actionable(g, error);
        if (r < 0)
                return r;
        if (g->owner) /* claimed groups are on vfio-pci already */
                return sd_bus_reply_method_return(call, /* types= */ NULL);
        r = gpu_check_preparable(g, error);
        if (r < 0)
                return r;
        return gpu_start_bind_job(g, call, /* to_vfio= */ true, /* claim_vm= */ NULL, error);
}

int gpu_return_to_host(struct gpu *g, sd_bus_message *call, sd_bus_error *error) {
        int r;

        r = gpu_check_actionable(g, error);
        if (r < 0)
                return r;
        if (g->owner)
                return sd_bus_error_setf(error, GPUPASS_ERROR_BUSY, "%s is claimed by VM %s; release it first",
                                         g->address, g->owner);
        if (g->iommu_group < 0)
                return sd_bus_error_setf(error, GPUPASS_ERROR_NO_IOMMU, "%s is in no IOMMU group", g->address);
        return gpu_start_bind_job(g, call, /* to_vfio= */ false, /* claim_vm= */ NULL, error);
}

/* Release: reset every assigned member through VFIO (or the kernel's sysfs reset where no VFIO node exists),
 * off the event loop: a reset can take a second or more. */
struct release_job {
        struct manager *manager;
        sd_bus_message *call;
        int group;
        char *vm;
        char **members;
        bool busy;          /* a VMM still holds the group open: nothing done */
        char *failure;      /* the reset failed: the GPU becomes unavailable */
        unsigned n_reset;
};

static int reset_member(int group, const char *address) {
        _cleanup_free_ char *path = NULL;
        int r;

        r = vfio_reset_device(group, address);
        if (r != -ENOENT)
                return r;
        /* No VFIO node: use the kernel's own reset attribute, which exists only when the device has a
         * reset method (pci_reset_function()). */
        if (asprintf(&path, SYSFS_PCI_DEVICES "/%s/reset", address) < 0)
                return -ENOMEM;
        r = write_string_file(path, "1");
        if (r == -ENOENT)
                return 0;
        return r < 0 ? r : 1;
}

static int release_job_work(void *userdata) {
        struct release_job *j = userdata;

        for (char **a = j->members; a && *a; a++) {
                int r = reset_member(j->group, *a);

                if (r == -EBUSY) {
                        j->busy = true;
                        return r;
                }
                if (r < 0) {
                        errno = -r;
                        if (asprintf(&j->failure, "reset of %s failed: %m", *a) < 0)
                                j->failure = NULL;
                        return r;
                }
                j->n_reset += (unsigned) r;
        }
        return 0;
}

static struct release_job *release_job_free(struct release_job *j) {
        if (!j)
                return NULL;
        sd_bus_message_unref(j->call);
        free(j->vm);
        strv_free(j->members);
        free(j->failure);
        return mfree(j);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct release_job *, release_job_free);

/* While the owner's Release runs, its Release again is answered success and its Claim Busy (claim.c). */
static void set_group_releasing(struct manager *m, int group, bool releasing) {
        struct gpu *g;

        FOREACH_GPU_IN_GROUP(g, m, group)
                g->releasing = releasing;
}

static void release_job_done(int result, void *userdata) {
        _cleanup_(release_job_freep) struct release_job *j = userdata;
        struct manager *m = j->manager;
        int r;

        manager_set_group_job(m, j->group, false);
        set_group_releasing(m, j->group, false);
        if (result < 0 && !j->busy && !j->failure) {
                /* A failure before any reset said what failed (out of memory): the errno is all there is. */
                errno = -result;
                if (asprintf(&j->failure, "%m") < 0)
                        j->failure = NULL;
        }
        if (j->busy)
                r = sd_bus_reply_method_errorf(j->call, GPUPASS_ERROR_BUSY,
                                               "IOMMU group %d is still open by another process (is the VM still "
                                               "running?); VM %s keeps its claim", j->group, j->vm);
        else if ((r = manager_end_claim(m, j->group, result < 0 ? strempty(j->failure) : NULL)) < 0)
                r = bus_reply_errorf_errno(j->call, GPUPASS_ERROR_STATE_NOT_SAVED, r,
                                           "Cannot record the release of IOMMU group %d on disk (%m); VM %s "
                                           "keeps its claim", j->group, j->vm);
        else if (result < 0)
                r = sd_bus_reply_method_errorf(j->call, GPUPASS_ERROR_RESET_FAILED,
                                               "Released IOMMU group %d of VM %s, but %s: the GPU is unavailable "
                                               "until it is returned to the host", j->group, j->vm,
                                               strempty(j->failure));
        else {
                log_struct(LOG_INFO, /* gpu= */ NULL, j->vm, /* host= */ NULL,
                           "IOMMU group %d released by VM %s, %u device(s) reset", j->group, j->vm, j->n_reset);
                r = sd_bus_reply_method_return(j->call, /* types= */ NULL);
        }
        if (r < 0)
                log_warning_errno(r, "Failed to reply to Release, ignoring: %m");
        manager_set_status(m);
}

int release_job_start(struct gpu *g, sd_bus_message *call, const char *vm, sd_bus_error *error) {
        struct manager *m = g->manager;
        _cleanup_(release_job_freep) struct release_job *j = NULL;
        int r;

        j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        j->manager = m;
        j->group = g->iommu_group;
        j->vm = strdup(vm);
        if (!j->vm)
                return -ENOMEM;
        r = manager_group_assigned_members(m, g->iommu_group, &j->members);
        if (r < 0)
                return sd_bus_error_set_errnof(error, -r, "Cannot read IOMMU group %d: %m", g->iommu_group);
        j->call = sd_bus_message_ref(call);
        r = job_start(m->event, release_job_work, release_job_done, j);
        if (r < 0)
                return r;
        TAKE_PTR(j); /* release_job_done() frees it */
        manager_set_group_job(m, g->iommu_group, true);
        set_group_releasing(m, g->iommu_group, true);
        return 1;
}
