/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * One step of a VM's reconcile: from its record (what is wanted, where it stands) and the view (what the
 * agents hold), the next thing to do: place, claim, release, or record the new state. Every Claim and
 * Release of the aggregator is sent here, one per IOMMU group (the agent claims a group as a whole).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clusterd.h"
#include "gpupass/bus-names.h"
#include "lifecycle/placement-view.h"
#include "lifecycle/reconcile-private.h"
#include "lifecycle/vm-runtime.h"
#include "link/hostlink.h"
#include "log.h"
#include "macro.h"
#include "registry/vmstore.h"

/* An agent call of a task: what its answer concerns; while the queue's commit is pending, what to send. */
struct step_call {
        struct reconcile_task *task;
        char address[32];
        struct step_call *next;
        struct hostlink *link;
        struct cluster_gpu *gpu;
        bool claim;
};

static bool link_up(const struct hostlink *l) {
        return l && l->state == LINK_UP && l->bus;
}

static bool owned_by(const struct cluster_gpu *g, const char *uuid) {
        return g->owner && strcasecmp(g->owner, uuid) == 0;
}

/* Whether the agent shows the group (or the one GPU without a group) held by the VM. */
static bool group_held(struct hostlink *l, const char *address, int group, const char *uuid) {
        struct cluster_gpu *g;

        if (group < 0)
                return (g = hostlink_find_gpu(l, address)) && owned_by(g, uuid);
        for (size_t i = 0; i < l->n_gpus; i++)
                if (l->gpus[i]->iommu_group == group && owned_by(l->gpus[i], uuid))
                        return true;
        return false;
}

_printf_(3, 4) static void task_error(struct reconcile_task *t, const char *name, const char *format, ...) {
        va_list ap;

        if (t->error_name)
                return; /* the first reason stands */
        va_start(ap, format);
        if (vasprintf(&t->error_message, format, ap) < 0)
                t->error_message = NULL;
        va_end(ap);
        t->error_name = name;
}

static enum reconcile_step record_write_as(struct reconcile_task *t, struct vm_record *v, bool durable) {
        int r = reconcile_task_write(t, v, durable);

        if (r >= 0)
                return STEP_AGAIN;
        task_error(t, GPUPASS_ERROR_STATE_NOT_SAVED, "VM %s: the registry could not be written: %s", v->name,
                   strerror(-r));
        log_error_errno(r, "VM %s: cannot write its record: %m", v->name);
        return STEP_DONE;
}

static enum reconcile_step record_write(struct reconcile_task *t, struct vm_record *v) {
        return record_write_as(t, v, true);
}

/* Starting and stopping precede agent calls: on disk first. On and off end a transition that a crash
 * before the disk has it replays (claims adopted, releases sent again): no fsync to wait for. */
static enum reconcile_step record_power(struct reconcile_task *t, struct vm_record *v, enum vm_power p) {
        v->power = p;
        if (p == VM_POWER_OFF) {
                free(v->groups); /* host and held stay as the last placement: a reflash of those concerns it */
                v->groups = strdup("");
                if (!v->groups)
                        return task_error(t, SD_BUS_ERROR_NO_MEMORY, "Out of memory"), STEP_DONE;
        }
        return record_write_as(t, v, p == VM_POWER_STARTING || p == VM_POWER_STOPPING);
}

/* A power-on that cannot go on: the VM is wanted off again (the caller hears why); what it may hold is
 * released by the next look. */
static enum reconcile_step give_up_on(struct reconcile_task *t, struct vm_record *v, const char *name,
                                      const char *message) {
        task_error(t, name, "%s", message);
        log_struct(LOG_NOTICE, NULL, v->uuid, v->host, "VM %s: %s", v->name, message);
        v->desired_on = false;
        return record_write(t, v) == STEP_AGAIN && v->power != VM_POWER_OFF ? STEP_AGAIN : STEP_DONE;
}

static void on_claim(struct hostlink *l, const sd_bus_error *e, void *userdata) {
        struct step_call *k = userdata;
        struct reconcile_task *t = k->task;
        size_t i;

        if (e && clusterd_find_host(reconcile_task_clusterd(t), l->name, &i) && i < t->n_hosts) {
                /* Busy (another aggregator was faster), in maintenance, or any failure: another host. */
                t->excluded[i] = 1;
                free(t->failures[i]);
                if (asprintf(&t->failures[i], "claim of %s refused (%s)", k->address, e->message ?: e->name) < 0)
                        t->failures[i] = NULL;
                log_struct(LOG_NOTICE, k->address, t->uuid, l->name, "VM %s: claim of %s refused on %s (%s)", t->uuid,
                           k->address, l->name, e->message ?: e->name);
        }
        if (e)
                t->claim_refused = true;
        free(k);
        reconcile_task_call_done(t);
}

static void on_release(struct hostlink *l, const sd_bus_error *e, void *userdata) {
        struct step_call *k = userdata;
        struct reconcile_task *t = k->task;

        /* NotOwner: not held in the VM's name (any more), which is what was asked. ResetFailed: the claim
         * ended, the GPU is unavailable until returned to the host. */
        if (e && sd_bus_error_has_name(e, GPUPASS_ERROR_RESET_FAILED))
                log_struct(LOG_WARNING, k->address, t->uuid, l->name, "%s", e->message ?: e->name);
        if (!e || sd_bus_error_has_names(e, GPUPASS_ERROR_NOT_OWNER, GPUPASS_ERROR_RESET_FAILED))
                t->released_some = true;
        else if (!t->release_refused && asprintf(&t->release_refused, "%s", e->message ?: e->name) < 0)
                t->release_refused = NULL;
        free(k);
        reconcile_task_call_done(t);
}

static int send_call(struct step_call *k) {
        struct reconcile_task *t = k->task;

        return k->claim ? hostlink_claim(k->link, k->gpu, t->uuid, on_claim, k) :
                          hostlink_release(k->link, k->gpu, t->uuid, on_release, k);
}

/* A call that could not be sent, answered as the agent's refusal would be. */
static void call_not_sent(struct step_call *k, const char *why) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;

        (void) sd_bus_error_set(&e, SD_BUS_ERROR_FAILED, why);
        (k->claim ? on_claim : on_release)(k->link, &e, k);
}

void reconcile_task_send_deferred(struct reconcile_task *t, bool committed) {
        struct step_call *list = TAKE_PTR(t->deferred);

        /* Each answer may run the task's next step: the list is the task's no more. */
        for (struct step_call *k = list, *next; k; k = next) {
                next = k->next;
                if (!committed)
                        call_not_sent(k, "the registry could not be written");
                else if (send_call(k) < 0)
                        call_not_sent(k, "the host's connection is gone");
        }
}

/* One Claim or Release of the GPU's group, answered to the task. In the queue's batch it waits for the
 * commit: the assignment is on disk before any Claim. */
static int group_call(struct reconcile_task *t, struct hostlink *l, struct cluster_gpu *g, bool claim) {
        struct step_call *k = calloc(1, sizeof(*k));
        int r = 0;

        if (!k)
                return -ENOMEM;
        *k = (struct step_call) { .task = t, .link = l, .gpu = g, .claim = claim };
        snprintf(k->address, sizeof(k->address), "%s", g->address);
        if (reconcile_task_batching(t)) {
                k->next = t->deferred;
                t->deferred = k;
        } else
                r = send_call(k);
        if (r < 0) {
                free(k);
                return r;
        }
        t->calls++;
        return 0;
}

/* Claims of the VM where it is not assigned (all of them when it is off): released, one per group. */
static unsigned release_strays(struct reconcile_task *t, const struct vm_record *v) {
        struct clusterd *c = reconcile_task_clusterd(t);
        unsigned sent = 0;

        for (size_t i = 0; i < c->n_hosts; i++) {
                struct hostlink *l = c->hosts[i];

                if (!link_up(l) || (v->power != VM_POWER_OFF && strcmp(l->name, v->host) == 0))
                        continue;
                for (size_t k = 0; k < l->n_gpus; k++) {
                        struct cluster_gpu *g = l->gpus[k];

                        if (!owned_by(g, t->uuid) ||
                            (g->iommu_group >= 0 && hostlink_find_group(l, g->iommu_group) != g))
                                continue; /* not its, or a group already counted */
                        log_struct(LOG_NOTICE, g->address, t->uuid, l->name, "VM %s holds %s on %s where it is not "
                                   "assigned: releasing it", v->name, g->address, l->name);
                        sent += group_call(t, l, g, false) >= 0;
                }
        }
        return sent;
}

static enum reconcile_step place(struct reconcile_task *t, struct vm_record *v) {
        struct clusterd *c = reconcile_task_clusterd(t);
        _cleanup_free_ char *pin = vm_flag_get(v->flags, "restart"), *why = NULL;
        struct placement_choice p;
        int r;

        if (!c->placement) /* a reload could not build it (out of memory) */
                return give_up_on(t, v, SD_BUS_ERROR_NO_MEMORY, "No placement view: out of memory");
        r = placement_view_choose(c->placement, v, t->excluded, t->failures, t->unpinned ? NULL : pin, &p, &why);
        if (r == -ENOMEM)
                return task_error(t, SD_BUS_ERROR_NO_MEMORY, "VM %s: out of memory while placing it", v->name),
                       STEP_DONE;
        if (r < 0) {
                _cleanup_free_ char *text = NULL;

                if (r != -ENOSPC && asprintf(&text, "VM %s: %s", v->name, why ?: strerror(-r)) < 0)
                        return STEP_DONE;
                return give_up_on(t, v, r == -EINVAL ? GPUPASS_ERROR_INVALID_ARGUMENT : GPUPASS_ERROR_NO_HOST_AVAILABLE,
                                  text ?: why);
        }
        free(v->host);
        free(v->held);
        free(v->groups);
        v->host = strdup(c->hosts[p.host]->name);
        v->held = TAKE_PTR(p.held);
        v->groups = TAKE_PTR(p.groups);
        placement_choice_done(&p);
        if (!v->host)
                return task_error(t, SD_BUS_ERROR_NO_MEMORY, "Out of memory"), STEP_DONE;
        /* The assignment is on disk before any Claim: after a crash the record says what may be held. */
        return record_power(t, v, VM_POWER_STARTING);
}

static enum reconcile_step step_off(struct reconcile_task *t, struct vm_record *v) {
        if (release_strays(t, v) > 0)
                return STEP_WAIT;
        if (!v->desired_on)
                return STEP_DONE;
        return place(t, v);
}

/* The first group of the assignment the agent does not show held: its Claim is sent (1), or none left (0). */
static int claim_next(struct reconcile_task *t, struct hostlink *l, const struct vm_record *v) {
        struct vm_assignment a;
        int r = 0;

        if (vm_assignment_parse(v, &a) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < a.n && r == 0; i++) {
                struct cluster_gpu *g = hostlink_find_gpu(l, a.addresses[i]);

                if (!vm_assignment_group_first(&a, i) || group_held(l, a.addresses[i], a.groups[i], t->uuid))
                        continue;
                r = g ? group_call(t, l, g, true) : -ENODEV;
                r = r < 0 ? r : 1;
        }
        vm_assignment_done(&a);
        return r;
}

/* A claim failed there (refused, the GPU gone, the host in maintenance): undo, then another host. */
static enum reconcile_step claim_failed(struct reconcile_task *t, struct vm_record *v, struct hostlink *l,
                                        const char *why) {
        size_t i;

        if (why && clusterd_find_host(reconcile_task_clusterd(t), l->name, &i) && i < t->n_hosts) {
                t->excluded[i] = 1;
                if (!t->failures[i])
                        t->failures[i] = strdup(why);
        }
        t->claim_refused = false;
        return record_power(t, v, VM_POWER_STOPPING);
}

static enum reconcile_step step_starting(struct reconcile_task *t, struct vm_record *v) {
        struct hostlink *l = clusterd_find_host(reconcile_task_clusterd(t), v->host, NULL);
        _cleanup_free_ char *text = NULL;
        int r;

        if (!v->desired_on)
                return record_power(t, v, VM_POWER_STOPPING);
        if (!link_up(l)) {
                /* Claims may be held there: the record stays as it is until the host is back. */
                if (asprintf(&text, "Lost host %s while claiming", v->host) < 0)
                        return STEP_DONE;
                return give_up_on(t, v, GPUPASS_ERROR_HOST_UNREACHABLE, text), STEP_DONE;
        }
        if (t->claim_refused)
                return claim_failed(t, v, l, NULL);
        if (l->maintenance)
                return claim_failed(t, v, l, "in maintenance");
        r = claim_next(t, l, v);
        if (r > 0)
                return STEP_WAIT;
        if (r == -ENODEV)
                return claim_failed(t, v, l, "a GPU of the placement is gone");
        if (r < 0)
                return claim_failed(t, v, l, strerror(-r));
        /* Every group claimed: the domain on the host's runtime, if it has one. */
        switch (vm_runtime_step_start(t, v, &text)) {
        case VM_RUNTIME_WAIT:
                return STEP_WAIT;
        case VM_RUNTIME_READY:
                break;
        default: /* its claims are released by the next look (wanted off) */
                return give_up_on(t, v, GPUPASS_ERROR_RUNTIME_FAILED, text ?: "libvirt did not start its domain");
        }
        if (vm_flag_set(&v->flags, "restart", NULL) < 0)
                return STEP_DONE;
        log_struct(LOG_INFO, NULL, v->uuid, v->host, "VM %s powered on on host %s with GPUs %s", v->name, v->host,
                   v->held);
        return record_power(t, v, VM_POWER_ON), STEP_DONE;
}

/* Whether the agent shows every group of the assignment held by the VM. */
bool reconcile_holds_all(struct hostlink *l, const struct vm_record *v) {
        struct vm_assignment a;
        bool all = true;

        if (vm_assignment_parse(v, &a) < 0)
                return true; /* cannot tell: leave it */
        for (size_t i = 0; i < a.n && all; i++)
                all = group_held(l, a.addresses[i], a.groups[i], v->uuid);
        vm_assignment_done(&a);
        return all;
}

static enum reconcile_step step_on(struct reconcile_task *t, struct vm_record *v) {
        struct hostlink *l = clusterd_find_host(reconcile_task_clusterd(t), v->host, NULL);

        if (!v->desired_on && !link_up(l)) {
                _cleanup_free_ char *model = vm_flag_get(v->flags, "reconfigure");

                /* Nothing can be released now: it stays on, and (unless a reflash wants it off, which
                 * the host's return carries out) wanted on again, as the caller hears. */
                task_error(t, GPUPASS_ERROR_HOST_UNREACHABLE, "Host %s of VM %s is unreachable: its GPUs cannot be "
                           "released now", v->host, v->name);
                v->desired_on = !model;
                if (!model)
                        (void) record_write(t, v);
                return STEP_DONE;
        }
        if (!v->desired_on) {
                if (!reconcile_holds_all(l, v))
                        log_struct(LOG_NOTICE, NULL, v->uuid, v->host, "VM %s no longer runs on host %s (its claims "
                                   "are gone); it stays off", v->name, v->host);
                return record_power(t, v, VM_POWER_STOPPING);
        }
        if (!link_up(l))
                return STEP_DONE; /* unknown while unreachable: as recorded */
        if (reconcile_holds_all(l, v)) {
                switch (vm_runtime_step_on(t, v)) {
                case VM_RUNTIME_WAIT:
                        return STEP_WAIT;
                case VM_RUNTIME_RESTART: /* claims held: starting finds them all and starts the domain */
                        return record_power(t, v, VM_POWER_STARTING);
                default:
                        return STEP_DONE;
                }
        }
        /* Its claims are gone (the host lost its state, or they were released unseen): it no longer runs.
         * Claimed again on that host (restart:HOST pins it there if it has to be placed anew). */
        log_struct(LOG_NOTICE, NULL, v->uuid, v->host, "VM %s no longer runs on host %s (its claims are gone); %s",
                   v->name, v->host, l->maintenance ? "powered on again when its maintenance ends" :
                   "powering it on again there");
        if (vm_flag_set(&v->flags, "restart", v->host) < 0)
                return STEP_DONE;
        return record_power(t, v, VM_POWER_STARTING);
}

/* The agent refused a Release. Powering off: the VM still runs there, so it is wanted on again and
 * recorded on (what was released is claimed again by the next look). Undoing a refused placement: it
 * stays off, its claims may stay there until a later look releases them. */
static enum reconcile_step release_refused(struct reconcile_task *t, struct vm_record *v) {
        bool undoing = v->desired_on;

        if (undoing)
                task_error(t, GPUPASS_ERROR_HOST_UNREACHABLE, "VM %s stays off: undoing its claims on host %s failed "
                           "(%s); the GPUs may still be claimed in its name there: release them on that host's "
                           "agent, then power it on", v->name, v->host, t->release_refused);
        else
                task_error(t, GPUPASS_ERROR_BUSY, "VM %s stays on: %s", v->name, t->release_refused);
        log_struct(LOG_NOTICE, NULL, v->uuid, v->host, "%s", t->error_message ?: t->release_refused);
        t->requeue = !undoing && t->released_some;
        t->release_refused = mfree(t->release_refused);
        v->desired_on = !undoing;
        if (undoing)
                return record_write(t, v), STEP_DONE;
        (void) vm_flag_set(&v->flags, "restart", NULL);
        return record_power(t, v, VM_POWER_ON), STEP_DONE;
}

/* Release of every group the agent shows held by the VM; the number sent. */
static unsigned release_assigned(struct reconcile_task *t, struct hostlink *l, const struct vm_record *v) {
        struct vm_assignment a;
        unsigned sent = 0;

        if (vm_assignment_parse(v, &a) < 0)
                return 0;
        for (size_t i = 0; i < a.n; i++) {
                struct cluster_gpu *g;

                if (!vm_assignment_group_first(&a, i) || !group_held(l, a.addresses[i], a.groups[i], t->uuid))
                        continue;
                g = hostlink_find_gpu(l, a.addresses[i]) ?: hostlink_find_group(l, a.groups[i]);
                sent += g && group_call(t, l, g, false) >= 0;
        }
        vm_assignment_done(&a);
        return sent;
}

static enum reconcile_step step_stopping(struct reconcile_task *t, struct vm_record *v) {
        struct hostlink *l = clusterd_find_host(reconcile_task_clusterd(t), v->host, NULL);
        _cleanup_free_ char *text = NULL;

        if (!link_up(l)) {
                /* Stays stopping: the releases go on when the host is back. */
                task_error(t, GPUPASS_ERROR_HOST_UNREACHABLE, "Host %s of VM %s is unreachable: its GPUs cannot be "
                           "released now", v->host, v->name);
                return STEP_DONE;
        }
        if (t->release_refused)
                return release_refused(t, v);
        /* The domain stops before its GPUs are released. */
        switch (vm_runtime_step_stop(t, v, &text)) {
        case VM_RUNTIME_WAIT:
                return STEP_WAIT;
        case VM_RUNTIME_UNREACHABLE: /* stays stopping: goes on when libvirt is back */
                task_error(t, GPUPASS_ERROR_HOST_UNREACHABLE, "%s", text ?: "libvirt is unreachable");
                return STEP_DONE;
        case VM_RUNTIME_FAILED: /* it may still run: on, and wanted on */
                task_error(t, GPUPASS_ERROR_RUNTIME_FAILED, "%s", text ?: "libvirt did not stop its domain");
                log_struct(LOG_NOTICE, NULL, v->uuid, v->host, "%s", t->error_message ?: "");
                v->desired_on = true;
                return record_power(t, v, VM_POWER_ON), STEP_DONE;
        default:
                break;
        }
        if (release_assigned(t, l, v) > 0)
                return STEP_WAIT;
        log_struct(LOG_INFO, NULL, v->uuid, v->host, "VM %s powered off%s%s", v->name,
                   v->desired_on ? "" : ", its GPUs on ", v->desired_on ? "" : v->host);
        return record_power(t, v, VM_POWER_OFF);
}

enum reconcile_step reconcile_step(struct reconcile_task *t, struct vm_record *v) {
        _cleanup_free_ char *model = vm_flag_get(v->flags, "reconfigure");

        /* A VM whose GPU changed identity does not run until its GPUs are set again. */
        if (model && v->desired_on) {
                task_error(t, GPUPASS_ERROR_NEEDS_RECONFIGURATION, "VM %s needs its GPU configuration redone: its "
                           "GPU is now %s (a reflash); set its GPUs again, e.g. with that model", v->name, model);
                v->desired_on = false;
                return record_write(t, v);
        }
        switch (v->power) {
        case VM_POWER_OFF:
                return step_off(t, v);
        case VM_POWER_STARTING:
                return step_starting(t, v);
        case VM_POWER_ON:
                return step_on(t, v);
        case VM_POWER_STOPPING:
        default:
                return step_stopping(t, v);
        }
}
