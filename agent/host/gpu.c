/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-bus.h>

#include "bind.h"
#include "claim.h"
#include "gpupass/bus-names.h"
#include "gpu-bus.h"
#include "gpu.h"
#include "iommu-group.h"
#include "job.h"
#include "log.h"
#include "macro.h"
#include "manager.h"
#include "pci-access.h"
#include "strv.h"
#include "sysfs-pci.h"

static const char * const gpu_state_table[] = {
        [GPU_STATE_HOST] = "host",
        [GPU_STATE_VFIO] = "vfio",
        [GPU_STATE_CLAIMED] = "claimed",
        [GPU_STATE_MISSING] = "missing",
        [GPU_STATE_UNAVAILABLE] = "unavailable",
};

const char *gpu_state_to_string(enum gpu_state s) {
        return gpu_state_table[s];
}

int gpu_new(struct manager *m, const char *address, struct gpu **ret) {
        struct gpu *g;
        int r;

        g = calloc(1, sizeof(*g));
        if (!g)
                return -ENOMEM;
        g->manager = m;
        g->present = true;
        g->allowed_uid = (uid_t) -1;
        g->iommu_group = -1;
        g->numa_node = -1;
        r = pci_address_parse(address, &g->pci);
        if (r < 0) {
                free(g);
                return r;
        }
        pci_address_format(&g->pci, g->address);
        r = sd_bus_path_encode(GPUPASS_AGENT_GPU_PREFIX, g->address, &g->object_path);
        if (r < 0) {
                free(g);
                return r;
        }
        *ret = g;
        return 0;
}

struct gpu *gpu_free(struct gpu *g) {
        if (!g)
                return NULL;
        free(g->object_path);
        free(g->model);
        strv_free(g->companions);
        free(g->driver);
        free(g->reset_method);
        free(g->problem);
        free(g->owner);
        free(g->previous_model);
        free(g->reset_failure);
        iommu_group_free(g->group);
        free(g);
        return NULL;
}

/* What the group means for this GPU: its companions, whether all assigned members sit on vfio-pci, and
 * the first member that blocks assignment. */
struct group_view {
        char **companions;
        bool all_on_vfio;
        char *blocker; /* "0000:5e:00.1 is bound to host driver igb" */
};

static void group_view_done(struct group_view *v) {
        strv_free(v->companions);
        free(v->blocker);
}

/* The view from members as last read; only their drivers change between two full refreshes. */
static int gpu_group_view(struct gpu *g, const struct iommu_group *group, struct group_view *ret) {
        struct group_view v = { .all_on_vfio = true };
        int r;

        for (size_t i = 0; i < group->n_members; i++) {
                const struct group_member *mb = &group->members[i];

                if (!member_is_assigned(mb))
                        continue;
                if (!mb->driver || strcmp(mb->driver, "vfio-pci") != 0)
                        v.all_on_vfio = false;
                if (mb->role == MEMBER_COMPANION && pci_address_same_slot(&mb->pci, &g->pci)) {
                        r = strv_extend(&v.companions, mb->address);
                        if (r < 0)
                                goto fail;
                }
        }
        r = iommu_group_describe_blockers(group, &v.blocker);
        if (r < 0)
                goto fail;
        *ret = v;
        return 0;
fail:
        group_view_done(&v);
        return r;
}

static bool streq_null(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}

/* A property name for PropertiesChanged. On OOM the signal is incomplete, which is all that can happen:
 * the property values themselves are right. */
static void mark_changed(char ***changed, const char *name) {
        (void) strv_extend(changed, name);
}

/* Replaces *field with value (taking ownership) and records `name` as changed when it differs. */
static int update_string(char **field, char *value, const char *name, char ***changed) {
        if (streq_null(*field, value)) {
                free(value);
                return 0;
        }
        free(*field);
        *field = value;
        mark_changed(changed, name);
        return 0;
}

/* What one refresh read from sysfs; gpu_apply() takes it over. */
struct gpu_reading {
        struct pci_identity identity;
        char *model;
        char *driver;
        int iommu_group;
        bool boot_vga;
        int numa_node;
        char *reset_method;
        struct iommu_group *group; /* NULL when iommu_group < 0 */
};

static void gpu_reading_done(struct gpu_reading *rd) {
        free(rd->model);
        free(rd->driver);
        free(rd->reset_method);
        iommu_group_free(rd->group);
}

/* Derives Problem and State from a reading, stores it and emits PropertiesChanged for what changed. */
static int gpu_apply(struct gpu *g, struct gpu_reading *rd) {
        _cleanup_strv_free_ char **changed = NULL;
        _cleanup_free_ char *problem = NULL;
        struct group_view view = { .all_on_vfio = false };
        const struct pci_identity *id = &rd->identity;
        enum gpu_state state;
        int r;

        if (rd->group) {
                r = gpu_group_view(g, rd->group, &view);
                if (r < 0)
                        return r;
        }

        r = 0;
        if (g->reset_failure)
                r = asprintf(&problem, "reset failed at release (%s); return it to the host to recover",
                             g->reset_failure);
        else if (rd->boot_vga)
                r = asprintf(&problem, "boot VGA device (boot_vga=1): the host console uses it");
        else if (rd->iommu_group < 0)
                r = asprintf(&problem, "no IOMMU group: the IOMMU is off or does not cover this device");
        else if (view.blocker)
                r = asprintf(&problem, "IOMMU group %d not viable: %s", rd->iommu_group, view.blocker);
        if (r < 0) {
                group_view_done(&view);
                return -ENOMEM;
        }

        if (g->owner)
                state = GPU_STATE_CLAIMED;
        else if (problem)
                state = GPU_STATE_UNAVAILABLE;
        else if (view.all_on_vfio)
                state = GPU_STATE_VFIO;
        else
                state = GPU_STATE_HOST;

        if (memcmp(id, &g->identity, sizeof(*id)) != 0) {
                /* Identity changes only when the kernel enumerated the device again (remove + rescan). */
                if (g->identity.vendor_id != id->vendor_id)
                        mark_changed(&changed, "VendorId");
                if (g->identity.device_id != id->device_id)
                        mark_changed(&changed, "DeviceId");
                if (g->identity.subsystem_vendor_id != id->subsystem_vendor_id)
                        mark_changed(&changed, "SubsystemVendorId");
                if (g->identity.subsystem_device_id != id->subsystem_device_id)
                        mark_changed(&changed, "SubsystemDeviceId");
                if (g->identity.class_code != id->class_code) {
                        mark_changed(&changed, "Class");
                        mark_changed(&changed, "Mode");
                }
                if (g->identity.revision != id->revision)
                        mark_changed(&changed, "Revision");
                if (g->identity.has_serial != id->has_serial || g->identity.serial != id->serial)
                        mark_changed(&changed, "SerialNumber");
                g->identity = *id;
                g->mode = gpu_mode_from_class(id->class_code);
        }
        (void) update_string(&g->model, TAKE_PTR(rd->model), "Model", &changed);
        (void) update_string(&g->driver, TAKE_PTR(rd->driver), "Driver", &changed);
        (void) update_string(&g->reset_method, TAKE_PTR(rd->reset_method), "ResetMethod", &changed);
        (void) update_string(&g->problem, TAKE_PTR(problem), "Problem", &changed);
        if (g->iommu_group != rd->iommu_group) {
                g->iommu_group = rd->iommu_group;
                mark_changed(&changed, "IommuGroup");
        }
        if (!strv_equal(g->companions, view.companions)) {
                strv_free(g->companions);
                g->companions = TAKE_PTR(view.companions);
                mark_changed(&changed, "Companions");
        }
        group_view_done(&view);
        if (g->boot_vga != rd->boot_vga) {
                g->boot_vga = rd->boot_vga;
                mark_changed(&changed, "BootVga");
        }
        g->numa_node = rd->numa_node;
        if (g->state != state) {
                g->state = state;
                mark_changed(&changed, "State");
        }
        if (rd->group != g->group) {
                iommu_group_free(g->group);
                g->group = TAKE_PTR(rd->group);
        }

        if (g->object_path && changed)
                gpu_emit_properties_changed(g, changed);
        return 0;
}

int gpu_refresh(struct gpu *g) {
        struct manager *m = g->manager;
        _cleanup_strv_free_ char **changed = NULL;
        _cleanup_free_ char *problem = NULL;
        struct gpu_reading rd = { .iommu_group = -1 };
        int r;

        if (!g->present) {
                /* Nothing to read: keep the last identity, say why it is listed. */
                r = asprintf(&problem, "claimed by VM %s but missing from the host", g->owner ?: "-");
                if (r < 0)
                        return -ENOMEM;
                (void) update_string(&g->problem, TAKE_PTR(problem), "Problem", &changed);
                if (g->state != GPU_STATE_MISSING) {
                        g->state = GPU_STATE_MISSING;
                        mark_changed(&changed, "State");
                }
                g->group = iommu_group_free(g->group); /* the members are read again when it is back */
                if (g->object_path && changed)
                        gpu_emit_properties_changed(g, changed);
                return 0;
        }

        r = pci_read_identity(m->pacc, &g->pci, &rd.identity, NULL);
        if (r < 0)
                return r;
        /* The name depends on vendor, device and class only: pci.ids is read again only when those
         * change (a reflash), since the agent does not keep its parsed list between events. */
        if (g->model && rd.identity.vendor_id == g->identity.vendor_id &&
            rd.identity.device_id == g->identity.device_id && rd.identity.class_code == g->identity.class_code)
                rd.model = strdup(g->model);
        else
                rd.model = pci_model_name(m->pacc, &rd.identity);
        if (!rd.model)
                return -ENOMEM;
        r = sysfs_pci_read_driver(g->address, &rd.driver);
        if (r >= 0)
                r = pci_device_iommu_group(g->address, &rd.iommu_group);
        if (r == -ENOENT) {
                rd.iommu_group = -1;
                r = 0;
        }
        if (r >= 0 && rd.iommu_group >= 0)
                r = iommu_group_load(m->pacc, rd.iommu_group, &rd.group);
        if (r >= 0)
                r = sysfs_pci_read_reset_method(g->address, &rd.reset_method);
        if (r < 0) {
                gpu_reading_done(&rd);
                return r;
        }
        rd.boot_vga = sysfs_pci_is_boot_vga(g->address);
        rd.numa_node = sysfs_pci_numa_node(g->address);
        r = gpu_apply(g, &rd);
        gpu_reading_done(&rd);
        return r;
}

/*
 * A bind or unbind changes one driver link and nothing else: identity, name, IOMMU group, boot_vga and NUMA
 * node stay as the device was enumerated, and so do the group's members and their roles (a member that comes
 * or goes sends add or remove, which take gpu_refresh()). So only the driver links of the GPU and of its
 * group's members are read again; Problem and State follow from them. This is the path of every uevent
 * of Prepare and ReturnToHost, and of an operator's own bind/unbind (tests/bench signal-bench).
 */
int gpu_refresh_drivers(struct gpu *g) {
        struct gpu_reading rd = { .iommu_group = g->iommu_group };
        bool found = false;
        int r = 0;

        if (!g->present || !g->model || (g->iommu_group >= 0 && !g->group))
                return gpu_refresh(g); /* never fully read, or read while it was missing */

        rd.identity = g->identity;
        rd.boot_vga = g->boot_vga;
        rd.numa_node = g->numa_node;
        rd.group = g->group; /* updated in place; gpu_apply() keeps it */
        rd.model = strdup(g->model);
        if (!rd.model)
                return -ENOMEM;
        if (g->reset_method && !(rd.reset_method = strdup(g->reset_method))) {
                free(rd.model);
                return -ENOMEM;
        }
        for (size_t i = 0; rd.group && i < rd.group->n_members && r >= 0; i++) {
                struct group_member *mb = &rd.group->members[i];
                char *driver = NULL;

                r = sysfs_pci_read_driver(mb->address, &driver);
                if (r < 0)
                        break;
                free(mb->driver);
                mb->driver = driver;
                if (strcmp(mb->address, g->address) == 0) {
                        found = true;
                        rd.driver = driver ? strdup(driver) : NULL;
                        if (driver && !rd.driver)
                                r = -ENOMEM;
                }
        }
        if (r >= 0 && !found)
                r = sysfs_pci_read_driver(g->address, &rd.driver);
        if (r >= 0)
                r = gpu_apply(g, &rd);
        rd.group = NULL; /* g's */
        gpu_reading_done(&rd);
        return r;
}

bool gpu_group_has_member(const struct gpu *g, const char *address) {
        if (!g->group)
                return false;
        for (size_t i = 0; i < g->group->n_members; i++)
                if (strcmp(g->group->members[i].address, address) == 0)
                        return true;
        return false;
}

int gpu_check_preparable(struct gpu *g, sd_bus_error *error) {
        _cleanup_(iommu_group_freep) struct iommu_group *group = NULL;
        _cleanup_free_ char *blockers = NULL;
        int r;

        if (g->reset_failure)
                return sd_bus_error_setf(error, GPUPASS_ERROR_RESET_FAILED,
                                         "%s is unavailable: its reset failed at the last release (%s); return it "
                                         "to the host to recover", g->address, g->reset_failure);
        if (g->boot_vga)
                return sd_bus_error_setf(error, GPUPASS_ERROR_BOOT_DEVICE,
                                         "%s is the boot VGA device (boot_vga=1); the host console needs it",
                                         g->address);
        if (g->iommu_group < 0)
                return sd_bus_error_setf(error, GPUPASS_ERROR_NO_IOMMU,
                                         "%s is in no IOMMU group; enable the IOMMU (intel_iommu=on or "
                                         "amd_iommu=on) to pass it through", g->address);

        /* Judge viability from the members' driver links as they are now, not from the cache. */
        r = iommu_group_load(g->manager->pacc, g->iommu_group, &group);
        if (r < 0)
                return sd_bus_error_set_errnof(error, -r, "Cannot read IOMMU group %d of %s: %m", g->iommu_group,
                                               g->address);
        for (size_t i = 0; i < group->n_members; i++) {
                const struct group_member *mb = &group->members[i];

                if (mb->role == MEMBER_GPU && sysfs_pci_is_boot_vga(mb->address))
                        return sd_bus_error_setf(error, GPUPASS_ERROR_BOOT_DEVICE,
                                                 "IOMMU group %d of %s holds the boot VGA device %s",
                                                 group->number, g->address, mb->address);
        }
        r = iommu_group_describe_blockers(group, &blockers);
        if (r < 0)
                return r;
        if (r > 0)
                return sd_bus_error_setf(error, GPUPASS_ERROR_GROUP_NOT_VIABLE,
                                         "IOMMU group %d of %s is not viable: %s; unbind them or bind them to vfio-pci "
                                         "first", group->number, g->address, blockers);
        return 0;
}

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
                    !(group->members[i].driver && strcmp(group->members[i].driver, "vfio-pci") == 0))
                        elsewhere++;
        if (elsewhere == 0)
                return 0;
        log_full(LOG_WARNING, g->address, "GPU %s, claimed by VM %s, is back with %zu function(s) of IOMMU group %d "
                 "on host drivers: binding them to vfio-pci again", g->address, g->owner, elsewhere, g->iommu_group);
        return bind_job_start(g, group, NULL, true, NULL);
}

/* Refusals common to every call that acts on a GPU, before its own checks. */
int gpu_check_actionable(struct gpu *g, sd_bus_error *error) {
        if (!g->present)
                return sd_bus_error_setf(error, GPUPASS_ERROR_NOT_FOUND,
                                         "GPU %s is missing from the host (claimed by VM %s)", g->address,
                                         g->owner ?: "none");
        if (g->job_running)
                return sd_bus_error_setf(error, GPUPASS_ERROR_BUSY,
                                         "An operation on IOMMU group %d of %s is in progress", g->iommu_group,
                                         g->address);
        return 0;
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

int gpu_group_peers(struct gpu *g, struct gpu ***ret) {
        struct manager *m = g->manager;
        struct gpu **peers;
        size_t n = 0;

        peers = calloc(m->n_gpus + 1, sizeof(*peers));
        if (!peers)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_gpus; i++)
                if (m->gpus[i] == g || (g->iommu_group >= 0 && m->gpus[i]->iommu_group == g->iommu_group))
                        peers[n++] = m->gpus[i];
        *ret = peers;
        return 0;
}

void gpu_set_string(struct gpu *g, char **field, const char *value, const char *property) {
        char *names[] = { (char *) property, NULL };
        char *copy = NULL;

        if (streq_null(*field, value))
                return;
        if (value) {
                copy = strdup(value);
                if (!copy)
                        return; /* keeps the old value: never lose a claim to OOM */
        }
        free(*field);
        *field = copy;
        gpu_emit_properties_changed(g, names);
}

void gpu_set_owner(struct gpu *g, const char *vm) {
        gpu_set_string(g, &g->owner, vm, "Owner");
        (void) gpu_refresh(g); /* State follows */
}

void gpu_set_needs_reconfiguration(struct gpu *g, bool b) {
        char *names[] = { (char *) "NeedsReconfiguration", NULL };

        if (g->needs_reconfiguration == b)
                return;
        g->needs_reconfiguration = b;
        gpu_emit_properties_changed(g, names);
}
