/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Inside lifecycle/: one VM's reconcile, shared by reconcile.c (queue, waiters) and reconcile-step.c. */

#include <stddef.h>
#include <stdint.h>

#include "lifecycle/reconcile.h"

struct reconcile_waiter {
        struct reconcile_waiter *next;
        reconcile_done_t done;
        void *userdata;
};

struct reconcile_task {
        struct reconciler *rc;
        char uuid[37];
        bool queued, running, requeue;
        struct reconcile_task *queue_next;
        struct reconcile_waiter *waiters;

        /* This reconcile, until its waiters are answered. */
        size_t n_hosts;
        uint8_t *excluded;          /* per host: a Claim was refused there */
        char **failures;            /* per host: the refusal */
        unsigned calls;             /* agent calls not answered yet */
        bool claim_refused;         /* a Claim was refused: undo, then another host */
        bool unpinned;              /* placed anywhere, not only on its restart:HOST */
        int want;                   /* an operator's PowerOn (1) or PowerOff (0) not applied yet; -1 none */
        bool want_unsaved;          /* applied to the record in memory, not written yet */
        struct step_call *deferred; /* agent calls waiting for the queue's commit (reconcile-step.c) */
        bool released_some;
        char *release_refused;      /* the first Release the agent refused */
        bool domain_started;        /* the runtime (vm-runtime.c): this reconcile started the domain, */
        bool domain_stop_sent;      /* stopped it, */
        bool domain_never_started;  /* gave up its start without asking libvirt */
        char *runtime_error;        /* libvirt's error of the last start or stop */
        const char *error_name;     /* given up: why, for the waiters */
        char *error_message;
};

struct clusterd *reconcile_task_clusterd(const struct reconcile_task *t);
/* Writes v: durably (before agent calls), or lazily (the end of a transition a crash may replay). */
int reconcile_task_write(struct reconcile_task *t, struct vm_record *v, bool durable);
/* Whether t runs inside the queue's transaction: its agent calls wait for the commit. */
bool reconcile_task_batching(const struct reconcile_task *t);
/* After the queue's commit: t's agent calls go (committed), or fail (the assignment is not on disk). */
void reconcile_task_send_deferred(struct reconcile_task *t, bool committed);
/* An agent call of t answered: the next step once all have. */
void reconcile_task_call_done(struct reconcile_task *t);
