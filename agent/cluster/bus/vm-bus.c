/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The VM registry on the bus: CreateVm, DeleteVm, SetVmGpus, SetVmResources, SetVmAffinity, ListVms.
 * Every change is checked (caller, then arguments, then the VM's state) and written in one SQLite
 * transaction before the reply; bad input leaves the registry unchanged.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-id128.h>

#include "clusterd.h"
#include "gpupass/bus-names.h"
#include "bus-reply.h"
#include "lifecycle/reconcile.h"
#include "log.h"
#include "macro.h"
#include "strv.h"
#include "registry/vm-spec.h"
#include "registry/vmstore.h"

static int method_create_vm(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        struct clusterd *c = userdata;
        struct vm_record v = { .gpus = (char *) "", .affinity = (char *) "", .host = (char *) "",
                               .held = (char *) "", .flags = (char *) "" };
        _cleanup_free_ char *why = NULL;
        const char *name;
        sd_id128_t id;
        int r;

        r = clusterd_check_admin(c, call, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(call, "sut", &name, &v.vcpus, &v.memory_mib);
        if (r < 0)
                return r;
        r = vm_name_check(name, &why);
        if (r >= 0)
                r = vm_resources_check(v.vcpus, v.memory_mib, &why);
        if (r < 0)
                return clusterd_spec_error(r, why, error);
        r = sd_id128_randomize(&id);
        if (r < 0)
                return r;
        /* The canonical UUID text form, as the agents' Claim expects it. */
        snprintf(v.uuid, sizeof(v.uuid), SD_ID128_UUID_FORMAT_STR, SD_ID128_FORMAT_VAL(id));
        v.name = (char *) name;
        r = vmstore_insert(c->db, &v);
        if (r == -EEXIST)
                return sd_bus_error_setf(error, GPUPASS_ERROR_INVALID_ARGUMENT, "A VM named '%s' exists already", name);
        if (r < 0)
                return sd_bus_error_set_errnof(error, -r, "Writing the VM registry failed: %m");
        log_info("VM %s created as %s: %u vCPUs, %llu MiB", name, v.uuid, v.vcpus, (unsigned long long) v.memory_mib);
        return sd_bus_reply_method_return(call, "s", v.uuid);
}

static int method_delete_vm(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        struct clusterd *c = userdata;
        _cleanup_(vm_record_done) struct vm_record v = {};
        int r;

        r = clusterd_vm_from_call(c, call, true, &v, error);
        if (r < 0)
                return r;
        /* Its claims are being taken or released: deleting it now would leave them held by a VM nobody
         * knows (and foreign to this aggregator). */
        if (reconcile_busy(c->reconciler, v.uuid))
                return sd_bus_error_setf(error, GPUPASS_ERROR_BUSY, "VM %s is being powered %s; power it off first",
                                         v.name, reconcile_heading_on(c->reconciler, &v) ? "on" : "off");
        if (v.power != VM_POWER_OFF)
                return sd_bus_error_setf(error, GPUPASS_ERROR_VM_NOT_OFF, "VM %s is %s (on host %s); power it off first",
                                         v.name, vm_power_to_string(v.power), v.host);
        r = vmstore_delete(c->db, v.uuid);
        if (r < 0)
                return sd_bus_error_set_errnof(error, -r, "Writing the VM registry failed: %m");
        return sd_bus_reply_method_return(call, NULL);
}

static int method_set_vm_gpus(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        struct clusterd *c = userdata;
        _cleanup_(vm_record_done) struct vm_record v = {};
        _cleanup_free_ char *why = NULL;
        const char *vm, *requests;
        int r;

        r = clusterd_check_admin(c, call, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(call, "ss", &vm, &requests);
        if (r < 0)
                return r;
        r = gpu_requests_validate(requests, &why);
        if (r < 0)
                return sd_bus_error_setf(error, GPUPASS_ERROR_INVALID_ARGUMENT, "Bad GPU request: %s",
                                         why ?: "malformed");
        r = clusterd_lookup_vm(c, vm, &v, error);
        if (r < 0)
                return r;
        /* Pass-through: no GPU hot plug, the GPU configuration changes only while the VM is off. */
        if (reconcile_busy(c->reconciler, v.uuid))
                return sd_bus_error_setf(error, GPUPASS_ERROR_BUSY,
                                         "VM %s is being powered %s: its GPUs are being %s", v.name,
                                         reconcile_heading_on(c->reconciler, &v) ? "on" : "off",
                                         reconcile_heading_on(c->reconciler, &v) ? "claimed" : "released");
        if (v.power != VM_POWER_OFF)
                return sd_bus_error_setf(error, GPUPASS_ERROR_VM_NOT_OFF,
                                         "VM %s is on: GPUs cannot be added or removed while it runs (no GPU hot "
                                         "plug with pass-through); power it off first", v.name);
        why = mfree(why);
        r = clusterd_check_requests(c, requests, &why);
        if (r == -ENOENT)
                return sd_bus_error_setf(error, GPUPASS_ERROR_INVALID_ARGUMENT, "Bad GPU request for VM %s: %s",
                                         v.name, why);
        if (r < 0)
                return r;
        free(v.gpus);
        v.gpus = strdup(requests);
        free(v.flags);
        v.flags = strdup(""); /* redoing the GPU configuration clears a reconfiguration flag */
        if (!v.gpus || !v.flags)
                return -ENOMEM;
        r = vmstore_update(c->db, &v);
        if (r < 0)
                return sd_bus_error_set_errnof(error, -r, "Writing the VM registry failed: %m");
        return sd_bus_reply_method_return(call, NULL);
}

static int append_vm(const struct vm_record *v, void *userdata) {
        return sd_bus_message_append(userdata, "(ssutsssss)", v->uuid, v->name, v->vcpus, v->memory_mib, v->gpus,
                                     v->affinity, vm_power_to_string(v->power), v->host, v->flags);
}

static int append_vms(sd_bus_message *reply, void *userdata) {
        struct clusterd *c = userdata;

        return vmstore_foreach(c->db, append_vm, reply);
}

static int method_list_vms(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        return bus_reply_array(call, "(ssutsssss)", append_vms, userdata);
}

const sd_bus_vtable vm_registry_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("CreateVm", SD_BUS_ARGS("s", name, "u", vcpus, "t", memory_mib),
                                SD_BUS_RESULT("s", uuid), method_create_vm, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("DeleteVm", SD_BUS_ARGS("s", vm), SD_BUS_NO_RESULT, method_delete_vm,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SetVmGpus", SD_BUS_ARGS("s", vm, "s", requests), SD_BUS_NO_RESULT,
                                method_set_vm_gpus, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListVms", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(ssutsssss)", vms), method_list_vms,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};
