/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The runtime's part of a VM's reconcile (reconcile-step.c calls it at each step) and the lifecycle's
 * answer to what libvirt reports on its own: the domain starts once every group is claimed, stops before
 * any release, a domain gone by itself makes its VM wanted off (or, crashed with OnCrash=restart, started
 * again), and a link that comes up has its VMs reconciled (adoption by UUID).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clusterd.h"
#include "lifecycle/reconcile-private.h"
#include "lifecycle/vm-runtime.h"
#include "link/runtime-libvirt.h"
#include "log.h"
#include "macro.h"
#include "registry/vmstore.h"

/* A domain call of a reconcile answered: its error (if any) kept for the next step. */
static void on_task_call(struct clusterd *c, const char *uuid, int r, const char *message, void *userdata) {
        struct reconcile_task *t = userdata;

        if (r < 0 && !t->runtime_error && asprintf(&t->runtime_error, "%s", message ?: strerror(-r)) < 0)
                t->runtime_error = NULL;
        if (r < 0 && !t->runtime_error)
                t->runtime_error = strdup("out of memory");
        reconcile_task_call_done(t);
}

static enum vm_runtime_step runtime_failed(char **ret_message, const char *format, ...) _printf_(2, 3);
static enum vm_runtime_step runtime_failed(char **ret_message, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        if (vasprintf(ret_message, format, ap) < 0)
                *ret_message = NULL;
        va_end(ap);
        return VM_RUNTIME_FAILED;
}

enum vm_runtime_step vm_runtime_step_start(struct reconcile_task *t, const struct vm_record *v, char **ret_message) {
        struct clusterd *c = reconcile_task_clusterd(t);
        struct runtime_link *r = vm_runtime_link(c, v->host);
        _cleanup_free_ char *error = TAKE_PTR(t->runtime_error), *message = NULL;
        int k;

        if (!r)
                return VM_RUNTIME_READY;
        if (error)
                return runtime_failed(ret_message, "VM %s stays off: libvirt on host %s did not start its domain: %s",
                                      v->name, v->host, error);
        if (runtime_link_state(r) == RUNTIME_UP && runtime_link_domain_state(r, v->uuid))
                return VM_RUNTIME_READY; /* started by this reconcile, or found running: adopted */
        if (t->domain_started)
                return runtime_failed(ret_message, "VM %s stays off: its domain stopped right after its start on "
                                      "host %s", v->name, v->host);
        k = vm_runtime_start(c, v, on_task_call, t, &message);
        if (k > 0)
                return VM_RUNTIME_READY;
        if (k < 0) {
                /* Never asked: the undo may release without libvirt's word. */
                t->domain_never_started = k == -ENOTCONN;
                return runtime_failed(ret_message, "VM %s stays off: %s", v->name, message ?: strerror(-k));
        }
        t->domain_started = true;
        t->calls++;
        return VM_RUNTIME_WAIT;
}

enum vm_runtime_step vm_runtime_step_stop(struct reconcile_task *t, const struct vm_record *v, char **ret_message) {
        struct clusterd *c = reconcile_task_clusterd(t);
        struct runtime_link *r = vm_runtime_link(c, v->host);
        _cleanup_free_ char *error = TAKE_PTR(t->runtime_error);
        int k;

        if (!r)
                return VM_RUNTIME_READY;
        if (error)
                return runtime_failed(ret_message, "VM %s stays on: libvirt on host %s did not stop its domain: %s",
                                      v->name, v->host, error);
        if (runtime_link_state(r) != RUNTIME_UP) {
                if (t->domain_never_started)
                        return VM_RUNTIME_READY; /* this reconcile's start was never sent */
                (void) runtime_failed(ret_message, "libvirt at %s (host %s) is unreachable: the domain of VM %s cannot "
                                      "be stopped now", runtime_link_uri(r), v->host, v->name);
                return VM_RUNTIME_UNREACHABLE;
        }
        if (!runtime_link_domain_state(r, v->uuid))
                return VM_RUNTIME_READY;
        if (t->domain_stop_sent)
                return runtime_failed(ret_message, "VM %s stays on: its domain on host %s runs again after its stop",
                                      v->name, v->host);
        k = vm_runtime_stop(c, v, on_task_call, t);
        if (k < 0)
                return runtime_failed(ret_message, "VM %s stays on: its domain on host %s cannot be stopped: %s",
                                      v->name, v->host, strerror(-k));
        t->domain_stop_sent = true;
        t->calls++;
        return VM_RUNTIME_WAIT;
}

enum vm_runtime_step vm_runtime_step_on(struct reconcile_task *t, const struct vm_record *v) {
        struct clusterd *c = reconcile_task_clusterd(t);
        struct runtime_link *r = vm_runtime_link(c, v->host);
        const char *state = r && runtime_link_state(r) == RUNTIME_UP ? runtime_link_domain_state(r, v->uuid) : NULL;
        _cleanup_free_ char *message = NULL;

        if (!r || runtime_link_state(r) != RUNTIME_UP)
                return VM_RUNTIME_READY; /* no runtime, or unknown while unreachable: as recorded */
        if (state && strcmp(state, "crashed") != 0)
                return VM_RUNTIME_READY;
        if (state) { /* kept crashed (on_crash preserve), OnCrash=restart: destroyed, then started again */
                if (vm_runtime_step_stop(t, v, &message) == VM_RUNTIME_WAIT)
                        return VM_RUNTIME_WAIT;
                log_struct(LOG_WARNING, NULL, v->uuid, v->host, "VM %s: %s", v->name, message ?: "stop failed");
                return VM_RUNTIME_READY;
        }
        /* Wanted on, claimed, no domain: it stopped unseen (an aggregator restart, a lost connection) or
         * crashed with OnCrash=restart. */
        log_struct(LOG_NOTICE, NULL, v->uuid, v->host, "VM %s: its domain does not run on host %s; starting it again",
                   v->name, v->host);
        return VM_RUNTIME_RESTART;
}

bool vm_runtime_domain_changed(struct clusterd *c, struct runtime_link *r, const char *uuid, const char *state,
                               const char *why, bool expected) {
        _cleanup_(vm_record_done) struct vm_record v = {};
        bool crashed = (state && strcmp(state, "crashed") == 0) || (why && strcmp(why, "crashed") == 0);

        if (expected)
                return true; /* a start or stop of a reconcile: its end announces it */
        if (state && !crashed)
                return false; /* running/paused: nothing to decide */
        /* Only a VM of this registry assigned there: any other domain is not gpupass's to touch. */
        if (vmstore_get_by_uuid(c->db, uuid, &v) < 0 || v.power == VM_POWER_OFF ||
            strcmp(v.host, runtime_link_name(r)) != 0)
                return false;
        log_struct(LOG_NOTICE, NULL, v.uuid, v.host, "VM %s: its domain on host %s %s (%s)", v.name, v.host,
                   state ? "crashed" : "stopped", why ?: "no reason given");
        /* The guest's own decision: it is off now (its claims go), unless it crashed and is to be restarted.
         * A reconcile under way sees the domain gone at its next step. */
        if (v.power == VM_POWER_ON && !reconcile_busy(c->reconciler, v.uuid) && v.desired_on &&
            !(crashed && c->config.restart_on_crash)) {
                v.desired_on = false;
                if (vmstore_update(c->db, &v) < 0)
                        log_warning("VM %s: cannot record it off", v.name);
        }
        return reconcile_vm(c->reconciler, v.uuid, NULL, NULL) >= 0;
}

static int reconcile_on_host(const struct vm_record *v, void *userdata) {
        struct clusterd *c = ((void **) userdata)[0];
        struct runtime_link *r = ((void **) userdata)[1];

        if (v->power == VM_POWER_OFF || strcmp(v->host, runtime_link_name(r)) != 0)
                return 0;
        if (v->power == VM_POWER_ON && runtime_link_domain_state(r, v->uuid))
                log_struct(LOG_INFO, NULL, v->uuid, v->host, "VM %s: its domain runs on host %s already, adopted",
                           v->name, v->host);
        return reconcile_vm(c->reconciler, v->uuid, NULL, NULL);
}

void vm_runtime_link_changed(struct clusterd *c, struct runtime_link *r) {
        /* Up: what libvirt runs is known now; lost: a stop waiting for it may go on. Every VM there is
         * looked at again. */
        if (vmstore_foreach(c->db, reconcile_on_host, (void *[]) { c, r }) < 0)
                log_warning("Host %s: cannot check its VMs against libvirt's domains", runtime_link_name(r));
}
