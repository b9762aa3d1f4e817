/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "clusterd.h"
#include "bus/cluster-objects.h"
#include "gpupass/bus-names.h"
#include "link/hostlink.h"
#include "bus-caller.h"
#include "bus-disconnect.h"
#include "bus-reply.h"
#include "log.h"
#include "macro.h"
#include "registry/vm-spec.h"
#include "registry/vmstore.h"

static int append_hosts(sd_bus_message *reply, void *userdata) {
        struct clusterd *c = userdata;
        int r = 0;

        for (size_t i = 0; r >= 0 && i < c->n_hosts; i++) {
                struct hostlink *l = c->hosts[i];

                r = sd_bus_message_append(reply, "(ssssutu)", l->name, l->configured_address,
                                          hostlink_state_to_string(l), l->state == LINK_UNREACHABLE ? l->error ?: "" : "",
                                          l->cpus, l->memory_mib, (uint32_t) l->n_gpus);
        }
        return r;
}

static int method_list_hosts(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        return bus_reply_array(call, "(ssssutu)", append_hosts, userdata);
}

static int append_gpus(sd_bus_message *reply, void *userdata) {
        struct clusterd *c = userdata;
        int r = 0;

        for (size_t i = 0; r >= 0 && i < c->n_hosts; i++) {
                struct hostlink *l = c->hosts[i];

                for (size_t j = 0; r >= 0 && j < l->n_gpus; j++)
                        r = cluster_gpu_append(reply, l, l->gpus[j]);
        }
        return r;
}

static int method_list_gpus(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        return bus_reply_array(call, "(sssssssbas)", append_gpus, userdata);
}

int clusterd_check_admin(struct clusterd *c, sd_bus_message *m, sd_bus_error *error) {
        return bus_check_caller(m, c->admin_gid_valid, c->admin_gid, c->config.admin_group, "the cluster", error);
}

struct hostlink *clusterd_find_host(struct clusterd *c, const char *name, size_t *ret_index) {
        for (size_t i = 0; i < c->n_hosts; i++)
                if (strcmp(c->hosts[i]->name, name) == 0) {
                        if (ret_index)
                                *ret_index = i;
                        return c->hosts[i];
                }
        return NULL;
}

bool clusterd_is_host(const char *name, void *userdata) {
        struct clusterd *c = userdata;

        for (size_t i = 0; i < c->config.n_hosts; i++)
                if (strcmp(c->config.hosts[i].name, name) == 0)
                        return true;
        return false;
}

int clusterd_spec_error(int r, const char *why, sd_bus_error *error) {
        if (r == -ENOMEM || !why)
                return -ENOMEM;
        return sd_bus_error_setf(error, r == -ENOENT ? GPUPASS_ERROR_NOT_FOUND : GPUPASS_ERROR_INVALID_ARGUMENT,
                                 "%s", why);
}

int clusterd_lookup_vm(struct clusterd *c, const char *vm, struct vm_record *ret, sd_bus_error *error) {
        int r;

        /* UUID-shaped (names cannot be): a UUID or an error saying what is wrong with it. */
        if (uuid_shaped(vm) && strspn(vm, "0123456789abcdefABCDEF-") != 36)
                return sd_bus_error_setf(error, GPUPASS_ERROR_INVALID_ARGUMENT,
                                         "'%s' is not a valid UUID: only hexadecimal digits between the dashes", vm);
        r = vmstore_get(c->db, vm, ret);

        if (r == -ENOENT)
                return sd_bus_error_setf(error, GPUPASS_ERROR_NOT_FOUND, "No VM '%s' in the registry", vm);
        if (r < 0)
                return sd_bus_error_set_errnof(error, -r, "Reading the VM registry failed: %m");
        return 0;
}

int clusterd_vm_from_call(struct clusterd *c, sd_bus_message *call, bool admin, struct vm_record *ret,
                          sd_bus_error *error) {
        const char *vm;
        int r;

        if (admin) {
                r = clusterd_check_admin(c, call, error);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_read(call, "s", &vm);
        if (r < 0)
                return r;
        return clusterd_lookup_vm(c, vm, ret, error);
}

static const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("AdminGroup", "s", NULL, offsetof(struct clusterd, config.admin_group),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("ListHosts", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(ssssutu)", hosts), method_list_hosts,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListGpus", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(sssssssbas)", gpus), method_list_gpus,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

static const sd_bus_vtable * const manager_tables[] = {
        manager_vtable, vm_registry_vtable, power_vtable, vm_limits_vtable, maintenance_vtable, vm_runtime_vtable,
};

int clusterd_bus_setup(struct clusterd *c) {
        int r;

        r = sd_bus_open_system(&c->bus);
        if (r < 0)
                return log_error_errno(r, "Failed to connect to the system bus: %m");
        r = sd_bus_add_object_manager(c->bus, NULL, GPUPASS_CLUSTER_MANAGER_PATH);
        if (r < 0)
                return r;
        /* One interface, its methods in one table per file that implements them. */
        for (size_t i = 0; i < ELEMENTSOF(manager_tables); i++) {
                r = sd_bus_add_object_vtable(c->bus, NULL, GPUPASS_CLUSTER_MANAGER_PATH,
                                             GPUPASS_CLUSTER_MANAGER_IFACE, manager_tables[i], c);
                if (r < 0)
                        return r;
        }
        r = cluster_objects_bus_setup(c);
        if (r < 0)
                return r;
        r = sd_bus_attach_event(c->bus, c->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return r;
        r = bus_exit_on_disconnect(c->bus, c->event);
        if (r < 0)
                return r;
        r = sd_bus_request_name(c->bus, GPUPASS_CLUSTER_BUS_NAME, 0);
        if (r < 0)
                return log_error_errno(r, "Failed to acquire %s: %m", GPUPASS_CLUSTER_BUS_NAME);
        return 0;
}
