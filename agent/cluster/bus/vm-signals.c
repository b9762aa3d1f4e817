/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The Vm objects' PropertiesChanged, from the registry hook: the record before the first write is kept
 * and the signal carries what differs between it and the record when the signal goes. It goes from the
 * event loop (all writes of one call in one signal), and not while a reconcile of the VM is queued or
 * running: a PowerOn is one signal with Power, Host and Gpus, as before there was a reconciler, and a
 * watcher never sees a state the reconcile passes through. The Power property itself, read meanwhile,
 * shows where the VM stands ("starting", "stopping").
 */
#include <errno.h>
#include <stdlib.h>

#include "bus/cluster-objects.h"
#include "clusterd.h"
#include "lifecycle/reconcile.h"
#include "macro.h"
#include "registry/vm-table.h"
#include "registry/vmstore.h"

struct held_signal {
        struct held_signal *next;
        struct vm_record before;
};

struct vm_signals {
        struct clusterd *c;
        struct vm_table *held;         /* by UUID */
        struct held_signal *list;      /* the same, for the idle turn */
        sd_event_source *defer;
};

static void held_free(struct held_signal *h) {
        vm_record_done(&h->before);
        free(h);
}

static void unlink_held(struct vm_signals *s, struct held_signal *h) {
        for (struct held_signal **p = &s->list; *p; p = &(*p)->next)
                if (*p == h) {
                        *p = h->next;
                        break;
                }
        (void) vm_table_remove(s->held, h->before.uuid);
}

/* Emits the difference between before and now, and forgets h. */
static void emit(struct vm_signals *s, struct held_signal *h) {
        _cleanup_(vm_record_done) struct vm_record now = {};

        unlink_held(s, h);
        if (vmstore_get_by_uuid(s->c->db, h->before.uuid, &now) >= 0)
                vm_object_emit(s->c, &h->before, &now);
        held_free(h);
}

static int on_idle(sd_event_source *source, void *userdata) {
        struct vm_signals *s = userdata;

        for (struct held_signal *h = s->list, *next; h; h = next) {
                next = h->next;
                if (!s->c->reconciler || !reconcile_busy(s->c->reconciler, h->before.uuid))
                        emit(s, h);
        }
        return 0;
}

void vm_signals_flush(struct clusterd *c, const char *uuid) {
        struct held_signal *h = c->vm_signals ? vm_table_get(c->vm_signals->held, uuid) : NULL;

        if (h)
                emit(c->vm_signals, h);
}

void vm_signals_changed(struct clusterd *c, const struct vm_record *old, const struct vm_record *new) {
        struct vm_signals *s = c->vm_signals;
        struct held_signal *h;

        if (!s || !old || !new) {
                if (s && old && (h = vm_table_get(s->held, old->uuid))) {
                        unlink_held(s, h);
                        held_free(h);
                }
                vm_object_emit(c, old, new); /* InterfacesAdded/Removed: at once */
                return;
        }
        if (vm_table_get(s->held, old->uuid))
                return; /* the first "before" stands */
        h = calloc(1, sizeof(*h));
        if (!h || vm_record_copy(old, &h->before) < 0 || vm_table_put(s->held, old->uuid, h) < 0) {
                if (h)
                        held_free(h);
                vm_object_emit(c, old, new); /* not held back, but not lost either */
                return;
        }
        h->next = s->list;
        s->list = h;
        (void) sd_event_source_set_enabled(s->defer, SD_EVENT_ONESHOT);
}

int vm_signals_new(struct clusterd *c, struct vm_signals **ret) {
        struct vm_signals *s = calloc(1, sizeof(*s));
        int r;

        if (!s)
                return -ENOMEM;
        s->c = c;
        r = vm_table_new(&s->held);
        if (r >= 0)
                r = sd_event_add_defer(c->event, &s->defer, on_idle, s);
        if (r >= 0)
                r = sd_event_source_set_enabled(s->defer, SD_EVENT_OFF);
        if (r >= 0)
                /* After the reconciler's queue: a reconcile queued in this turn holds the signal back. */
                r = sd_event_source_set_priority(s->defer, SD_EVENT_PRIORITY_IDLE);
        if (r < 0) {
                vm_signals_free(s);
                return r;
        }
        *ret = s;
        return 0;
}

struct vm_signals *vm_signals_free(struct vm_signals *s) {
        if (!s)
                return NULL;
        while (s->list) {
                struct held_signal *h = s->list;

                s->list = h->next;
                held_free(h);
        }
        vm_table_free(s->held);
        sd_event_source_disable_unref(s->defer);
        free(s);
        return NULL;
}
