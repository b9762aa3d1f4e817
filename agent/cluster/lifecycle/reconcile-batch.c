/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Several VMs' reconciles, one answer (maintenance, a host back): counts the outcomes as they come. */
#include <errno.h>
#include <stdlib.h>

#include "lifecycle/reconcile.h"
#include "registry/vmstore.h"
#include "macro.h"
#include "strv.h"

struct reconcile_batch {
        struct reconciler *rc;
        reconcile_batch_done_t done_all;
        void *userdata;
        size_t pending;
        bool sealed;
        char **failures;
        char **ended_on, **ended_off;
};

int reconcile_batch_new(struct reconciler *rc, reconcile_batch_done_t done_all, void *userdata,
                        struct reconcile_batch **ret) {
        struct reconcile_batch *b = calloc(1, sizeof(*b));

        if (!b)
                return -ENOMEM;
        *b = (struct reconcile_batch) { .rc = rc, .done_all = done_all, .userdata = userdata };
        *ret = b;
        return 0;
}

static void batch_maybe_done(struct clusterd *c, struct reconcile_batch *b) {
        if (!b->sealed || b->pending > 0)
                return;
        if (b->done_all)
                b->done_all(c, b, b->userdata);
        strv_free(b->failures);
        strv_free(b->ended_on);
        strv_free(b->ended_off);
        free(b);
}

static void on_vm_done(struct clusterd *c, const struct reconcile_outcome *o, void *userdata) {
        struct reconcile_batch *b = userdata;

        if (o->error_name)
                (void) strv_extend(&b->failures, o->error_message ?: o->error_name);
        if (o->vm && o->vm->power == VM_POWER_ON)
                (void) strv_extend(&b->ended_on, o->vm->uuid);
        else if (o->vm && o->vm->power == VM_POWER_OFF)
                (void) strv_extend(&b->ended_off, o->vm->uuid);
        b->pending--;
        batch_maybe_done(c, b);
}

int reconcile_batch_add(struct reconcile_batch *b, const char *uuid) {
        int r;

        b->pending++;
        r = reconcile_vm(b->rc, uuid, on_vm_done, b);
        if (r < 0)
                b->pending--;
        return r;
}

void reconcile_batch_seal(struct reconcile_batch *b) {
        b->sealed = true;
        batch_maybe_done(reconciler_clusterd(b->rc), b);
}

char **reconcile_batch_failures(const struct reconcile_batch *b) {
        return b->failures;
}

char **reconcile_batch_ended(const struct reconcile_batch *b, bool on) {
        return on ? b->ended_on : b->ended_off;
}
