/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include <systemd/sd-bus.h>

/*
 * The reconciler: the one code that calls Claim and Release. The registry holds what is wanted (each VM's
 * desired power) and where the VM stands (its assignment and its power: off, starting, on, stopping); the
 * agents' objects are what is observed. reconcile(vm) moves the VM one step at a time toward what is
 * wanted, looking at the record and the view afresh at every step (level-triggered, idempotent):
 *
 *   desired on:  off -> place, write the assignment (starting) -> Claim each group not held -> on
 *   desired off: on/starting -> stopping -> Release each group still held -> off
 *
 * A refused Claim releases what was claimed and places again without that host; a VM that cannot be
 * placed (or whose host is lost while claiming) is given up: wanted off again, with the reason for whoever
 * waits. A refused Release puts the VM back on (wanted on): it still runs. Claims of the VM found where it
 * is not assigned are released (a crash, a hand-made claim). One reconcile per VM at a time; a request
 * during one runs it again after. Requests queue and start from the event loop, in order: placements made
 * in one batch see each other's reservations (placement-view.h).
 */
struct clusterd;
struct vm_record;
struct reconciler;

/* The end of a reconcile for those who wait for it. */
struct reconcile_outcome {
        const struct vm_record *vm; /* the record at the end; NULL: the VM was deleted meanwhile */
        const char *error_name;     /* NULL: nothing was given up */
        const char *error_message;
};
typedef void (*reconcile_done_t)(struct clusterd *c, const struct reconcile_outcome *o, void *userdata);

int reconciler_new(struct clusterd *c, struct reconciler **ret);
/* From now on a reconcile decides nothing: the queued ones end now, the running ones at their next step
 * (when their agent calls are answered or failed), and their callers hear "stopping". */
void reconciler_stop(struct reconciler *rc);
/* Every waiting caller is answered first ("the aggregator is stopping"); agent calls still waiting must
 * have been failed before (hostlink_free does). */
struct reconciler *reconciler_free(struct reconciler *rc);
/* The start-up: until every host has answered or failed once, queued reconciles (an operator's PowerOn
 * right after the aggregator started, a host's return) wait, since placement does not know the hosts
 * yet; at most RECONCILER_HOLD_MAX_USEC, so that a hung host does not stop the cluster. */
#define RECONCILER_HOLD_MAX_USEC (10 * 1000 * 1000ULL)
int reconciler_hold(struct reconciler *rc);
/* The end of the hold (a no-op after it): first(c) (may be NULL) queues its reconciles, which go before
 * those that waited. */
void reconciler_release(struct reconciler *rc, void (*first)(struct clusterd *c));
/* Called when a VM's reconcile is over, before its waiters are answered (its objects' signals go first). */
void reconciler_set_idle_hook(struct reconciler *rc, void (*hook)(struct clusterd *c, const char *uuid));

struct clusterd *reconciler_clusterd(const struct reconciler *rc);

/* Queues a reconcile of the VM. done (may be NULL) gets the outcome once, when the VM's reconcile is over. */
int reconcile_vm(struct reconciler *rc, const char *uuid, reconcile_done_t done, void *userdata);
/* An operator wants the VM on (placed on any host, not only the one of its restart flag, which stays
 * until the VM is on: a PowerOn refused keeps it waiting there) or off (its restart flag goes). The wish
 * is written with the reconcile's first write: the assignment for a PowerOn, one fsync for both. */
int reconcile_vm_want(struct reconciler *rc, const char *uuid, bool on, reconcile_done_t done, void *userdata);
/* Whether a reconcile of the VM is queued or running. */
bool reconcile_busy(const struct reconciler *rc, const char *uuid);
/* Where the VM is headed: an operator's wish not yet written, else the record's desired power. */
bool reconcile_heading_on(const struct reconciler *rc, const struct vm_record *v);

/* Several VMs, one answer: done_all once every VM added has its outcome (at once when none was added). */
struct reconcile_batch;
typedef void (*reconcile_batch_done_t)(struct clusterd *c, struct reconcile_batch *b, void *userdata);
int reconcile_batch_new(struct reconciler *rc, reconcile_batch_done_t done_all, void *userdata,
                        struct reconcile_batch **ret);
int reconcile_batch_add(struct reconcile_batch *b, const char *uuid);
/* No more VMs: done_all may come now. The batch is freed after done_all returns. */
void reconcile_batch_seal(struct reconcile_batch *b);
/* In done_all: the reasons of the VMs whose reconcile gave up (error messages, in the order they ended),
 * and the UUIDs of those that ended off, or on. */
char **reconcile_batch_failures(const struct reconcile_batch *b);
char **reconcile_batch_ended(const struct reconcile_batch *b, bool on);

/* Whether l's agent shows every IOMMU group of the VM's assignment claimed by the VM. */
struct hostlink;
bool reconcile_holds_all(struct hostlink *l, const struct vm_record *v);

/* reconcile-step.c, inside the reconciler. */
struct reconcile_task;
enum reconcile_step {
        STEP_AGAIN, /* the record was written: look again */
        STEP_WAIT,  /* agent calls sent: look again when they have all answered */
        STEP_DONE,  /* where it is wanted, or given up */
};
enum reconcile_step reconcile_step(struct reconcile_task *t, struct vm_record *v);
