/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The reconciler's machinery: one task per VM being reconciled (a table by UUID), a queue that starts
 * tasks from the event loop, the callers waiting for a VM's outcome, and batches of VMs. The decisions
 * themselves are reconcile-step.c's.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clusterd.h"
#include "gpupass/bus-names.h"
#include "lifecycle/reconcile-private.h"
#include "log.h"
#include "macro.h"
#include "registry/vm-table.h"
#include "registry/vmstore.h"
#include "strv.h"

/* A VM's steps per look: each moves its record forward, so a handful suffices; more is a loop. */
#define STEPS_MAX 32
#define STOPPING_MESSAGE "gpupass-clusterd is stopping; the VM's record shows where it stands"

struct reconciler {
        struct clusterd *c;
        struct vm_table *tasks;
        struct reconcile_task *queue_head, *queue_tail;
        sd_event_source *defer;
        sd_event_source *hold_timer; /* the bound of the start-up's hold */
        bool held;                   /* the start-up: queued reconciles wait (reconciler_hold) */
        void (*idle_hook)(struct clusterd *c, const char *uuid);
        bool stopping;
        bool batching;     /* on_queue: inside one registry transaction */
};

struct clusterd *reconciler_clusterd(const struct reconciler *rc) {
        return rc->c;
}

struct clusterd *reconcile_task_clusterd(const struct reconcile_task *t) {
        return t->rc->c;
}

static void task_round_done(struct reconcile_task *t) {
        for (size_t i = 0; t->failures && i < t->n_hosts; i++)
                free(t->failures[i]);
        t->failures = mfree(t->failures);
        t->excluded = mfree(t->excluded);
        t->release_refused = mfree(t->release_refused);
        t->error_message = mfree(t->error_message);
        t->error_name = NULL;
        t->claim_refused = t->released_some = t->unpinned = t->want_unsaved = false;
        t->want = -1;
        t->runtime_error = mfree(t->runtime_error);
        t->domain_started = t->domain_stop_sent = t->domain_never_started = false;
}

static void task_free(struct reconcile_task *t) {
        task_round_done(t);
        free(t);
}

/* Everyone waiting for t hears the outcome; t goes. */
static void task_answer(struct reconcile_task *t) {
        struct reconciler *rc = t->rc;
        _cleanup_(vm_record_done) struct vm_record v = {};
        bool deleted = vmstore_get_by_uuid(rc->c->db, t->uuid, &v) < 0;
        struct reconcile_outcome o = { .vm = deleted ? NULL : &v, .error_name = t->error_name,
                                       .error_message = t->error_message };

        (void) vm_table_remove(rc->tasks, t->uuid);
        if (rc->idle_hook)
                rc->idle_hook(rc->c, t->uuid);
        while (t->waiters) {
                struct reconcile_waiter *w = t->waiters;

                t->waiters = w->next;
                if (w->done)
                        w->done(rc->c, &o, w->userdata);
                free(w);
        }
        task_free(t);
}

static void queue_push(struct reconciler *rc, struct reconcile_task *t);

static void task_finish(struct reconcile_task *t) {
        struct reconciler *rc = t->rc;

        t->running = false;
        clusterd_job_end(rc->c);
        if (t->requeue && !rc->stopping) {
                t->requeue = false;
                queue_push(rc, t); /* a change came during this reconcile: look again */
                return;
        }
        task_answer(t);
}

static void task_set_error(struct reconcile_task *t, const char *name, const char *message) {
        if (t->error_name)
                return; /* the first reason stands */
        t->error_name = name;
        t->error_message = strdup(message);
}

int reconcile_task_write(struct reconcile_task *t, struct vm_record *v, bool durable) {
        int r = (durable ? vmstore_update : vmstore_update_lazy)(t->rc->c->db, v);

        if (r >= 0)
                t->want_unsaved = false;
        return r;
}

/* An operator's wish, into the record in memory: the step's write carries it. */
static int apply_want(struct reconcile_task *t, struct vm_record *v) {
        if (t->want < 0)
                return 0;
        v->desired_on = t->want;
        if (!t->want && vm_flag_set(&v->flags, "restart", NULL) < 0)
                return -ENOMEM;
        t->want = -1;
        t->want_unsaved = true;
        return 0;
}

static void task_run(struct reconcile_task *t) {
        struct clusterd *c = t->rc->c;

        for (unsigned n = 0; n < STEPS_MAX; n++) {
                _cleanup_(vm_record_done) struct vm_record v = {};
                enum reconcile_step s;
                int r;

                if (t->rc->stopping) {
                        task_set_error(t, SD_BUS_ERROR_FAILED, STOPPING_MESSAGE);
                        break;
                }
                r = vmstore_get_by_uuid(c->db, t->uuid, &v);
                if (r == -ENOENT)
                        break; /* deleted: nothing to reconcile */
                if (r >= 0)
                        r = apply_want(t, &v);
                if (r < 0) {
                        task_set_error(t, GPUPASS_ERROR_STATE_NOT_SAVED, "Reading the VM registry failed");
                        break;
                }
                s = reconcile_step(t, &v);
                /* A wish the step did not write (nothing else to do): written now. */
                if (t->want_unsaved && reconcile_task_write(t, &v, true) < 0)
                        task_set_error(t, GPUPASS_ERROR_STATE_NOT_SAVED, "Writing the VM registry failed");
                if (s == STEP_WAIT)
                        return;
                if (s == STEP_DONE) {
                        task_finish(t);
                        return;
                }
        }
        if (!t->rc->stopping)
                log_error("VM %s: no end after %d steps, giving up this reconcile", t->uuid, STEPS_MAX);
        task_finish(t);
}

void reconcile_task_call_done(struct reconcile_task *t) {
        if (t->calls > 0)
                t->calls--;
        if (t->calls == 0)
                task_run(t);
}

static int task_start(struct reconcile_task *t) {
        struct clusterd *c = t->rc->c;

        t->queued = false;
        t->running = true;
        clusterd_job_begin(c);
        if (!t->excluded) {
                t->n_hosts = c->n_hosts;
                t->excluded = calloc(c->n_hosts ?: 1, 1);
                t->failures = calloc(c->n_hosts ?: 1, sizeof(char *));
                if (!t->excluded || !t->failures) {
                        task_set_error(t, SD_BUS_ERROR_NO_MEMORY, "Out of memory");
                        task_finish(t);
                        return -ENOMEM;
                }
        }
        task_run(t);
        return 0;
}

bool reconcile_task_batching(const struct reconcile_task *t) {
        return t->rc->batching;
}

/* Takes the queued tasks (not those queued meanwhile: a requeue waits for the next turn) into a list. */
static struct reconcile_task *queue_take(struct reconciler *rc) {
        struct reconcile_task *head = rc->queue_head;

        rc->queue_head = rc->queue_tail = NULL;
        return head;
}

static int on_queue(sd_event_source *s, void *userdata) {
        struct reconciler *rc = userdata;
        struct reconcile_task *started = NULL;
        bool committed;

        (void) sd_event_source_set_enabled(rc->defer, SD_EVENT_OFF);
        if (rc->held)
                return 0; /* reconciler_release() starts them */
        /* Started in order, each placing before the next is looked at: a batch sees its own reservations.
         * All their first writes are one transaction, one fsync; their Claims go after the commit. */
        rc->batching = vmstore_begin(rc->c->db) >= 0;
        for (struct reconcile_task *t = queue_take(rc), *next, *still; t; t = next) {
                char uuid[sizeof(t->uuid)];

                next = t->queue_next;
                t->queue_next = NULL;
                memcpy(uuid, t->uuid, sizeof(uuid));
                (void) task_start(t); /* t may be answered and freed: look it up again */
                still = vm_table_get(rc->tasks, uuid);
                if (still && still->running && still->deferred && !still->queued) {
                        still->queue_next = started; /* waits for its calls, sent after the commit */
                        started = still;
                }
        }
        committed = !rc->batching || vmstore_commit(rc->c->db) >= 0;
        if (!committed)
                log_error("Cannot commit the registry's writes: the reconciles' agent calls are not sent");
        rc->batching = false;
        for (struct reconcile_task *t = started, *next; t; t = next) {
                next = t->queue_next;
                t->queue_next = NULL;
                reconcile_task_send_deferred(t, committed);
        }
        return 0;
}

static void queue_push(struct reconciler *rc, struct reconcile_task *t) {
        t->queued = true;
        if (rc->queue_tail)
                rc->queue_tail->queue_next = t;
        else
                rc->queue_head = t;
        rc->queue_tail = t;
        (void) sd_event_source_set_enabled(rc->defer, SD_EVENT_ONESHOT);
}

int reconcile_vm(struct reconciler *rc, const char *uuid, reconcile_done_t done, void *userdata) {
        struct reconcile_task *t = vm_table_get(rc->tasks, uuid);
        struct reconcile_waiter *w;
        int r;

        if (rc->stopping)
                return -ESHUTDOWN;
        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        if (!t) {
                t = calloc(1, sizeof(*t));
                r = t && strlen(uuid) < sizeof(t->uuid) ? 0 : -ENOMEM;
                if (r >= 0) {
                        t->rc = rc;
                        t->want = -1;
                        strcpy(t->uuid, uuid);
                        r = vm_table_put(rc->tasks, uuid, t);
                }
                if (r < 0) {
                        free(t);
                        free(w);
                        return r;
                }
                queue_push(rc, t);
        } else if (t->running)
                t->requeue = true;
        *w = (struct reconcile_waiter) { .next = t->waiters, .done = done, .userdata = userdata };
        t->waiters = w;
        return 0;
}

int reconcile_vm_want(struct reconciler *rc, const char *uuid, bool on, reconcile_done_t done, void *userdata) {
        struct reconcile_task *t;
        int r;

        r = reconcile_vm(rc, uuid, done, userdata);
        if (r < 0)
                return r;
        t = vm_table_get(rc->tasks, uuid);
        t->want = on;
        t->unpinned = on;
        return 0;
}

bool reconcile_busy(const struct reconciler *rc, const char *uuid) {
        return vm_table_get(rc->tasks, uuid) != NULL;
}

bool reconcile_heading_on(const struct reconciler *rc, const struct vm_record *v) {
        const struct reconcile_task *t = vm_table_get(rc->tasks, v->uuid);

        return t && t->want >= 0 ? t->want : v->desired_on;
}

static int on_hold_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        struct reconciler *rc = userdata;

        log_warning("Hosts still connecting after %llu s: reconciles go on without them",
                    (unsigned long long) (RECONCILER_HOLD_MAX_USEC / 1000000));
        reconciler_release(rc, NULL);
        return 0;
}

int reconciler_hold(struct reconciler *rc) {
        struct clusterd *c = rc->c;
        int r;

        r = sd_event_add_time_relative(c->event, &rc->hold_timer, CLOCK_MONOTONIC, RECONCILER_HOLD_MAX_USEC, 0,
                                       on_hold_timeout, rc);
        if (r < 0)
                return r;
        rc->held = true;
        return 0;
}

void reconciler_release(struct reconciler *rc, void (*first)(struct clusterd *c)) {
        struct reconcile_task *waited = queue_take(rc);

        rc->hold_timer = sd_event_source_disable_unref(rc->hold_timer);
        /* first's reconciles (a previous run's interrupted calls) go before those that waited: placement
         * then sees what the interrupted ones hold. */
        if (first)
                first(rc->c);
        for (struct reconcile_task *t = waited, *next; t; t = next) {
                next = t->queue_next;
                t->queue_next = NULL;
                queue_push(rc, t);
        }
        if (rc->held && rc->queue_head)
                log_info("Hosts connected: the reconciles that waited for them start");
        rc->held = false;
        if (rc->queue_head)
                (void) sd_event_source_set_enabled(rc->defer, SD_EVENT_ONESHOT);
}

void reconciler_set_idle_hook(struct reconciler *rc, void (*hook)(struct clusterd *c, const char *uuid)) {
        rc->idle_hook = hook;
}

int reconciler_new(struct clusterd *c, struct reconciler **ret) {
        struct reconciler *rc = calloc(1, sizeof(*rc));
        int r;

        if (!rc)
                return -ENOMEM;
        rc->c = c;
        r = vm_table_new(&rc->tasks);
        if (r >= 0)
                r = sd_event_add_defer(c->event, &rc->defer, on_queue, rc);
        if (r >= 0)
                r = sd_event_source_set_enabled(rc->defer, SD_EVENT_OFF);
        /* After the bus has handed over every call waiting: a burst of PowerOn is one batch. */
        if (r >= 0)
                r = sd_event_source_set_priority(rc->defer, SD_EVENT_PRIORITY_NORMAL + 1);
        if (r < 0) {
                reconciler_free(rc);
                return r;
        }
        *ret = rc;
        return 0;
}

void reconciler_stop(struct reconciler *rc) {
        rc->stopping = true;
        /* The queued ones end now; the running ones at their next step. */
        while (rc->queue_head) {
                struct reconcile_task *t = rc->queue_head;

                rc->queue_head = t->queue_next;
                if (!rc->queue_head)
                        rc->queue_tail = NULL;
                t->queue_next = NULL;
                t->queued = false;
                task_set_error(t, SD_BUS_ERROR_FAILED, STOPPING_MESSAGE);
                task_answer(t);
        }
}

struct reconciler *reconciler_free(struct reconciler *rc) {
        struct reconcile_task *t;

        if (!rc)
                return NULL;
        rc->stopping = true;
        while ((t = vm_table_steal_first(rc->tasks))) {
                /* Queued, or running with no agent call left (the links answered theirs when freed). */
                if (t->running)
                        clusterd_job_end(rc->c);
                (void) vm_table_put(rc->tasks, t->uuid, t); /* task_answer takes it out */
                task_set_error(t, SD_BUS_ERROR_FAILED, STOPPING_MESSAGE);
                task_answer(t);
        }
        sd_event_source_disable_unref(rc->defer);
        sd_event_source_disable_unref(rc->hold_timer);
        vm_table_free(rc->tasks);
        free(rc);
        return NULL;
}
