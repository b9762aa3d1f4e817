/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* An operator's PowerOn and PowerOff: the desired power, written by the VM's reconcile with its first
 * step (for a PowerOn, in the same write as the assignment: one fsync before the Claims). */
#include "clusterd.h"
#include "lifecycle/lifecycle.h"
#include "registry/vmstore.h"

int lifecycle_power_on(struct clusterd *c, struct vm_record *v, reconcile_done_t done, void *userdata) {
        return reconcile_vm_want(c->reconciler, v->uuid, true, done, userdata);
}

int lifecycle_power_off(struct clusterd *c, struct vm_record *v, reconcile_done_t done, void *userdata) {
        return reconcile_vm_want(c->reconciler, v->uuid, false, done, userdata);
}
