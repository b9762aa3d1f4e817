/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A host is back (it was unreachable, or the aggregator has not seen it since it started): the registry is
 * matched against what its agent holds. The agent keeps claims across its own restart, so a VM recorded on
 * there whose claims the agent still holds is running there and nothing changes. A VM whose claims are gone
 * (the host rebooted and lost its state, or the claims were released while the aggregator could not see
 * it) is no longer running: what the agent still holds of it is released, it is recorded off with
 * "restart:HOST" and powered on again on that host. VMs flagged "restart:HOST" (off for a maintenance, or an
 * automatic power-on that failed earlier) are powered on again too. Not while the host is in maintenance
 * (ExitHostMaintenance does it then), and never a VM flagged "reconfigure" (a reflash): it stays off.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clusterd.h"
#include "gpupass/bus-names.h"
#include "lifecycle/vm-runtime.h"
#include "link/hostlink.h"
#include "log.h"
#include "macro.h"
#include "strv.h"
#include "registry/vmstore.h"

struct host_vms {
        const char *host;
        char **recorded_on;  /* on there, with GPUs */
        char **to_restart;   /* off, flagged restart:HOST */
};

static int collect(const struct vm_record *v, void *userdata) {
        struct host_vms *k = userdata;
        _cleanup_free_ char *restart = vm_flag_get(v->flags, "restart");

        if (v->on && strcmp(v->host, k->host) == 0 && v->held[0])
                return strv_extend(&k->recorded_on, v->uuid);
        if (!v->on && restart && strcmp(restart, k->host) == 0)
                return strv_extend(&k->to_restart, v->uuid);
        return 0;
}

static bool agent_holds(struct hostlink *l, const char *address, const char *uuid) {
        struct cluster_gpu *g = hostlink_find_gpu(l, address);

        return g && g->owner && strcasecmp(g->owner, uuid) == 0;
}

/* A VM that stopped running on l: what the agent still holds of it is released, then it is recorded off and
 * (unless flagged or in maintenance) powered on again there. */
struct lost_vm {
        struct clusterd *c;
        struct hostlink *link;
        char uuid[37];
        size_t pending;
};

static void lost_vm_restart(struct lost_vm *p) {
        _cleanup_(vm_record_done) struct vm_record v = {};
        _cleanup_free_ char *model = NULL;
        int r;

        r = vmstore_get(p->c->db, p->uuid, &v);
        if (r < 0 || !v.on || strcmp(v.host, p->link->name) != 0)
                goto done; /* deleted, or moved on meanwhile */
        model = vm_flag_get(v.flags, "reconfigure");
        v.on = false;
        /* Flagged after a reflash: never powered on automatically, so no restart flag either. */
        if (!model && vm_flag_set(&v.flags, "restart", p->link->name) < 0)
                goto done;
        r = vmstore_update(p->c->db, &v);
        if (r < 0) {
                log_error_errno(r, "Cannot record VM %s off after host %s lost its claims: %m", v.name,
                                p->link->name);
                goto done;
        }
        if (model)
                log_notice("VM %s no longer runs on host %s (its claims are gone); it stays off: it needs its GPU "
                           "configuration redone (%s)", v.name, p->link->name, model);
        else if (p->link->maintenance)
                log_notice("VM %s no longer runs on host %s (its claims are gone); powered on again when its "
                           "maintenance ends", v.name, p->link->name);
        else {
                log_notice("VM %s no longer runs on host %s (its claims are gone); powering it on again there",
                           v.name, p->link->name);
                r = clusterd_power_on_vm(p->c, v.uuid, p->link);
                if (r < 0 && r != -EALREADY)
                        log_warning_errno(r, "Automatic power-on of VM %s failed: %m", v.name);
        }
done:
        clusterd_job_end(p->c);
        free(p);
}

static int on_release_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        struct lost_vm *p = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);

        if (e && !sd_bus_error_has_name(e, GPUPASS_ERROR_NOT_OWNER))
                log_warning("Releasing a leftover claim of VM %s on host %s failed: %s", p->uuid, p->link->name,
                            e->message ?: e->name);
        if (--p->pending == 0)
                lost_vm_restart(p);
        return 0;
}

static void check_recorded_on(struct clusterd *c, struct hostlink *l, const char *uuid) {
        _cleanup_(vm_record_done) struct vm_record v = {};
        _cleanup_strv_free_ char **held = NULL;
        struct lost_vm *p;
        bool all = true;

        if (vmstore_get(c->db, uuid, &v) < 0)
                return;
        {
                _cleanup_free_ char *copy = strdup(v.held);
                char *save = NULL;

                for (char *a = copy ? strtok_r(copy, ",", &save) : NULL; a; a = strtok_r(NULL, ",", &save))
                        if (strv_extend(&held, a) < 0)
                                return;
                if (!held)
                        return;
        }
        for (char **a = held; *a; a++)
                all = all && agent_holds(l, *a, v.uuid);
        if (all) {
                log_info("VM %s still holds its GPUs on host %s: it runs there", v.name, l->name);
                return;
        }
        p = calloc(1, sizeof(*p));
        if (!p)
                return;
        *p = (struct lost_vm) { .c = c, .link = l };
        clusterd_job_begin(c); /* p holds l until its releases answer: a reload waits for that */
        memcpy(p->uuid, v.uuid, sizeof(p->uuid));
        for (char **a = held; *a; a++) {
                struct cluster_gpu *g = hostlink_find_gpu(l, *a);

                if (agent_holds(l, *a, v.uuid) && l->bus &&
                    sd_bus_call_method_async(l->bus, NULL, GPUPASS_AGENT_BUS_NAME, g->path, GPUPASS_AGENT_GPU_IFACE,
                                             "Release", on_release_reply, p, "s", v.uuid) >= 0)
                        p->pending++;
        }
        if (p->pending == 0)
                lost_vm_restart(p);
}

void clusterd_host_returned(struct clusterd *c, struct hostlink *l) {
        struct host_vms k = { .host = l->name };

        if (vmstore_foreach(c->db, collect, &k) < 0) {
                log_error("Cannot read the VM registry for host %s coming back", l->name);
                goto done;
        }
        for (char **u = k.recorded_on; u && *u; u++)
                check_recorded_on(c, l, *u);
        if (!l->maintenance)
                for (char **u = k.to_restart; u && *u; u++) {
                        int r = clusterd_power_on_vm(c, *u, l);

                        if (r < 0 && r != -EALREADY)
                                log_warning_errno(r, "Automatic power-on of VM %s on host %s failed: %m", *u, l->name);
                }
done:
        strv_free(k.recorded_on);
        strv_free(k.to_restart);
        /* The agent's side is known now: its VMs' domains are adopted, or started again (vm-runtime.h). */
        if (vm_runtime_link(c, l->name))
                vm_runtime_link_changed(c, vm_runtime_link(c, l->name));
}
