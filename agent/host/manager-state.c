/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The manager's durable state: loading the state file at start-up and reconciling it with what sysfs shows,
 * saving it on every change of claims or maintenance, and the identity inventory that detects a reflash.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bind.h"
#include "bus-error.h"
#include "fileio.h"
#include "gpu-bus.h"
#include "gpu.h"
#include "gpupass/bus-names.h"
#include "iommu-group.h"
#include "ledger.h"
#include "log.h"
#include "macro.h"
#include "manager.h"
#include "strv.h"
#include "sysfs-pci.h"
#include "vfio.h"

int manager_save_state(struct manager *m) {
        _cleanup_(ledger_done) struct ledger l = {};
        int r = 0;

        l.maintenance = m->maintenance;
        for (size_t i = 0; r >= 0 && i < m->n_gpus; i++) {
                struct gpu *g = m->gpus[i];

                if (g->owner)
                        r = ledger_add_claim(&l, g->address, g->owner, g->allowed_uid, g->needs_reconfiguration);
                if (r >= 0 && g->previous_model)
                        r = ledger_add_previous_model(&l, g->address, g->previous_model);
                if (r >= 0 && g->reset_failure)
                        r = ledger_add_unavailable(&l, g->address, g->reset_failure);
        }
        for (size_t i = 0; r >= 0 && i < m->inventory.n_identities; i++) {
                const struct ledger_identity *e = &m->inventory.identities[i];

                r = ledger_add_identity(&l, e->address, &e->identity, e->model);
        }
        if (r >= 0)
                r = ledger_save(m->state_dir, &l);
        if (r < 0)
                log_error_errno(r, "Failed to write %s/%s: %m", m->state_dir, LEDGER_FILE);
        return r;
}

/* The claim lines still readable in a corrupt file, "0000:3b:00.0 (VM 0f8f...), ...", or NULL: never used
 * (the file as a whole cannot be trusted), only named, so that the operator knows whom to ask. */
static char *corrupt_file_claims(const char *path) {
        _cleanup_free_ char *text = NULL;
        char *out = NULL, *save = NULL;
        size_t len, n = 0;

        if (read_full_file(path, &text, &len) < 0)
                return NULL;
        for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char address[PCI_ADDRESS_MAX], *save2 = NULL, *keyword, *a, *vm, *more;

                keyword = strtok_r(line, " ", &save2);
                a = strtok_r(NULL, " ", &save2);
                vm = strtok_r(NULL, " ", &save2);
                if (!streq_ptr(keyword, "claim") || !a || pci_address_normalize(a, address) < 0 ||
                    !vm_uuid_is_valid(vm))
                        continue;
                if (asprintf(&more, "%s%s%s (VM %s)", out ?: "", n++ ? ", " : "", address, vm) < 0)
                        break;
                free(out);
                out = more;
        }
        return out;
}

/* Keeps a corrupt state file for the operator and refuses new claims until they look at it: the file may
 * have held claims we can no longer see, and handing those GPUs to someone else would be worse than waiting. */
static void manager_quarantine_state(struct manager *m, unsigned line) {
        _cleanup_free_ char *from = NULL, *to = NULL, *claims = NULL;
        const char *kept;

        if (asprintf(&from, "%s/%s", m->state_dir, LEDGER_FILE) < 0 ||
            asprintf(&to, "%s/%s.corrupt-%lld", m->state_dir, LEDGER_FILE, (long long) time(NULL)) < 0)
                return;
        kept = to;
        if (rename(from, to) < 0) {
                log_error_errno(errno, "Failed to move the corrupt state file aside: %m");
                kept = from;
        }
        claims = corrupt_file_claims(kept);
        free(m->state_problem);
        if (asprintf(&m->state_problem, "state file %s was corrupt (%s%u); kept as %s; %s%s; maintenance forced on "
                     "until an operator checks the claims and turns maintenance off", from,
                     line ? "line " : "checksum mismatch or truncation at line ", line, kept,
                     claims ? "claims still readable in it, not applied: " : "no claim readable in it",
                     claims ?: "") < 0)
                m->state_problem = NULL;
        log_error("%s", m->state_problem ?: "state file corrupt");
        m->maintenance = true;
}

int manager_load_state(struct manager *m) {
        unsigned line = 0;
        int r;

        r = ledger_load(m->state_dir, &m->loaded, &line);
        if (r == -ENOENT) {
                log_info("No state file in %s yet: starting without claims", m->state_dir);
                return 0;
        }
        if (r == -EBADMSG) {
                manager_quarantine_state(m, line);
                return 0;
        }
        if (r < 0)
                return log_error_errno(r, "Failed to read state from %s: %m", m->state_dir);
        m->maintenance = m->loaded.maintenance;
        /* The inventory carries on from the file; apply_state() compares the devices against it. */
        for (size_t i = 0; i < m->loaded.n_identities; i++) {
                const struct ledger_identity *e = &m->loaded.identities[i];

                r = ledger_add_identity(&m->inventory, e->address, &e->identity, e->model);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int inventory_set(struct ledger *inv, const char *address, const struct pci_identity *id, const char *model) {
        for (size_t i = 0; i < inv->n_identities; i++) {
                struct ledger_identity *e = &inv->identities[i];

                if (strcmp(e->address, address) == 0) {
                        char *s = strdup(model);

                        if (!s)
                                return -ENOMEM;
                        free(e->model);
                        e->model = s;
                        e->identity = *id;
                        return 0;
                }
        }
        return ledger_add_identity(inv, address, id, model);
}

/* Emits now when on the bus, else remembers the signal for when the name is taken. */
static void manager_signal_identity_changed(struct manager *m, struct gpu *g, const char *old_model) {
        if (m->bus_ready) {
                (void) sd_bus_emit_signal(m->bus, GPUPASS_AGENT_MANAGER_PATH, GPUPASS_AGENT_MANAGER_IFACE,
                                          "IdentityChanged", "oss", g->object_path, old_model, g->model);
                return;
        }
        (void) strv_extend(&m->pending_identity_signals, g->address);
}

void manager_flush_identity_signals(struct manager *m) {
        for (char **a = m->pending_identity_signals; a && *a; a++) {
                struct gpu *g = manager_find_gpu(m, *a);

                if (g && g->previous_model)
                        (void) sd_bus_emit_signal(m->bus, GPUPASS_AGENT_MANAGER_PATH, GPUPASS_AGENT_MANAGER_IFACE,
                                                  "IdentityChanged", "oss", g->object_path, g->previous_model,
                                                  g->model);
        }
        strv_free(m->pending_identity_signals);
        m->pending_identity_signals = NULL;
}

/* Compares the GPU with the inventory and records it there; 1 when the inventory changed (to be saved). */
static int manager_note_identity(struct manager *m, struct gpu *g) {
        const struct ledger_identity *known;
        _cleanup_free_ char *old_model = NULL;
        int r;

        if (!g->present || !g->model)
                return 0;
        known = ledger_find_identity(&m->inventory, g->address);
        /* A card moved to another slot is recognised by its serial number. */
        if ((!known || (known->identity.has_serial && g->identity.has_serial &&
                        known->identity.serial != g->identity.serial)) && g->identity.has_serial)
                known = ledger_find_serial(&m->inventory, g->identity.serial) ?: known;
        if (known && memcmp(&known->identity, &g->identity, sizeof(g->identity)) == 0 &&
            strcmp(known->model, g->model) == 0)
                return 0;

        if (known && strcmp(known->model, g->model) != 0) {
                old_model = strdup(known->model);
                if (!old_model)
                        return -ENOMEM;
        }
        r = inventory_set(&m->inventory, g->address, &g->identity, g->model);
        if (r < 0)
                return r;
        if (old_model) {
                log_full(LOG_WARNING, g->address, "Identity of %s changed: was %s, now %s%s", g->address, old_model,
                         g->model, g->owner ? "; its claim now needs reconfiguration" : "");
                gpu_set_string(g, &g->previous_model, old_model, "PreviousModel");
                if (g->owner)
                        gpu_set_needs_reconfiguration(g, true);
                manager_signal_identity_changed(m, g, old_model);
        }
        return 1;
}

int manager_check_identity(struct manager *m, struct gpu *g) {
        int r;

        r = manager_note_identity(m, g);
        if (r <= 0)
                return r;
        return manager_save_state(m);
}

/* Listed in passthrough.d: the operator wants its group on vfio-pci from boot on. */
static bool manager_listed_for_passthrough(struct manager *m, const char *address) {
        _cleanup_free_ char *marker = NULL;

        return asprintf(&marker, "%s/%s", m->passthrough_dir, address) >= 0 && access(marker, F_OK) == 0;
}

/* A group left half on vfio-pci by a crash in the middle of Prepare or ReturnToHost is completed in the
 * direction that loses nothing: to vfio-pci when a VM holds a claim on it, back to the host otherwise (the
 * Prepare that was interrupted was never acknowledged). A GPU listed in passthrough.d is left to
 * manager_prepare_configured(), which binds it: its overrides may be the udev rule's, set before the agent
 * started (returning it to the host let the host driver bind it, found in tests/vm's systemd scenario).
 * Runs before the event loop: blocking is fine. */
static void manager_reconcile_group(struct manager *m, struct gpu *g) {
        _cleanup_(iommu_group_freep) struct iommu_group *group = NULL;
        _cleanup_(bind_plan_freep) struct bind_plan *plan = NULL;
        size_t on_vfio = 0, assigned = 0, overridden = 0;
        bool claimed = g->owner != NULL;
        int r;

        if (!claimed && manager_listed_for_passthrough(m, g->address))
                return;
        if (iommu_group_load(m->pacc, g->iommu_group, &group) < 0 || bind_plan_new(g->iommu_group, &plan) < 0)
                return;
        for (size_t i = 0; i < group->n_members; i++) {
                const struct group_member *mb = &group->members[i];
                _cleanup_free_ char *override = NULL;

                if (!member_is_assigned(mb))
                        continue;
                assigned++;
                if (streq_ptr(mb->driver, "vfio-pci"))
                        on_vfio++;
                else if (sysfs_pci_read_override(mb->address, &override) >= 0 && override &&
                         strcmp(override, "vfio-pci") == 0)
                        overridden++;
                (void) bind_plan_add(plan, mb->address);
        }
        if (on_vfio == assigned || (!claimed && on_vfio == 0 && overridden == 0))
                return;
        log_warning("IOMMU group %d was left half bound (%zu of %zu functions on vfio-pci)%s: %s", plan->group,
                    on_vfio, assigned, claimed ? ", claimed" : "",
                    claimed ? "completing the binding" : "returning it to the host");
        r = claimed ? bind_plan_to_vfio(plan) : bind_plan_to_host(plan);
        if (r < 0)
                log_error("Reconciling IOMMU group %d failed: %s", plan->group, bind_plan_error(plan, r));
        manager_refresh_group(m, g->iommu_group);
}

/* GPUs the operator listed in passthrough.d go to vfio-pci at start-up: the udev rule's override cannot beat
 * a driver that bound before udev ran (built in, initramfs, already loaded). */
static void manager_prepare_configured(struct manager *m) {
        for (size_t i = 0; i < m->n_gpus; i++) {
                struct gpu *g = m->gpus[i];
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                _cleanup_(bind_plan_freep) struct bind_plan *plan = NULL;
                _cleanup_strv_free_ char **members = NULL;
                int r;

                if (!g->present || g->state == GPU_STATE_VFIO || g->state == GPU_STATE_CLAIMED)
                        continue;
                if (!manager_listed_for_passthrough(m, g->address))
                        continue;
                if (gpu_check_preparable(g, &error) < 0) {
                        log_full(LOG_WARNING, g->address, "%s is listed for pass-through but cannot be prepared: %s",
                                 g->address, error.message);
                        continue;
                }
                if (bind_plan_new(g->iommu_group, &plan) < 0 ||
                    manager_group_assigned_members(m, g->iommu_group, &members) < 0)
                        continue;
                for (char **a = members; *a; a++)
                        (void) bind_plan_add(plan, *a);
                r = bind_plan_to_vfio(plan);
                if (r < 0)
                        log_full(LOG_ERR, g->address, "Binding %s (listed for pass-through) to vfio-pci failed: %s",
                                 g->address, bind_plan_error(plan, r));
                else
                        log_full(LOG_INFO, g->address, "%s is listed for pass-through: IOMMU group %d bound to vfio-pci",
                                 g->address, plan->group);
                manager_refresh_group(m, g->iommu_group);
        }
}

int manager_apply_state(struct manager *m) {
        const struct ledger *l = &m->loaded;
        int r;

        for (size_t i = 0; i < l->n_claims; i++) {
                const struct ledger_claim *c = &l->claims[i];
                struct gpu *g = manager_find_gpu(m, c->address);

                if (!g) {
                        /* Claimed but not there: keep the claim, listed as missing, never handed out. */
                        const struct ledger_identity *e = ledger_find_identity(&m->inventory, c->address);

                        r = manager_add_missing_gpu(m, c->address, e ? &e->identity : NULL, e ? e->model : NULL, &g);
                        if (r < 0)
                                return r;
                        log_full(LOG_WARNING, c->address, "GPU %s, claimed by VM %s, is missing from the host",
                                 c->address, c->vm);
                }
                g->owner = strdup(c->vm);
                if (!g->owner)
                        return -ENOMEM;
                g->allowed_uid = c->allowed_uid;
                g->needs_reconfiguration = c->needs_reconfiguration;
        }
        for (size_t i = 0; i < l->n_previous_models; i++) {
                struct gpu *g = manager_find_gpu(m, l->previous_models[i].address);

                if (g && !g->previous_model && !(g->previous_model = strdup(l->previous_models[i].text)))
                        return -ENOMEM;
        }
        for (size_t i = 0; i < l->n_unavailable; i++) {
                struct gpu *g = manager_find_gpu(m, l->unavailable[i].address);

                if (g && !(g->reset_failure = strdup(l->unavailable[i].text)))
                        return -ENOMEM;
        }

        for (size_t i = 0; i < m->n_gpus; i++) {
                struct gpu *g = m->gpus[i];

                if (g->present && g->iommu_group >= 0)
                        manager_reconcile_group(m, g);
        }
        manager_prepare_configured(m);
        /* The identities go to disk with the save below, once, rather than one save per GPU first seen. */
        for (size_t i = 0; i < m->n_gpus; i++) {
                (void) gpu_refresh(m->gpus[i]);
                r = manager_note_identity(m, m->gpus[i]);
                if (r < 0)
                        return r;
        }
        ledger_done(&m->loaded);
        /* Written once at start-up: the file now says what this start-up decided. A corrupt file was moved
         * aside; writing a fresh one keeps maintenance on (it is forced on) until an operator decides. */
        return manager_save_state(m);
}

int manager_end_claim(struct manager *m, int group, const char *reset_failure) {
        _cleanup_strv_free_ char **members = NULL;
        _cleanup_free_ char **owners = NULL; /* taken from the group's present GPUs, in FOREACH order */
        uid_t allowed = (uid_t) -1;
        struct gpu *g;
        size_t n = 0;
        int r;

        owners = calloc(m->n_gpus + 1, sizeof(char *));
        if (!owners)
                return -ENOMEM;
        FOREACH_GPU_IN_GROUP(g, m, group) {
                if (!g->present)
                        continue;
                if (g->allowed_uid != (uid_t) -1)
                        allowed = g->allowed_uid;
                owners[n++] = TAKE_PTR(g->owner);
                if (reset_failure && !g->reset_failure)
                        g->reset_failure = strdup(reset_failure);
        }
        r = manager_save_state(m);
        if (r < 0) {
                n = 0;
                FOREACH_GPU_IN_GROUP(g, m, group) {
                        if (!g->present)
                                continue;
                        g->owner = owners[n++];
                        if (g->owner)
                                g->reset_failure = mfree(g->reset_failure);
                }
                return r;
        }
        n = 0;
        FOREACH_GPU_IN_GROUP(g, m, group) {
                _cleanup_free_ char *owner = NULL;

                if (!g->present)
                        continue;
                owner = owners[n++];
                if (!owner)
                        continue;
                log_full(LOG_NOTICE, g->address, "%s released by VM %s%s%s", g->address, owner,
                         reset_failure ? ", but " : "", reset_failure ?: "");
                g->allowed_uid = (uid_t) -1;
                gpu_set_needs_reconfiguration(g, false);
                gpu_send_changed(g, "Owner");
                (void) gpu_refresh(g);
        }
        /* The node goes back to root only after the claim is gone from disk: a crash in between leaves the
         * grant with a released group, which the next AllowUser or Release corrects, never the reverse. */
        if (allowed != (uid_t) -1 && manager_group_assigned_members(m, group, &members) >= 0) {
                r = vfio_chown_nodes(group, members, 0);
                if (r < 0 && r != -ENOENT)
                        log_warning_errno(r, "Failed to give /dev/vfio/%d back to root, ignoring: %m", group);
        }
        return 0;
}

int manager_clear_reset_failures(struct manager *m, int group, sd_bus_error *error) {
        bool changed = false;
        struct gpu *g;
        int r;

        FOREACH_GPU_IN_GROUP(g, m, group)
                if (g->reset_failure) {
                        g->reset_failure = mfree(g->reset_failure);
                        (void) gpu_refresh(g);
                        changed = true;
                }
        if (!changed)
                return 0;
        r = manager_save_state(m);
        if (r < 0)
                return bus_error_setf_errno(error, GPUPASS_ERROR_STATE_NOT_SAVED, r,
                                            "Returned to the host, but the state file could not be written (%m)");
        return 0;
}

int manager_group_assigned_members(struct manager *m, int group, char ***ret) {
        _cleanup_(iommu_group_freep) struct iommu_group *g = NULL;
        _cleanup_strv_free_ char **members = NULL;
        int r;

        r = iommu_group_load(m->pacc, group, &g);
        if (r < 0)
                return r;
        for (size_t i = 0; i < g->n_members; i++) {
                if (!member_is_assigned(&g->members[i]))
                        continue;
                r = strv_extend(&members, g->members[i].address);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(members);
        return 0;
}
