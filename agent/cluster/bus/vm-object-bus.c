/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * org.gpupass.cluster1.Vm: one read-only object per VM of the registry. The registry is the only copy of
 * a VM (SQLite, not memory), so the object's find callback reads the record into the aggregator's one
 * VM slot and the getters read that slot: sd-bus calls find for an object and then its getters before it
 * looks at another object, and everything runs on one thread.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "clusterd.h"
#include "lifecycle/vm-runtime.h"
#include "bus/cluster-objects.h"
#include "gpupass/bus-names.h"
#include "macro.h"
#include "strv.h"
#include "registry/vmstore.h"

static int property_get_uuid(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct vm_record *v = userdata;

        return sd_bus_message_append(reply, "s", v->uuid);
}

static int property_get_power(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct vm_record *v = userdata;

        return sd_bus_message_append(reply, "s", vm_power_to_string(v->power));
}

/* The registry keeps lists comma-separated; on the bus they are arrays. */
static int append_comma_list(sd_bus_message *reply, const char *list) {
        int r;

        r = sd_bus_message_open_container(reply, 'a', "s");
        for (const char *p = list; r >= 0 && p && *p;) {
                size_t n = strcspn(p, ",");
                _cleanup_free_ char *item = strndup(p, n);

                r = item ? sd_bus_message_append(reply, "s", item) : -ENOMEM;
                p = p[n] ? p + n + 1 : NULL;
        }
        if (r < 0)
                return r;
        return sd_bus_message_close_container(reply);
}

static int property_get_list(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct vm_record *v = userdata;

        return append_comma_list(reply, strcmp(property, "Affinity") == 0 ? v->affinity : v->held);
}

static bool needs_reconfiguration(const struct vm_record *v) {
        _cleanup_free_ char *model = vm_flag_get(v->flags, "reconfigure");

        return model != NULL;
}

static int property_get_needs_reconfiguration(sd_bus *bus, const char *path, const char *interface,
                                              const char *property, sd_bus_message *reply, void *userdata,
                                              sd_bus_error *error) {
        return sd_bus_message_append(reply, "b", (int) needs_reconfiguration(userdata));
}

static int property_get_runtime_state(sd_bus *bus, const char *path, const char *interface, const char *property,
                                      sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        /* The getters see the VM slot (vm_object_find); the runtime is the aggregator's around it. */
        struct clusterd *c = (struct clusterd *) ((char *) userdata - offsetof(struct clusterd, vm_slot));

        return sd_bus_message_append(reply, "s", vm_runtime_state(c, userdata));
}

const sd_bus_vtable vm_object_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Uuid", "s", property_get_uuid, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        /* No call renames a VM. */
        SD_BUS_PROPERTY("Name", "s", NULL, offsetof(struct vm_record, name), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Vcpus", "u", NULL, offsetof(struct vm_record, vcpus), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("MemoryMiB", "t", NULL, offsetof(struct vm_record, memory_mib),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("GpuRequests", "s", NULL, offsetof(struct vm_record, gpus),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Affinity", "as", property_get_list, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Power", "s", property_get_power, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Host", "s", NULL, offsetof(struct vm_record, host), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Gpus", "as", property_get_list, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Flags", "s", NULL, offsetof(struct vm_record, flags), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("NeedsReconfiguration", "b", property_get_needs_reconfiguration, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("RuntimeState", "s", property_get_runtime_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_VTABLE_END,
};

int vm_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **ret_found,
                   sd_bus_error *error) {
        struct clusterd *c = userdata;
        _cleanup_free_ char *uuid = NULL;
        struct vm_record v;
        int r;

        r = sd_bus_path_decode(path, GPUPASS_CLUSTER_VM_PREFIX, &uuid);
        if (r <= 0)
                return r;
        /* An object is at its UUID only, not at its name. */
        r = vmstore_get_by_uuid(c->db, uuid, &v);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        vm_record_done(&c->vm_slot);
        c->vm_slot = v;
        *ret_found = &c->vm_slot;
        return 1;
}

static int add_node(const struct vm_record *v, void *userdata) {
        _cleanup_free_ char *path = NULL;
        int r;

        r = sd_bus_path_encode(GPUPASS_CLUSTER_VM_PREFIX, v->uuid, &path);
        if (r < 0)
                return r;
        return strv_consume(userdata, TAKE_PTR(path));
}

/* Whether the VM objects lie under path (path is "/", the prefix, or one of its ancestors). */
static bool path_above_vms(const char *path) {
        size_t n = strlen(path);

        return strcmp(path, "/") == 0 || (strncmp(GPUPASS_CLUSTER_VM_PREFIX, path, n) == 0 &&
                                          (GPUPASS_CLUSTER_VM_PREFIX[n] == '/' || GPUPASS_CLUSTER_VM_PREFIX[n] == '\0'));
}

int vm_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***ret_nodes, sd_bus_error *error) {
        struct clusterd *c = userdata;
        _cleanup_strv_free_ char **nodes = NULL;
        int r;

        /* sd-bus asks for the children of the path being introspected: a VM's object has none. Without
         * this, each VM's Introspect (busctl tree) read the whole registry: quadratic in VMs. */
        if (!path_above_vms(path)) {
                *ret_nodes = NULL;
                return 0;
        }
        r = vmstore_foreach(c->db, add_node, &nodes);
        if (r < 0)
                return r;
        *ret_nodes = TAKE_PTR(nodes);
        return 0;
}

void vm_object_emit(struct clusterd *c, const struct vm_record *old, const struct vm_record *new) {
        _cleanup_free_ char *path = NULL;
        const char *names[13];
        size_t n = 0;

        if (!c->bus || sd_bus_path_encode(GPUPASS_CLUSTER_VM_PREFIX, (new ?: old)->uuid, &path) < 0)
                return;
        if (!old) {
                (void) sd_bus_emit_interfaces_added(c->bus, path, GPUPASS_CLUSTER_VM_IFACE, NULL);
                return;
        }
        if (!new) {
                (void) sd_bus_emit_interfaces_removed(c->bus, path, GPUPASS_CLUSTER_VM_IFACE, NULL);
                return;
        }
        if (old->vcpus != new->vcpus)
                names[n++] = "Vcpus";
        if (old->memory_mib != new->memory_mib)
                names[n++] = "MemoryMiB";
        if (!streq_ptr(strempty(old->gpus), strempty(new->gpus)))
                names[n++] = "GpuRequests";
        if (!streq_ptr(strempty(old->affinity), strempty(new->affinity)))
                names[n++] = "Affinity";
        if (old->power != new->power)
                names[n++] = "Power";
        if (!streq_ptr(strempty(old->host), strempty(new->host)))
                names[n++] = "Host";
        /* The domain's state is libvirt's, not the record's: it goes with a change of host (another
         * runtime, another value) or of power on a host with a runtime (a reconcile started or stopped
         * it; its events are not announced on their own then: clusterd-runtime.c). */
        if (!streq_ptr(vm_runtime_state(c, old), vm_runtime_state(c, new)) ||
            (old->power != new->power && vm_runtime_link(c, new->host)))
                names[n++] = "RuntimeState";
        if (!streq_ptr(strempty(old->held), strempty(new->held)))
                names[n++] = "Gpus";
        if (!streq_ptr(strempty(old->flags), strempty(new->flags)))
                names[n++] = "Flags";
        if (needs_reconfiguration(old) != needs_reconfiguration(new))
                names[n++] = "NeedsReconfiguration";
        names[n] = NULL;
        if (n > 0)
                (void) sd_bus_emit_properties_changed_strv(c->bus, path, GPUPASS_CLUSTER_VM_IFACE, (char **) names);
}

static int emit_runtime_state(const struct vm_record *v, void *userdata) {
        struct clusterd *c = ((void **) userdata)[0];
        const char *host = ((void **) userdata)[1];
        _cleanup_free_ char *path = NULL;

        if (strcmp(v->host, host) != 0 || sd_bus_path_encode(GPUPASS_CLUSTER_VM_PREFIX, v->uuid, &path) < 0)
                return 0;
        (void) sd_bus_emit_properties_changed(c->bus, path, GPUPASS_CLUSTER_VM_IFACE, "RuntimeState", NULL);
        return 0;
}

void vm_objects_runtime_changed(struct clusterd *c, const char *host, const char *uuid) {
        _cleanup_(vm_record_done) struct vm_record v = {};

        if (!c->bus)
                return;
        if (!uuid) {
                (void) vmstore_foreach(c->db, emit_runtime_state, (void *[]) { c, (void *) host });
                return;
        }
        if (vmstore_get_by_uuid(c->db, uuid, &v) >= 0)
                (void) emit_runtime_state(&v, (void *[]) { c, (void *) host });
}
