/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * PowerOn and PowerOff on the bus: the caller and the VM are checked, the desired power is set
 * (lifecycle/power.c) and the call is answered when the VM's reconcile is over: the host and GPUs, or the
 * reason it was given up, with the error names the API has always had.
 */
#include <errno.h>
#include <string.h>

#include "clusterd.h"
#include "gpupass/bus-names.h"
#include "lifecycle/lifecycle.h"
#include "macro.h"
#include "registry/vmstore.h"
#include "strv.h"

static int reply_power_on(sd_bus_message *call, const struct vm_record *v) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        struct vm_assignment a = {};
        int r;

        r = vm_assignment_parse(v, &a);
        if (r >= 0)
                r = sd_bus_message_new_method_return(call, &reply);
        if (r >= 0)
                r = sd_bus_message_append(reply, "s", v->host);
        if (r >= 0)
                r = sd_bus_message_append_strv(reply, a.addresses);
        vm_assignment_done(&a);
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
        return r;
}

static void on_power_on_done(struct clusterd *c, const struct reconcile_outcome *o, void *userdata) {
        sd_bus_message *call = userdata;

        if (o->error_name)
                (void) sd_bus_reply_method_errorf(call, o->error_name, "%s", o->error_message ?: o->error_name);
        else if (!o->vm)
                (void) sd_bus_reply_method_errorf(call, GPUPASS_ERROR_NOT_FOUND, "The VM was deleted meanwhile");
        else if (o->vm->power != VM_POWER_ON)
                (void) sd_bus_reply_method_errorf(call, GPUPASS_ERROR_BUSY, "VM %s was powered off meanwhile",
                                                  o->vm->name);
        else
                (void) reply_power_on(call, o->vm);
        sd_bus_message_unref(call);
}

static void on_power_off_done(struct clusterd *c, const struct reconcile_outcome *o, void *userdata) {
        sd_bus_message *call = userdata;

        if (o->error_name)
                (void) sd_bus_reply_method_errorf(call, o->error_name, "%s", o->error_message ?: o->error_name);
        else if (o->vm && o->vm->power != VM_POWER_OFF)
                (void) sd_bus_reply_method_errorf(call, GPUPASS_ERROR_BUSY, "VM %s was powered on meanwhile",
                                                  o->vm->name);
        else
                (void) sd_bus_reply_method_return(call, NULL);
        sd_bus_message_unref(call);
}

/* Refusals before anything changes: a VM on already, one being reconciled, one flagged after a reflash. */
static int power_on_check(struct clusterd *c, const struct vm_record *v, sd_bus_error *error) {
        _cleanup_free_ char *model = NULL;

        if (reconcile_busy(c->reconciler, v->uuid))
                return sd_bus_error_setf(error, GPUPASS_ERROR_BUSY, "VM %s is being powered %s already", v->name,
                                         reconcile_heading_on(c->reconciler, v) ? "on" : "off");
        if (v->power == VM_POWER_ON)
                return sd_bus_error_setf(error, GPUPASS_ERROR_BUSY, "VM %s is already on, on host %s", v->name,
                                         v->host);
        model = vm_flag_get(v->flags, "reconfigure");
        if (model)
                return sd_bus_error_setf(error, GPUPASS_ERROR_NEEDS_RECONFIGURATION,
                                         "VM %s needs its GPU configuration redone: its GPU is now %s (a reflash); "
                                         "set its GPUs again, e.g. with that model", v->name, model);
        return 0;
}

/* The desired power set; the call is answered when the VM's reconcile is over. */
static int power_start(struct clusterd *c, sd_bus_message *call, struct vm_record *v, bool on, sd_bus_error *error) {
        int r;

        r = (on ? lifecycle_power_on : lifecycle_power_off)(c, v, on ? on_power_on_done : on_power_off_done,
                                                            sd_bus_message_ref(call));
        if (r < 0) {
                sd_bus_message_unref(call);
                return sd_bus_error_set_errnof(error, -r, "Cannot power %s VM %s: %m", on ? "on" : "off", v->name);
        }
        return 1;
}

static int method_power_on(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        struct clusterd *c = userdata;
        _cleanup_(vm_record_done) struct vm_record v = {};
        int r;

        r = clusterd_vm_from_call(c, call, true, &v, error);
        if (r < 0)
                return r;
        r = power_on_check(c, &v, error);
        if (r < 0)
                return r;
        return power_start(c, call, &v, true, error);
}

static int method_power_off(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        struct clusterd *c = userdata;
        _cleanup_(vm_record_done) struct vm_record v = {};
        _cleanup_free_ char *restart = NULL;
        int r;

        r = clusterd_vm_from_call(c, call, true, &v, error);
        if (r < 0)
                return r;
        restart = vm_flag_get(v.flags, "restart");

        if (v.power == VM_POWER_OFF && !v.desired_on && !restart && !reconcile_busy(c->reconciler, v.uuid))
                return sd_bus_reply_method_return(call, NULL); /* off, and not waiting to be restarted */
        return power_start(c, call, &v, false, error);
}

const sd_bus_vtable power_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("PowerOn", SD_BUS_ARGS("s", vm), SD_BUS_RESULT("s", host, "as", gpus), method_power_on,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("PowerOff", SD_BUS_ARGS("s", vm), SD_BUS_NO_RESULT, method_power_off,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};
