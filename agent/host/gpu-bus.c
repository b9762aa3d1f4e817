/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "bus-auth.h"
#include "gpupass/bus-names.h"
#include "gpu-bus.h"
#include "gpu.h"
#include "group-job.h"
#include "macro.h"
#include "manager.h"
#include "strv.h"

static int property_get_address(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct gpu *g = userdata;

        return sd_bus_message_append(reply, "s", g->address);
}

static int property_get_serial(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct gpu *g = userdata;
        char buf[PCI_SERIAL_MAX] = "";

        if (g->identity.has_serial)
                pci_serial_format(g->identity.serial, buf);
        return sd_bus_message_append(reply, "s", buf);
}

static int property_get_companions(sd_bus *bus, const char *path, const char *interface, const char *property,
                                   sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct gpu *g = userdata;

        return sd_bus_message_append_strv(reply, g->companions);
}

static int property_get_state(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct gpu *g = userdata;

        return sd_bus_message_append(reply, "s", gpu_state_to_string(g->state));
}

/* D-Bus booleans are 32 bits wide; a C bool cannot be read by offset. */
static int property_get_bool(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "b", (int) *(bool *) userdata);
}

static int method_prepare(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct gpu *g = userdata;
        int r;

        r = bus_check_admin(m, &g->manager->config, error);
        if (r < 0)
                return r;
        if (g->manager->maintenance)
                return sd_bus_error_setf(error, GPUPASS_ERROR_IN_MAINTENANCE,
                                         "The host is in maintenance; %s cannot be prepared now", g->address);
        return gpu_prepare(g, m, error);
}

static int method_return_to_host(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct gpu *g = userdata;
        int r;

        r = bus_check_admin(m, &g->manager->config, error);
        if (r < 0)
                return r;
        return gpu_return_to_host(g, m, error);
}

/* Claim, Release and OpenVfio: the caller check, then the VM argument, then the operation. */
static int gpu_method_with_vm(sd_bus_message *m, struct gpu *g, sd_bus_error *error,
                              int (*operation)(struct gpu *g, sd_bus_message *call, const char *vm,
                                               sd_bus_error *error)) {
        const char *vm;
        int r;

        r = bus_check_admin(m, &g->manager->config, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(m, "s", &vm);
        if (r < 0)
                return r;
        return operation(g, m, vm, error);
}

static int method_claim(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return gpu_method_with_vm(m, userdata, error, gpu_claim);
}

static int method_release(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return gpu_method_with_vm(m, userdata, error, gpu_release);
}

static int method_open_vfio(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return gpu_method_with_vm(m, userdata, error, gpu_open_vfio);
}

static int method_allow_user(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct gpu *g = userdata;
        const char *vm;
        uint32_t uid;
        int r;

        r = bus_check_admin(m, &g->manager->config, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(m, "su", &vm, &uid);
        if (r < 0)
                return r;
        return gpu_allow_user(g, m, vm, (uid_t) uid, error);
}

static int property_get_allowed_uid(sd_bus *bus, const char *path, const char *interface, const char *property,
                                    sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct gpu *g = userdata;

        return sd_bus_message_append(reply, "u", (uint32_t) g->allowed_uid);
}

const sd_bus_vtable gpu_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Address", "s", property_get_address, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("VendorId", "q", NULL, offsetof(struct gpu, identity.vendor_id),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("DeviceId", "q", NULL, offsetof(struct gpu, identity.device_id),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("SubsystemVendorId", "q", NULL, offsetof(struct gpu, identity.subsystem_vendor_id),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("SubsystemDeviceId", "q", NULL, offsetof(struct gpu, identity.subsystem_device_id),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Class", "u", NULL, offsetof(struct gpu, identity.class_code),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Revision", "y", NULL, offsetof(struct gpu, identity.revision),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Model", "s", NULL, offsetof(struct gpu, model), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Mode", "s", NULL, offsetof(struct gpu, mode), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("SerialNumber", "s", property_get_serial, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("IommuGroup", "i", NULL, offsetof(struct gpu, iommu_group),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Companions", "as", property_get_companions, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Driver", "s", NULL, offsetof(struct gpu, driver), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("State", "s", property_get_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Owner", "s", NULL, offsetof(struct gpu, owner), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("NeedsReconfiguration", "b", property_get_bool, offsetof(struct gpu, needs_reconfiguration),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("BootVga", "b", property_get_bool, offsetof(struct gpu, boot_vga),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("NumaNode", "i", NULL, offsetof(struct gpu, numa_node), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Problem", "s", NULL, offsetof(struct gpu, problem), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("PreviousModel", "s", NULL, offsetof(struct gpu, previous_model),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("AllowedUid", "u", property_get_allowed_uid, 0, SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
        SD_BUS_PROPERTY("ResetMethod", "s", NULL, offsetof(struct gpu, reset_method),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("Prepare", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_prepare,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ReturnToHost", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_return_to_host,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Claim", SD_BUS_ARGS("s", vm), SD_BUS_NO_RESULT, method_claim,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Release", SD_BUS_ARGS("s", vm), SD_BUS_NO_RESULT, method_release,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("OpenVfio", SD_BUS_ARGS("s", vm), SD_BUS_RESULT("ah", fds), method_open_vfio,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("AllowUser", SD_BUS_ARGS("s", vm, "u", uid), SD_BUS_NO_RESULT, method_allow_user,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

int gpu_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **ret_found,
                    sd_bus_error *error) {
        struct manager *m = userdata;
        _cleanup_free_ char *address = NULL;
        struct gpu *g;
        int r;

        /* sd-bus asks for every message on a GPU's path, our own PropertiesChanged included: the paths we
         * hand out match as they are; anything else is decoded and normalized. */
        for (size_t i = 0; i < m->n_gpus; i++)
                if (strcmp(m->gpus[i]->object_path, path) == 0) {
                        *ret_found = m->gpus[i];
                        return 1;
                }
        r = sd_bus_path_decode(path, GPUPASS_AGENT_GPU_PREFIX, &address);
        if (r <= 0)
                return r;
        g = manager_find_gpu(m, address);
        if (!g)
                return 0;
        *ret_found = g;
        return 1;
}

int gpu_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***ret_nodes, sd_bus_error *error) {
        struct manager *m = userdata;
        _cleanup_strv_free_ char **nodes = NULL;
        int r;

        for (size_t i = 0; i < m->n_gpus; i++) {
                r = strv_extend(&nodes, m->gpus[i]->object_path);
                if (r < 0)
                        return r;
        }
        *ret_nodes = TAKE_PTR(nodes);
        return 0;
}

void gpu_send_changed_strv(struct gpu *g, char **names) {
        sd_bus *bus = g->manager->bus;

        if (!bus || !names)
                return;
        (void) sd_bus_emit_properties_changed_strv(bus, g->object_path, GPUPASS_AGENT_GPU_IFACE, names);
}

int gpu_append_entry(struct gpu *g, sd_bus_message *reply) {
        char serial[PCI_SERIAL_MAX] = "";
        int r;

        if (g->identity.has_serial)
                pci_serial_format(g->identity.serial, serial);
        r = sd_bus_message_open_container(reply, 'r', "osssssssiiasbbs");
        if (r < 0)
                return r;
        r = sd_bus_message_append(reply, "osssssssii", g->object_path, g->address, g->model ?: "",
                                  g->mode ?: "", gpu_state_to_string(g->state), g->driver ?: "", g->owner ?: "",
                                  serial, (int32_t) g->iommu_group, (int32_t) g->numa_node);
        if (r < 0)
                return r;
        r = sd_bus_message_append_strv(reply, g->companions);
        if (r < 0)
                return r;
        r = sd_bus_message_append(reply, "bbs", (int) g->boot_vga, (int) g->needs_reconfiguration,
                                  g->problem ?: "");
        if (r < 0)
                return r;
        return sd_bus_message_close_container(reply);
}
