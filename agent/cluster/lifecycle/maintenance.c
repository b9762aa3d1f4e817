/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Host maintenance (an upgrade: live migration is not possible with pass-through) and reflash.
 * EnterHostMaintenance powers off the host's GPU VMs, remembers them ("restart:HOST") and sets the agent's
 * maintenance flag; ExitHostMaintenance clears it and powers them on again on the same host. A GPU whose
 * identity changed (reflash) flags every VM that asks for the old model or held that GPU
 * ("reconfigure:NEW"): such a VM does not power on, also not automatically, until its GPUs are set again.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clusterd.h"
#include "gpupass/bus-names.h"
#include "link/hostlink.h"
#include "log.h"
#include "macro.h"
#include "strv.h"
#include "registry/vmstore.h"

struct collect {
        const char *host;
        const char *model;   /* reflash: the old model */
        const char *address; /* reflash: the GPU's address on host */
        char **uuids;
        bool want_on_with_gpus;
        bool want_restart;
};

static bool request_names_model(const char *gpus, const char *model) {
        _cleanup_free_ char *copy = strdup(gpus);
        char *save = NULL;

        for (char *req = copy ? strtok_r(copy, ";", &save) : NULL; req; req = strtok_r(NULL, ";", &save)) {
                char *colon = strchr(req, ':'), *save2 = NULL;

                if (req[0] == '=' || !colon)
                        continue;
                for (char *m = strtok_r(colon + 1, "|", &save2); m; m = strtok_r(NULL, "|", &save2))
                        if (strcmp(m, model) == 0)
                                return true;
        }
        return false;
}

static bool held_names(const char *held, const char *address) {
        size_t n = strlen(address);

        for (const char *p = held; p && *p;) {
                if (strncmp(p, address, n) == 0 && (p[n] == ',' || p[n] == '\0'))
                        return true;
                p = strchr(p, ',');
                p = p ? p + 1 : NULL;
        }
        return false;
}

static int collect_vm(const struct vm_record *v, void *userdata) {
        struct collect *k = userdata;
        _cleanup_free_ char *restart = vm_flag_get(v->flags, "restart");
        bool match;

        if (k->want_on_with_gpus)
                match = v->on && strcmp(v->host, k->host) == 0 && v->gpus[0];
        else if (k->want_restart)
                match = !v->on && restart && strcmp(restart, k->host) == 0;
        else {
                /* The VMs whose GPU configuration refers to that GPU: it held it last (host and held stay as
                 * the last placement when a VM is off), asks for it by address, or is pinned to that host
                 * and asks for the old model. A VM that asks for the model anywhere is not affected: other
                 * hosts still have it. */
                _cleanup_free_ char *specific = NULL;
                bool held_it = strcmp(v->host, k->host) == 0 && held_names(v->held, k->address);
                bool pinned = strcmp(v->affinity, k->host) == 0 && request_names_model(v->gpus, k->model);

                if (asprintf(&specific, "=%s/%s", k->host, k->address) < 0)
                        return -ENOMEM;
                match = held_it || pinned || strstr(v->gpus, specific) != NULL;
        }
        return match ? strv_extend(&k->uuids, v->uuid) : 0;
}

void clusterd_flag_reflash(struct clusterd *c, struct hostlink *l, const char *address, const char *old_model,
                           const char *new_model) {
        struct collect k = { .host = l->name, .model = old_model, .address = address };

        if (vmstore_foreach(c->db, collect_vm, &k) < 0)
                return;
        for (char **u = k.uuids; u && *u; u++) {
                struct vm_record v = {};

                if (vmstore_get(c->db, *u, &v) >= 0 && vm_flag_set(&v.flags, "reconfigure", new_model) >= 0 &&
                    vmstore_update(c->db, &v) >= 0)
                        log_struct(LOG_NOTICE, address, v.uuid, l->name,
                                   "VM %s needs its GPU configuration redone: %s on %s is now %s (was %s)", v.name,
                                   address, l->name, new_model, old_model);
                vm_record_done(&v);
        }
        strv_free(k.uuids);
}

struct maintenance_call {
        struct clusterd *c;
        sd_bus_message *call;
        struct hostlink *link;
        char **vms;          /* enter: the VMs powered off; exit: the VMs to power on */
        char **refused;      /* enter: "NAME: reason" of the VMs whose release the agent refused */
        size_t pending;      /* enter: power-offs not answered yet */
        bool enter;
};

static void maintenance_call_free(struct maintenance_call *m) {
        sd_bus_message_unref(m->call);
        strv_free(m->vms);
        strv_free(m->refused);
        clusterd_job_end(m->c);
        free(m);
}

static int on_agent_maintenance(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        struct maintenance_call *m = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);

        if (e)
                (void) sd_bus_reply_method_errorf(m->call, e->name, "Host %s: %s", m->link->name, e->message ?: "");
        else {
                sd_bus_message *out = NULL;

                log_struct(LOG_NOTICE, NULL, NULL, m->link->name, "Host %s %s maintenance", m->link->name, m->enter ? "entered" : "left");
                /* The agent said yes: the view need not wait for its PropertiesChanged. */
                m->link->maintenance = m->enter;
                /* Back from maintenance: its VMs go on again, on this host (they answer nobody: logged). */
                if (!m->enter)
                        for (char **u = m->vms; u && *u; u++)
                                (void) clusterd_power_on_vm(m->c, *u, m->link);
                if (sd_bus_message_new_method_return(m->call, &out) >= 0 &&
                    sd_bus_message_append_strv(out, m->vms) >= 0)
                        (void) sd_bus_send(NULL, out, NULL);
                sd_bus_message_unref(out);
        }
        maintenance_call_free(m);
        return 0;
}

static void set_agent_maintenance(struct maintenance_call *m) {
        int r;

        if (!m->link->bus) {
                (void) sd_bus_reply_method_errorf(m->call, GPUPASS_ERROR_HOST_UNREACHABLE, "Host %s went away",
                                                  m->link->name);
                maintenance_call_free(m);
                return;
        }
        r = sd_bus_call_method_async(m->link->bus, NULL, GPUPASS_AGENT_BUS_NAME, GPUPASS_AGENT_MANAGER_PATH,
                                     GPUPASS_AGENT_MANAGER_IFACE, "SetMaintenance", on_agent_maintenance, m, "b",
                                     (int) m->enter);
        if (r < 0) {
                (void) sd_bus_reply_method_errnof(m->call, -r, "Cannot ask host %s: %m", m->link->name);
                maintenance_call_free(m);
        }
}

/* Every power-off answered: with a refusal, the host does not go into maintenance (an upgrade would stop a
 * VM that still runs); the others stay off, flagged to come back with ExitHostMaintenance. */
static void enter_powered_off(struct maintenance_call *m) {
        _cleanup_free_ char *refused = NULL, *off = NULL;
        size_t len = 0;

        if (!m->refused) {
                set_agent_maintenance(m);
                return;
        }
        for (char **r = m->refused; *r; r++)
                len += strlen(*r) + 2;
        refused = calloc(1, len + 1);
        len = 0;
        for (char **u = m->vms; u && *u; u++)
                len += strlen(*u) + 2;
        off = calloc(1, len + 1);
        for (char **r = m->refused; refused && *r; r++) {
                if (*refused)
                        strcat(refused, "; ");
                strcat(refused, *r);
        }
        for (char **u = m->vms; off && u && *u; u++) {
                if (*off)
                        strcat(off, ", ");
                strcat(off, *u);
        }
        (void) sd_bus_reply_method_errorf(m->call, GPUPASS_ERROR_BUSY,
                                          "Host %s does not go into maintenance: %s. Powered off (ExitHostMaintenance "
                                          "powers them on again): %s", m->link->name, refused ?: "a release was refused",
                                          off && *off ? off : "none");
        maintenance_call_free(m);
}

static void on_vm_off(struct clusterd *c, const struct vm_record *vm, int r, const char *failure, void *userdata) {
        struct maintenance_call *m = userdata;
        _cleanup_free_ char *why = NULL;

        if (failure || r < 0) {
                if (asprintf(&why, "VM %s stays on: %s", vm->name, failure ?: strerror(-r)) < 0 ||
                    strv_consume(&m->refused, TAKE_PTR(why)) < 0)
                        (void) strv_extend(&m->refused, vm->name);
        } else
                (void) strv_extend(&m->vms, vm->uuid);
        if (--m->pending == 0)
                enter_powered_off(m);
}

static int maintenance(sd_bus_message *call, struct clusterd *c, bool enter, sd_bus_error *error) {
        struct maintenance_call *m;
        struct collect k = { .want_on_with_gpus = enter, .want_restart = !enter };
        struct hostlink *l = NULL;
        const char *host;
        int r;

        r = clusterd_check_admin(c, call, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(call, "s", &host);
        if (r < 0)
                return r;
        l = clusterd_find_host(c, host, NULL);
        if (!l)
                return sd_bus_error_setf(error, GPUPASS_ERROR_NOT_FOUND, "Host %s is not in the cluster", host);
        if (l->state != LINK_UP || !l->bus)
                return sd_bus_error_setf(error, GPUPASS_ERROR_HOST_UNREACHABLE, "Host %s is unreachable", host);
        k.host = l->name;
        r = vmstore_foreach(c->db, collect_vm, &k);
        if (r < 0)
                return sd_bus_error_set_errnof(error, -r, "Reading the VM registry failed: %m");

        m = calloc(1, sizeof(*m));
        if (!m) {
                strv_free(k.uuids);
                return -ENOMEM;
        }
        *m = (struct maintenance_call) { .c = c, .call = sd_bus_message_ref(call), .link = l, .enter = enter };
        clusterd_job_begin(c);
        if (!enter) {
                m->vms = k.uuids;
                set_agent_maintenance(m);
                return 1;
        }
        /* Its GPU VMs go off first, remembered to come back on this host; the answer waits for every
         * release. pending counts one extra until all are sent, so that no early answer finishes m. */
        m->pending = 1;
        for (char **u = k.uuids; u && *u; u++) {
                _cleanup_(vm_record_done) struct vm_record v = {};

                if (vmstore_get(c->db, *u, &v) < 0)
                        continue;
                m->pending++;
                r = clusterd_power_off_vm(c, &v, l->name, on_vm_off, m);
                if (r < 0) {
                        m->pending--;
                        log_warning_errno(r, "Powering off VM %s for the maintenance of %s failed: %m", v.name, host);
                        if (strv_extend(&m->refused, v.name) < 0)
                                break;
                }
        }
        strv_free(k.uuids);
        if (--m->pending == 0)
                enter_powered_off(m);
        return 1;
}

static int method_enter(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        return maintenance(call, userdata, true, error);
}

static int method_exit(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        return maintenance(call, userdata, false, error);
}

const sd_bus_vtable maintenance_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("EnterHostMaintenance", SD_BUS_ARGS("s", host), SD_BUS_RESULT("as", vms),
                                method_enter, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ExitHostMaintenance", SD_BUS_ARGS("s", host), SD_BUS_RESULT("as", vms),
                                method_exit, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};
