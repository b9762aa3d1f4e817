/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Host maintenance (an upgrade: live migration is not possible with pass-through) and reflash, as desired
 * state. EnterHostMaintenance wants the host's GPU VMs off, flagged "restart:HOST", and sets the agent's
 * maintenance flag once every one of them is off; ExitHostMaintenance clears the flag and wants them on
 * again there, as one batch (each placement sees the reservations of the ones before it). A GPU whose
 * identity changed (reflash) flags every VM that asks for the old model on that host or held that GPU
 * ("reconfigure:NEW"), wanted off until its GPUs are set again.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clusterd.h"
#include "lifecycle/lifecycle.h"
#include "link/hostlink.h"
#include "log.h"
#include "macro.h"
#include "registry/vm-spec.h"
#include "registry/vmstore.h"
#include "strv.h"

struct collect {
        const char *host;
        const char *model;   /* reflash: the old model */
        const char *address; /* reflash: the GPU's address on host */
        char **uuids;
        bool want_running_with_gpus;
        bool want_parked;
};

static bool held_names(const struct vm_record *v, const char *address) {
        struct vm_assignment a;
        bool found = false;

        if (vm_assignment_parse(v, &a) < 0)
                return false;
        for (size_t i = 0; i < a.n && !found; i++)
                found = gpu_address_matches(address, a.addresses[i]);
        vm_assignment_done(&a);
        return found;
}

/* The VMs whose GPU configuration refers to that GPU: it held it last (host and held stay as the last
 * placement when a VM is off), asks for it by address, or is pinned to that host and asks for the old
 * model. A VM that asks for the model anywhere is not affected: other hosts still have it. */
static bool refers_to_gpu(const struct vm_record *v, const struct collect *k) {
        _cleanup_free_ char *specific = NULL;

        if (strcmp(v->host, k->host) == 0 && held_names(v, k->address))
                return true;
        /* A VM running on other GPUs is not concerned now: those GPUs are as it was configured for. */
        if (v->power != VM_POWER_OFF)
                return false;
        if (strcmp(v->affinity, k->host) == 0 && gpu_requests_name_model(v->gpus, k->model))
                return true;
        if (asprintf(&specific, "=%s/", k->host) < 0)
                return false;
        for (const char *p = strstr(v->gpus, specific); p; p = strstr(p + 1, specific))
                if (gpu_address_matches(k->address, p + strlen(specific)) ||
                    strncmp(p + strlen(specific), k->address, strlen(k->address)) == 0)
                        return true;
        return false;
}

static int collect_vm(const struct vm_record *v, void *userdata) {
        struct collect *k = userdata;
        _cleanup_free_ char *restart = vm_flag_get(v->flags, "restart"),
                            *reconfigure = vm_flag_get(v->flags, "reconfigure");
        bool match;

        if (k->want_running_with_gpus)
                match = v->power != VM_POWER_OFF && strcmp(v->host, k->host) == 0 && v->gpus[0];
        else if (k->want_parked)
                match = !v->desired_on && v->power == VM_POWER_OFF && restart && strcmp(restart, k->host) == 0 &&
                        !reconfigure;
        else
                match = refers_to_gpu(v, k);
        return match ? strv_extend(&k->uuids, v->uuid) : 0;
}

/* Sets the desired power (and a flag) of each VM and adds it to the batch. */
static void want_all(struct clusterd *c, char **uuids, bool on, const char *flag, const char *value,
                     struct reconcile_batch *b) {
        for (char **u = uuids; u && *u; u++) {
                _cleanup_(vm_record_done) struct vm_record v = {};

                if (vmstore_get_by_uuid(c->db, *u, &v) < 0)
                        continue;
                v.desired_on = on;
                if ((flag && vm_flag_set(&v.flags, flag, value) < 0) || vmstore_update(c->db, &v) < 0) {
                        log_error("VM %s: cannot record it wanted %s", v.name, on ? "on" : "off");
                        continue;
                }
                if (b && reconcile_batch_add(b, v.uuid) < 0)
                        log_error("VM %s: cannot reconcile it", v.name);
                else if (!b)
                        (void) reconcile_vm(c->reconciler, v.uuid, NULL, NULL);
        }
}

void lifecycle_flag_reflash(struct clusterd *c, struct hostlink *l, const char *address, const char *old_model,
                            const char *new_model) {
        struct collect k = { .host = l->name, .model = old_model, .address = address };

        if (vmstore_foreach(c->db, collect_vm, &k) < 0)
                return;
        for (char **u = k.uuids; u && *u; u++)
                log_struct(LOG_NOTICE, address, *u, l->name, "VM %s needs its GPU configuration redone: %s on %s is "
                           "now %s (was %s)", *u, address, l->name, new_model, old_model);
        /* Flagged, never restarted automatically: the restart flag goes. */
        want_all(c, k.uuids, false, "restart", NULL, NULL);
        for (char **u = k.uuids; u && *u; u++) {
                _cleanup_(vm_record_done) struct vm_record v = {};

                if (vmstore_get_by_uuid(c->db, *u, &v) >= 0 && vm_flag_set(&v.flags, "reconfigure", new_model) >= 0)
                        (void) vmstore_update(c->db, &v);
        }
        strv_free(k.uuids);
}

struct maintenance_call {
        struct clusterd *c;
        struct hostlink *link;
        bool enter;
        char **vms;
        char **refused;
        lifecycle_maintenance_done_t done;
        void *userdata;
};

static void maintenance_finish(struct maintenance_call *m, const sd_bus_error *error) {
        m->done(m->c, error, m->vms, m->refused, m->userdata);
        strv_free(m->vms);
        strv_free(m->refused);
        free(m);
}

static void on_exit_batch(struct clusterd *c, struct reconcile_batch *b, void *userdata) {
        maintenance_finish(userdata, NULL);
}

/* The agent said yes. Enter: done. Exit: the parked VMs are wanted on again, one batch. */
static void on_agent_maintenance(struct hostlink *l, const sd_bus_error *e, void *userdata) {
        struct maintenance_call *m = userdata;
        struct collect k = { .host = l->name, .want_parked = true };
        struct reconcile_batch *b;

        if (e || m->enter) {
                if (!e)
                        log_struct(LOG_NOTICE, NULL, NULL, l->name, "Host %s entered maintenance", l->name);
                maintenance_finish(m, e);
                return;
        }
        log_struct(LOG_NOTICE, NULL, NULL, l->name, "Host %s left maintenance", l->name);
        if (vmstore_foreach(m->c->db, collect_vm, &k) < 0 ||
            reconcile_batch_new(m->c->reconciler, on_exit_batch, m, &b) < 0) {
                strv_free(k.uuids);
                maintenance_finish(m, NULL);
                return;
        }
        m->vms = TAKE_PTR(k.uuids);
        want_all(m->c, m->vms, true, NULL, NULL, b);
        reconcile_batch_seal(b);
}

static void set_agent_maintenance(struct maintenance_call *m) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        int r;

        r = hostlink_set_maintenance(m->link, m->enter, on_agent_maintenance, m);
        if (r < 0) {
                (void) sd_bus_error_setf(&e, "org.gpupass.Error.HostUnreachable", "Host %s went away",
                                         m->link->name);
                maintenance_finish(m, &e);
        }
}

/* Every VM of the host reconciled off, or refused: with a refusal the host does not go into maintenance
 * (an upgrade would stop a VM that still runs); the others stay off, flagged to come back. */
static void on_enter_batch(struct clusterd *c, struct reconcile_batch *b, void *userdata) {
        struct maintenance_call *m = userdata;
        char **off = reconcile_batch_ended(b, false), **powered_off = NULL;

        for (char **u = m->vms; u && *u; u++)
                if (strv_contains(off, *u))
                        (void) strv_extend(&powered_off, *u);
        strv_free(m->vms);
        m->vms = powered_off;
        for (char **f = reconcile_batch_failures(b); f && *f; f++)
                (void) strv_extend(&m->refused, *f);
        if (m->refused)
                maintenance_finish(m, NULL);
        else
                set_agent_maintenance(m);
}

int lifecycle_maintenance(struct clusterd *c, struct hostlink *l, bool enter, lifecycle_maintenance_done_t done,
                          void *userdata) {
        struct collect k = { .host = l->name, .want_running_with_gpus = true };
        struct maintenance_call *m;
        struct reconcile_batch *b;
        int r;

        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        *m = (struct maintenance_call) { .c = c, .link = l, .enter = enter, .done = done, .userdata = userdata };
        if (!enter) {
                set_agent_maintenance(m);
                return 0;
        }
        r = vmstore_foreach(c->db, collect_vm, &k);
        if (r >= 0)
                r = reconcile_batch_new(c->reconciler, on_enter_batch, m, &b);
        if (r < 0) {
                strv_free(k.uuids);
                free(m);
                return r;
        }
        m->vms = TAKE_PTR(k.uuids);
        want_all(c, m->vms, false, "restart", l->name, b);
        reconcile_batch_seal(b);
        return 0;
}
