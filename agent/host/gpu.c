/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpupass/bus-names.h"
#include "gpu-bus.h"
#include "gpu.h"
#include "iommu-group.h"
#include "macro.h"
#include "manager.h"
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
        _cleanup_(gpu_freep) struct gpu *g = NULL;
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
        if (r < 0)
                return r;
        pci_address_format(&g->pci, g->address);
        r = sd_bus_path_encode(GPUPASS_AGENT_GPU_PREFIX, g->address, &g->object_path);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(g);
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
        _cleanup_(group_view_done) struct group_view v = { .all_on_vfio = true };
        int r;

        for (size_t i = 0; i < group->n_members; i++) {
                const struct group_member *mb = &group->members[i];

                if (!member_is_assigned(mb))
                        continue;
                if (!streq_ptr(mb->driver, "vfio-pci"))
                        v.all_on_vfio = false;
                if (mb->role == MEMBER_COMPANION && pci_address_same_slot(&mb->pci, &g->pci)) {
                        r = strv_extend(&v.companions, mb->address);
                        if (r < 0)
                                return r;
                }
        }
        r = iommu_group_describe_blockers(group, &v.blocker);
        if (r < 0)
                return r;
        *ret = v;
        v = (struct group_view) {}; /* handed over */
        return 0;
}

/* A property name for PropertiesChanged. On OOM the signal is incomplete, which is all that can happen:
 * the property values themselves are right. */
static void mark_changed(char ***changed, const char *name) {
        (void) strv_extend(changed, name);
}

/* Replaces *field with value (taking ownership) and records `name` as changed when it differs. */
static int update_string(char **field, char *value, const char *name, char ***changed) {
        if (streq_ptr(*field, value)) {
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
        _cleanup_(group_view_done) struct group_view view = { .all_on_vfio = false };
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
        if (r < 0)
                return -ENOMEM;

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
                gpu_send_changed_strv(g, changed);
        return 0;
}

int gpu_refresh(struct gpu *g) {
        struct manager *m = g->manager;
        _cleanup_strv_free_ char **changed = NULL;
        _cleanup_free_ char *problem = NULL;
        _cleanup_(gpu_reading_done) struct gpu_reading rd = { .iommu_group = -1 };
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
                        gpu_send_changed_strv(g, changed);
                return 0;
        }

        r = pci_read_identity(m->pacc, &g->pci, &rd.identity, /* ret_header_type= */ NULL);
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
        if (r < 0)
                return r;
        rd.boot_vga = sysfs_pci_is_boot_vga(g->address);
        rd.numa_node = sysfs_pci_numa_node(g->address);
        return gpu_apply(g, &rd);
}

/*
 * A bind or unbind changes one driver link and nothing else: identity, name, IOMMU group, boot_vga and NUMA
 * node stay as the device was enumerated, and so do the group's members and their roles (a member that comes
 * or goes sends add or remove, which take gpu_refresh()). So only the driver links of the GPU and of its
 * group's members are read again; Problem and State follow from them. This is the path of every uevent
 * of Prepare and ReturnToHost, and of an operator's own bind/unbind (tests/bench signal-bench).
 */
int gpu_refresh_drivers(struct gpu *g) {
        _cleanup_(gpu_reading_done) struct gpu_reading rd = { .iommu_group = g->iommu_group };
        struct iommu_group *group = g->group; /* updated in place; gpu_apply() keeps it */
        bool found = false;
        int r = 0;

        if (!g->present || !g->model || (g->iommu_group >= 0 && !g->group))
                return gpu_refresh(g); /* never fully read, or read while it was missing */

        rd.identity = g->identity;
        rd.boot_vga = g->boot_vga;
        rd.numa_node = g->numa_node;
        rd.model = strdup(g->model);
        if (!rd.model)
                return -ENOMEM;
        if (g->reset_method && !(rd.reset_method = strdup(g->reset_method)))
                return -ENOMEM;
        for (size_t i = 0; group && i < group->n_members && r >= 0; i++) {
                struct group_member *mb = &group->members[i];
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
        if (r < 0)
                return r;
        rd.group = group;
        r = gpu_apply(g, &rd);
        rd.group = NULL; /* g's */
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


void gpu_set_string(struct gpu *g, char **field, const char *value, const char *property) {
        char *copy = NULL;

        if (streq_ptr(*field, value))
                return;
        if (value) {
                copy = strdup(value);
                if (!copy)
                        return; /* keeps the old value: never lose a claim to OOM */
        }
        free(*field);
        *field = copy;
        gpu_send_changed(g, property);
}

void gpu_set_owner(struct gpu *g, const char *vm) {
        gpu_set_string(g, &g->owner, vm, "Owner");
        (void) gpu_refresh(g); /* State follows */
}

void gpu_set_needs_reconfiguration(struct gpu *g, bool b) {
        if (g->needs_reconfiguration == b)
                return;
        g->needs_reconfiguration = b;
        gpu_send_changed(g, "NeedsReconfiguration");
}
