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

static void bind_job_free(struct bind_job *j) {
        sd_bus_message_unref(j->call);
        bind_plan_free(j->plan);
        free(j->claim_vm);
        free(j);
}

static void bind_job_done(int result, void *userdata) {
        struct bind_job *j = userdata;
        struct manager *m = j->manager;
        const char *verb = j->rebind ? "Re-binding the returned card" : j->claim_vm ? "Claim" :
                           j->to_vfio ? "Prepare" : "ReturnToHost";
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int group = j->plan->group, r;

        manager_set_group_job(m, j->plan->group, false);
        /* The uevents have refreshed most of it already; read the final state before answering, so the
         * reply never races the properties. */
        manager_refresh_group(m, j->plan->group);

        if (j->rebind) {
                /* Functions that came back while this ran were skipped (the group was busy), and a failure is
                 * retried (see gpu_rebind_claimed()): check again either way. */
                unsigned failures = 0;

                for (size_t i = 0; i < m->n_gpus; i++)
                        if (m->gpus[i]->iommu_group == group && m->gpus[i]->owner) {
                                m->gpus[i]->rebind_failures = result < 0 ? m->gpus[i]->rebind_failures + 1 : 0;
                                failures = m->gpus[i]->rebind_failures;
                        }
                if (result >= 0)
                        log_notice("%s: IOMMU group %d is on vfio-pci again", verb, group);
                else if (failures < GPU_REBIND_ATTEMPTS)
                        log_warning("%s of IOMMU group %d to vfio-pci failed, trying again: %s", verb, group,
                                    j->plan->error_message ?: strerror(-result));
                else
                        log_error("%s of IOMMU group %d to vfio-pci failed %u times, it stays on the host drivers: %s",
                                  verb, group, failures, j->plan->error_message ?: strerror(-result));
                manager_rebind_claimed_group(m, group);
                manager_set_status(m);
                bind_job_free(j);
                return;
        }

        if (result < 0) {
                const char *msg = j->plan->error_message ?: strerror(-result);

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
                r = r < 0 ? sd_bus_reply_method_error(j->call, &error) : sd_bus_reply_method_return(j->call, NULL);
        }
        if (r < 0)
                log_warning_errno(r, "Failed to send reply to %s, ignoring: %m", verb);
        sd_bus_error_free(&error);
        manager_set_status(m);
        bind_job_free(j);
}

/* A job over every assigned member of the group; call is NULL for a rebind nobody asked for. */
static int bind_job_start(struct gpu *g, const struct iommu_group *group, sd_bus_message *call, bool to_vfio,
                          const char *claim_vm) {
        struct bind_job *j;
        int r;

        j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        j->manager = g->manager;
        j->to_vfio = to_vfio;
        j->rebind = !call;
        j->plan = calloc(1, sizeof(*j->plan));
        j->claim_vm = claim_vm ? strdup(claim_vm) : NULL;
        if (!j->plan || (claim_vm && !j->claim_vm)) {
                r = -ENOMEM;
                goto fail;
        }
        j->plan->group = g->iommu_group;
        for (size_t i = 0; i < group->n_members; i++) {
                if (!member_is_assigned(&group->members[i]))
                        continue;
                r = bind_plan_add(j->plan, group->members[i].address);
                if (r < 0)
                        goto fail;
        }
        j->call = call ? sd_bus_message_ref(call) : NULL;
        r = job_start(g->manager->event, bind_job_work, bind_job_done, j);
        if (r < 0)
                goto fail;
        manager_set_group_job(g->manager, g->iommu_group, true);
        return 1;
fail:
        bind_job_free(j);
        return r;
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
        return bind_job_start(g, group, NULL, true, NULL);
}

int gpu_prepare(struct gpu *g, sd_bus_message *call, sd_bus_error *error) {
        int r;

        r = gpu_check_actionable(g, error);
        if (r < 0)
                return r;
        if (g->owner)
                return sd_bus_reply_method_return(call, NULL); /* claimed groups are on vfio-pci already */
        r = gpu_check_preparable(g, error);
        if (r < 0)
                return r;
        return gpu_start_bind_job(g, call, true, NULL, error);
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
        return gpu_start_bind_job(g, call, false, NULL, error);
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
                        if (asprintf(&j->failure, "reset of %s failed: %s", *a, strerror(-r)) < 0)
                                j->failure = NULL;
                        return r;
                }
                j->n_reset += (unsigned) r;
        }
        return 0;
}

static void release_job_free(struct release_job *j) {
        sd_bus_message_unref(j->call);
        free(j->vm);
        strv_free(j->members);
        free(j->failure);
        free(j);
}

/* While the owner's Release runs, its Release again is answered success and its Claim Busy (claim.c). */
static void set_group_releasing(struct manager *m, int group, bool releasing) {
        for (size_t i = 0; i < m->n_gpus; i++)
                if (m->gpus[i]->iommu_group == group)
                        m->gpus[i]->releasing = releasing;
}

static void release_job_done(int result, void *userdata) {
        struct release_job *j = userdata;
        struct manager *m = j->manager;
        int r;

        manager_set_group_job(m, j->group, false);
        set_group_releasing(m, j->group, false);
        if (j->busy) {
                r = sd_bus_reply_method_errorf(j->call, GPUPASS_ERROR_BUSY,
                                               "IOMMU group %d is still open by another process (is the VM still "
                                               "running?); VM %s keeps its claim", j->group, j->vm);
                goto finish;
        }
        r = manager_end_claim(m, j->group, result < 0 ? (j->failure ?: strerror(-result)) : NULL);
        if (r < 0)
                r = sd_bus_reply_method_errorf(j->call, GPUPASS_ERROR_STATE_NOT_SAVED,
                                               "Cannot record the release of IOMMU group %d on disk (%s); VM %s "
                                               "keeps its claim", j->group, strerror(-r), j->vm);
        else if (result < 0)
                r = sd_bus_reply_method_errorf(j->call, GPUPASS_ERROR_RESET_FAILED,
                                               "Released IOMMU group %d of VM %s, but %s: the GPU is unavailable "
                                               "until it is returned to the host", j->group, j->vm,
                                               j->failure ?: strerror(-result));
        else {
                log_struct(LOG_INFO, NULL, j->vm, NULL, "IOMMU group %d released by VM %s, %u device(s) reset", j->group, j->vm, j->n_reset);
                r = sd_bus_reply_method_return(j->call, NULL);
        }
finish:
        if (r < 0)
                log_warning_errno(r, "Failed to reply to Release, ignoring: %m");
        manager_set_status(m);
        release_job_free(j);
}

int release_job_start(struct gpu *g, sd_bus_message *call, const char *vm, sd_bus_error *error) {
        struct manager *m = g->manager;
        struct release_job *j;
        int r;

        j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        j->manager = m;
        j->group = g->iommu_group;
        j->vm = strdup(vm);
        if (!j->vm)
                goto oom;
        r = manager_group_assigned_members(m, g->iommu_group, &j->members);
        if (r < 0) {
                release_job_free(j);
                return sd_bus_error_set_errnof(error, -r, "Cannot read IOMMU group %d: %m", g->iommu_group);
        }
        j->call = sd_bus_message_ref(call);
        r = job_start(m->event, release_job_work, release_job_done, j);
        if (r < 0) {
                release_job_free(j);
                return r;
        }
        manager_set_group_job(m, g->iommu_group, true);
        set_group_releasing(m, g->iommu_group, true);
        return 1;
oom:
        release_job_free(j);
        return -ENOMEM;
}
