/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-id128.h>

#include "bus-auth.h"
#include "bus-disconnect.h"
#include "bus-reply.h"
#include "bus-error.h"
#include "capacity.h"
#include "gpupass/bus-names.h"
#include "config.h"
#include "gpu-bus.h"
#include "gpu.h"
#include "log.h"
#include "macro.h"
#include "manager.h"
#include "pci-address.h"

static int property_get_hostname(sd_bus *bus, const char *path, const char *interface, const char *property,
                                 sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        char name[256] = "";

        (void) gethostname(name, sizeof(name) - 1);
        return sd_bus_message_append(reply, "s", name);
}

static int property_get_machine_id(sd_bus *bus, const char *path, const char *interface, const char *property,
                                   sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        char buf[SD_ID128_STRING_MAX] = "";
        sd_id128_t id;

        if (sd_id128_get_machine(&id) >= 0)
                sd_id128_to_string(id, buf);
        return sd_bus_message_append(reply, "s", buf);
}

/* The host's size from sysfs (what the kernel has online, hotplug included); glibc's figures where sysfs
 * does not say (no memory blocks without memory hotplug). */
static int property_get_cpu_count(sd_bus *bus, const char *path, const char *interface, const char *property,
                                  sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        uint32_t cpus;

        if (capacity_cpus(&cpus) < 0) {
                long n = sysconf(_SC_NPROCESSORS_ONLN);

                cpus = (uint32_t) (n > 0 ? n : 0);
        }
        return sd_bus_message_append(reply, "u", cpus);
}

static int property_get_memory(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        uint64_t mib;

        if (capacity_memory_mib(&mib) < 0) {
                long pages = sysconf(_SC_PHYS_PAGES), page_size = sysconf(_SC_PAGESIZE);

                mib = pages > 0 && page_size > 0 ? (uint64_t) pages * (uint64_t) page_size / (1024 * 1024) : 0;
        }
        return sd_bus_message_append(reply, "t", mib);
}

static int property_get_bool(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "b", (int) *(bool *) userdata);
}

static int append_gpus(sd_bus_message *reply, void *userdata) {
        struct manager *m = userdata;
        struct gpu *g;
        int r;

        FOREACH_GPU(g, m) {
                r = gpu_append_entry(g, reply);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int method_list_gpus(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        return bus_reply_array(call, "(osssssssiiasbbs)", append_gpus, userdata);
}

static int method_get_gpu(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        const char *address;
        struct pci_address a;
        struct gpu *g;
        int r;

        r = sd_bus_message_read(call, "s", &address);
        if (r < 0)
                return r;
        if (pci_address_parse(address, &a) < 0)
                return sd_bus_error_setf(error, GPUPASS_ERROR_INVALID_ARGUMENT,
                                         "'%s' is not a PCI address (expected DDDD:BB:SS.F, e.g. 0000:3b:00.0)",
                                         address);
        g = manager_find_gpu(m, address);
        if (!g)
                return sd_bus_error_setf(error, GPUPASS_ERROR_NOT_FOUND, "No GPU at %s on this host", address);
        return sd_bus_reply_method_return(call, "o", g->object_path);
}

static int method_rescan(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        int r;

        r = bus_check_admin(call, &m->config, error);
        if (r < 0)
                return r;
        r = manager_enumerate(m);
        if (r < 0)
                return sd_bus_error_set_errnof(error, -r, "Rescan failed: %m");
        return sd_bus_reply_method_return(call, /* types= */ NULL);
}

static int method_set_maintenance(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        struct manager *m = userdata;
        int enable, r;

        r = bus_check_admin(call, &m->config, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(call, "b", &enable);
        if (r < 0)
                return r;
        if (m->maintenance != !!enable) {
                m->maintenance = enable;
                r = manager_save_state(m);
                if (r < 0) {
                        m->maintenance = !enable;
                        return bus_error_setf_errno(error, GPUPASS_ERROR_STATE_NOT_SAVED, r,
                                                    "Cannot record maintenance on disk (%m); unchanged");
                }
                if (!enable && m->state_problem) {
                        /* The operator has looked at the claims after a corrupt state file. */
                        m->state_problem = mfree(m->state_problem);
                        (void) sd_bus_emit_properties_changed(m->bus, GPUPASS_AGENT_MANAGER_PATH,
                                                              GPUPASS_AGENT_MANAGER_IFACE, "StateProblem", NULL);
                }
                log_notice("Maintenance %s", enable ? "on: new claims refused" : "off");
                (void) sd_bus_emit_properties_changed(m->bus, GPUPASS_AGENT_MANAGER_PATH,
                                                      GPUPASS_AGENT_MANAGER_IFACE, "Maintenance", NULL);
                manager_set_status(m);
        }
        return sd_bus_reply_method_return(call, /* types= */ NULL);
}

static const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Hostname", "s", property_get_hostname, 0, 0),
        SD_BUS_PROPERTY("MachineId", "s", property_get_machine_id, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("CpuCount", "u", property_get_cpu_count, 0, 0),
        SD_BUS_PROPERTY("MemoryMiB", "t", property_get_memory, 0, 0),
        SD_BUS_PROPERTY("Maintenance", "b", property_get_bool, offsetof(struct manager, maintenance),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("IommuEnabled", "b", property_get_bool, offsetof(struct manager, iommu_enabled),
                        SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Version", "s", NULL, offsetof(struct manager, version), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("StateProblem", "s", NULL, offsetof(struct manager, state_problem),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("AdminGroup", "s", NULL, offsetof(struct manager, config.admin_group),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("ListGpus", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(osssssssiiasbbs)", gpus),
                                method_list_gpus, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetGpu", SD_BUS_ARGS("s", address), SD_BUS_RESULT("o", gpu), method_get_gpu,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Rescan", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_rescan,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SetMaintenance", SD_BUS_ARGS("b", enable), SD_BUS_NO_RESULT, method_set_maintenance,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("IdentityChanged", SD_BUS_ARGS("o", gpu, "s", old_model, "s", new_model), 0),
        SD_BUS_VTABLE_END,
};

int manager_emit_gpu_added(struct manager *m, struct gpu *g) {
        if (!m->bus)
                return 0;
        return sd_bus_emit_object_added(m->bus, g->object_path);
}

int manager_emit_gpu_removed(struct manager *m, struct gpu *g) {
        if (!m->bus)
                return 0;
        return sd_bus_emit_object_removed(m->bus, g->object_path);
}

int manager_bus_setup(struct manager *m) {
        int r;

        r = sd_bus_open_system(&m->bus);
        if (r < 0)
                return log_error_errno(r, "Failed to connect to the system bus: %m");
        r = sd_bus_add_object_manager(m->bus, /* ret_slot= */ NULL, GPUPASS_AGENT_MANAGER_PATH);
        if (r < 0)
                return r;
        r = sd_bus_add_object_vtable(m->bus, /* ret_slot= */ NULL, GPUPASS_AGENT_MANAGER_PATH,
                                     GPUPASS_AGENT_MANAGER_IFACE, manager_vtable, m);
        if (r < 0)
                return r;
        r = sd_bus_add_fallback_vtable(m->bus, /* ret_slot= */ NULL, GPUPASS_AGENT_GPU_PREFIX,
                                       GPUPASS_AGENT_GPU_IFACE, gpu_vtable, gpu_object_find, m);
        if (r < 0)
                return r;
        r = sd_bus_add_node_enumerator(m->bus, /* ret_slot= */ NULL, GPUPASS_AGENT_GPU_PREFIX, gpu_node_enumerator, m);
        if (r < 0)
                return r;
        r = sd_bus_attach_event(m->bus, m->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return r;
        r = bus_exit_on_disconnect(m->bus, m->event);
        if (r < 0)
                return r;
        r = sd_bus_request_name(m->bus, GPUPASS_AGENT_BUS_NAME, /* flags= */ 0);
        if (r < 0)
                return log_error_errno(r, "Failed to acquire bus name %s: %m", GPUPASS_AGENT_BUS_NAME);
        return 0;
}
