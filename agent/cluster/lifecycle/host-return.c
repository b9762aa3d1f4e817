/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the agents report, as reasons to reconcile. A host up (back after being unreachable, or first seen
 * since the aggregator started): the VMs assigned there are looked at against what its agent holds (the
 * agent keeps claims across its own restart: a VM whose claims are all there runs there and nothing
 * changes; one whose claims are gone is claimed again there), claims there of this registry's VMs that
 * are not assigned there are released, and the VMs waiting for the host ("restart:HOST": off for its
 * maintenance, or an automatic power-on that failed) are wanted on again, unless it is in maintenance
 * (ExitHostMaintenance does it then). Claims of VMs this registry does not know are never touched:
 * another aggregator or a host-local hook may own them (the Host object shows them as foreign).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clusterd.h"
#include "lifecycle/lifecycle.h"
#include "link/hostlink.h"
#include "log.h"
#include "macro.h"
#include "registry/vmstore.h"
#include "strv.h"

struct host_vms {
        struct hostlink *link;
        char **assigned;  /* holding or being given GPUs there */
        char **parked;    /* off, waiting for the host */
};

static int collect(const struct vm_record *v, void *userdata) {
        struct host_vms *k = userdata;
        _cleanup_free_ char *restart = vm_flag_get(v->flags, "restart"),
                            *reconfigure = vm_flag_get(v->flags, "reconfigure");

        if (v->power != VM_POWER_OFF && strcmp(v->host, k->link->name) == 0) {
                if (v->power == VM_POWER_ON && v->held[0] && reconcile_holds_all(k->link, v))
                        log_struct(LOG_INFO, NULL, v->uuid, v->host, "VM %s still holds its GPUs on host %s: it runs "
                                   "there", v->name, v->host);
                return strv_extend(&k->assigned, v->uuid);
        }
        if (!v->desired_on && v->power == VM_POWER_OFF && restart && strcmp(restart, k->link->name) == 0 &&
            !reconfigure)
                return strv_extend(&k->parked, v->uuid);
        return 0;
}

/* The owners of the host's claims that this registry knows. */
static int add_claim_owners(struct clusterd *c, struct hostlink *l, char ***uuids) {
        for (size_t i = 0; i < l->n_gpus; i++) {
                const char *owner = l->gpus[i]->owner;

                if (!owner || !owner[0] || strv_contains(*uuids, owner) || !vmstore_has_uuid(c->db, owner))
                        continue;
                if (strv_extend(uuids, owner) < 0)
                        return -ENOMEM;
        }
        return 0;
}

void lifecycle_host_up(struct clusterd *c, struct hostlink *l) {
        struct host_vms k = { .link = l };

        if (vmstore_foreach(c->db, collect, &k) < 0 || add_claim_owners(c, l, &k.assigned) < 0) {
                log_error("Cannot read the VM registry for host %s coming back", l->name);
                goto done;
        }
        for (char **u = k.assigned; u && *u; u++)
                (void) reconcile_vm(c->reconciler, *u, NULL, NULL);
        if (l->maintenance)
                goto done;
        for (char **u = k.parked; u && *u; u++) {
                _cleanup_(vm_record_done) struct vm_record v = {};

                if (vmstore_get_by_uuid(c->db, *u, &v) < 0)
                        continue;
                log_struct(LOG_NOTICE, NULL, v.uuid, l->name, "VM %s waits for host %s: powering it on again there",
                           v.name, l->name);
                v.desired_on = true;
                if (vmstore_update(c->db, &v) >= 0)
                        (void) reconcile_vm(c->reconciler, v.uuid, NULL, NULL);
        }
done:
        strv_free(k.assigned);
        strv_free(k.parked);
}

/* Whether the VM's record expects it to hold g's group on l. */
static bool expects(const struct vm_record *v, struct hostlink *l, const struct cluster_gpu *g) {
        struct vm_assignment a;
        bool found = false;

        if (v->power == VM_POWER_OFF || strcmp(v->host, l->name) != 0 || vm_assignment_parse(v, &a) < 0)
                return false;
        for (size_t i = 0; i < a.n && !found; i++)
                found = g->iommu_group >= 0 ? a.groups[i] == g->iommu_group : strcmp(a.addresses[i], g->address) == 0;
        vm_assignment_done(&a);
        return found;
}

void lifecycle_owner_changed(struct clusterd *c, struct hostlink *l, const struct cluster_gpu *g,
                             const char *old_owner) {
        const char *owners[] = { g->owner, old_owner };

        /* A VM being reconciled looks again after its own calls: only the others' changes are news. A new
         * claim the record does not expect is a stray; a claim gone that the record expects is lost. */
        for (size_t i = 0; i < ELEMENTSOF(owners); i++) {
                _cleanup_(vm_record_done) struct vm_record v = {};
                bool news;

                if (!owners[i] || !owners[i][0] || reconcile_busy(c->reconciler, owners[i]) ||
                    vmstore_get_by_uuid(c->db, owners[i], &v) < 0)
                        continue;
                news = i == 0 ? !expects(&v, l, g) : expects(&v, l, g) && v.power == VM_POWER_ON;
                if (news)
                        (void) reconcile_vm(c->reconciler, v.uuid, NULL, NULL);
        }
}

static int collect_unfinished(const struct vm_record *v, void *userdata) {
        bool done = v->desired_on ? v->power == VM_POWER_ON : v->power == VM_POWER_OFF;

        return done ? 0 : strv_extend(userdata, v->uuid);
}

void lifecycle_startup(struct clusterd *c) {
        _cleanup_strv_free_ char **uuids = NULL;

        if (vmstore_foreach(c->db, collect_unfinished, &uuids) < 0) {
                log_error("Cannot read the VM registry at start-up");
                return;
        }
        if (uuids)
                log_info("%zu VMs are not where they are wanted (an interrupted call): reconciling them",
                         strv_length(uuids));
        for (char **u = uuids; u && *u; u++)
                (void) reconcile_vm(c->reconciler, *u, NULL, NULL);
}
