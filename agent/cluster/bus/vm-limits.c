/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The limitations of GPU pass-through, enforced with named errors that give the reason:
 * no live migration, no pause/resume, no memory hot add, no console for a VM with GPUs (it works again once
 * its GPUs are removed); resources and affinity of a VM with GPUs change while it is off.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clusterd.h"
#include "gpupass/bus-names.h"
#include "macro.h"
#include "strv.h"
#include "registry/vm-spec.h"
#include "registry/vmstore.h"

static bool vm_has_gpus(const struct vm_record *v) {
        return v->gpus && v->gpus[0];
}

static int refuse_with_gpu(struct vm_record *v, const char *what, const char *why, sd_bus_error *error) {
        return sd_bus_error_setf(error, GPUPASS_ERROR_NOT_SUPPORTED_WITH_GPU, "%s of VM %s is not supported: %s", what,
                                 v->name, why);
}

/* Migrate, Pause and Resume have no implementation without GPUs either in this project: the aggregator
 * places and powers VMs; moving or pausing a VM without GPUs belongs to the VM runtime. Say which. */
static int limited_operation(sd_bus_message *call, void *userdata, sd_bus_error *error, const char *what,
                             const char *why) {
        _cleanup_(vm_record_done) struct vm_record v = {};
        int r;

        r = clusterd_vm_from_call(userdata, call, true, &v, error);
        if (r < 0)
                return r;
        if (vm_has_gpus(&v))
                return refuse_with_gpu(&v, what, why, error);
        return sd_bus_error_setf(error, "org.freedesktop.DBus.Error.NotSupported",
                                 "%s of VM %s (no GPUs) is done by the VM runtime on its host, not by gpupass", what,
                                 v.name);
}

static int method_migrate(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        return limited_operation(call, userdata, error, "Live migration",
                                 "a passed-through GPU's state cannot be moved to another host; power the VM off and "
                                 "on again (it is placed anew)");
}

static int method_pause(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        return limited_operation(call, userdata, error, "Pause",
                                 "VMs with GPU pass-through cannot be paused and resumed");
}

static int method_resume(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        return limited_operation(call, userdata, error, "Resume",
                                 "VMs with GPU pass-through cannot be paused and resumed");
}

static int method_get_console(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        _cleanup_(vm_record_done) struct vm_record v = {};
        int r;

        r = clusterd_vm_from_call(userdata, call, false, &v, error);
        if (r < 0)
                return r;
        if (vm_has_gpus(&v))
                return refuse_with_gpu(&v, "The console", "a VM with passed-through GPUs has no console (its display "
                                       "is the GPU); remove its GPUs to get the console back", error);
        /* A VM without GPUs: the console is the VM runtime's; name where to find it. */
        return sd_bus_reply_method_return(call, "s", v.power == VM_POWER_ON ? v.host : "");
}

static int method_set_vm_resources(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        struct clusterd *c = userdata;
        _cleanup_(vm_record_done) struct vm_record v = {};
        _cleanup_free_ char *why = NULL;
        const char *vm;
        uint32_t vcpus;
        uint64_t memory;
        int r;

        r = clusterd_check_admin(c, call, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(call, "sut", &vm, &vcpus, &memory);
        if (r < 0)
                return r;
        r = vm_resources_check(vcpus, memory, &why);
        if (r < 0)
                return clusterd_spec_error(r, why, error);
        r = clusterd_lookup_vm(c, vm, &v, error);
        if (r < 0)
                return r;
        if (v.power != VM_POWER_OFF && vm_has_gpus(&v) && memory != v.memory_mib)
                return refuse_with_gpu(&v, "Memory hot add",
                                       "the GPU maps all guest memory for DMA at power-on; change it while the VM is off",
                                       error);
        if (v.power != VM_POWER_OFF && vcpus != v.vcpus)
                return sd_bus_error_setf(error, GPUPASS_ERROR_VM_NOT_OFF, "VM %s is on: change its vCPUs while it is off",
                                         v.name);
        v.vcpus = vcpus;
        v.memory_mib = memory;
        r = vmstore_update(c->db, &v);
        if (r < 0)
                return sd_bus_error_set_errnof(error, -r, "Writing the VM registry failed: %m");
        return sd_bus_reply_method_return(call, NULL);
}

static int method_set_vm_affinity(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        struct clusterd *c = userdata;
        _cleanup_(vm_record_done) struct vm_record v = {};
        _cleanup_strv_free_ char **hosts = NULL;
        _cleanup_free_ char *joined = NULL, *why = NULL;
        const char *vm;
        int r;

        r = clusterd_check_admin(c, call, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(call, "s", &vm);
        if (r < 0)
                return r;
        r = sd_bus_message_read_strv(call, &hosts);
        if (r < 0)
                return r;
        r = vm_affinity_join(hosts, clusterd_is_host, c, &joined, &why);
        if (r < 0)
                return clusterd_spec_error(r, why, error);
        r = clusterd_lookup_vm(c, vm, &v, error);
        if (r < 0)
                return r;
        free(v.affinity);
        v.affinity = TAKE_PTR(joined);
        r = vmstore_update(c->db, &v);
        if (r < 0)
                return sd_bus_error_set_errnof(error, -r, "Writing the VM registry failed: %m");
        return sd_bus_reply_method_return(call, NULL);
}

const sd_bus_vtable vm_limits_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("Migrate", SD_BUS_ARGS("s", vm), SD_BUS_NO_RESULT, method_migrate,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Pause", SD_BUS_ARGS("s", vm), SD_BUS_NO_RESULT, method_pause,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Resume", SD_BUS_ARGS("s", vm), SD_BUS_NO_RESULT, method_resume,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetConsole", SD_BUS_ARGS("s", vm), SD_BUS_RESULT("s", host), method_get_console,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SetVmResources", SD_BUS_ARGS("s", vm, "u", vcpus, "t", memory_mib), SD_BUS_NO_RESULT,
                                method_set_vm_resources, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SetVmAffinity", SD_BUS_ARGS("s", vm, "as", hosts), SD_BUS_NO_RESULT,
                                method_set_vm_affinity, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};
