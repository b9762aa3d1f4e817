/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* An operator's PowerOn and PowerOff: the desired power in the registry, then the VM's reconcile. */
#include <errno.h>

#include "clusterd.h"
#include "lifecycle/lifecycle.h"
#include "registry/vmstore.h"

static int want(struct clusterd *c, struct vm_record *v, bool on, reconcile_done_t done, void *userdata) {
        int r;

        v->desired_on = on;
        /* PowerOff: wanted off, also once the host its restart flag names is back. */
        if (!on && vm_flag_set(&v->flags, "restart", NULL) < 0)
                return -ENOMEM;
        r = vmstore_update(c->db, v);
        if (r < 0)
                return r;
        r = reconcile_vm(c->reconciler, v->uuid, done, userdata);
        /* An operator's PowerOn places the VM anywhere, not only where it ran before a maintenance. */
        if (r >= 0 && on)
                reconcile_unpin(c->reconciler, v->uuid);
        return r;
}

int lifecycle_power_on(struct clusterd *c, struct vm_record *v, reconcile_done_t done, void *userdata) {
        return want(c, v, true, done, userdata);
}

int lifecycle_power_off(struct clusterd *c, struct vm_record *v, reconcile_done_t done, void *userdata) {
        return want(c, v, false, done, userdata);
}
