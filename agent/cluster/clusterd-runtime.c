/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The runtime links' news, routed: a link (link/) reports through callbacks and never decides; here each
 * report goes to the lifecycle (what a stopped domain means for its VM) and to the Vm objects (RuntimeState).
 */
#include "bus/cluster-objects.h"
#include "clusterd.h"
#include "lifecycle/vm-runtime.h"
#include "link/runtime-libvirt.h"
#include "macro.h"

static void on_state_changed(struct runtime_link *r, void *userdata) {
        struct clusterd *c = userdata;

        vm_objects_runtime_changed(c, runtime_link_name(r), NULL);
        vm_runtime_link_changed(c, r);
}

static void on_domain_changed(struct runtime_link *r, const char *uuid, const char *state, const char *why,
                              bool expected, void *userdata) {
        struct clusterd *c = userdata;

        /* A change a reconcile makes or follows is announced with the VM's Power at its end, in one
         * signal; any other (a domain of a VM that is off started by someone else) now. */
        if (!vm_runtime_domain_changed(c, r, uuid, state, why, expected))
                vm_objects_runtime_changed(c, runtime_link_name(r), uuid);
}

static const struct runtime_callbacks runtime_callbacks = {
        .state_changed = on_state_changed,
        .domain_changed = on_domain_changed,
};

int clusterd_runtime_sync(struct clusterd *c) {
        _cleanup_strv_free_ char **dropped = NULL;
        int r;

        r = vm_runtimes_sync(c, &runtime_callbacks, c, &dropped);
        /* A new link announces itself as it connects; a dropped one's VMs are "none" now. */
        for (char **h = dropped; h && *h; h++)
                vm_objects_runtime_changed(c, *h, NULL);
        return r;
}
