/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Registers the Host and Vm objects and connects them to their two sources of change: the registry hook
 * (every VM write, from any file; clusterd.c passes it on) and clusterd_host_changed() (every change a
 * host link sees).
 */
#include "clusterd.h"
#include "bus/cluster-objects.h"
#include "gpupass/bus-names.h"
#include "lifecycle/reconcile.h"
#include "registry/vmstore.h"

void cluster_objects_vm_changed(struct clusterd *c, const struct vm_record *old, const struct vm_record *new) {
        vm_signals_changed(c, old, new);
        host_views_vm_changed(c, old, new);
}

int cluster_objects_bus_setup(struct clusterd *c) {
        int r;

        r = host_views_setup(c);
        if (r < 0)
                return r;
        r = sd_bus_add_fallback_vtable(c->bus, NULL, GPUPASS_CLUSTER_HOST_PREFIX, GPUPASS_CLUSTER_HOST_IFACE,
                                       host_vtable, host_object_find, c);
        if (r < 0)
                return r;
        r = sd_bus_add_node_enumerator(c->bus, NULL, GPUPASS_CLUSTER_HOST_PREFIX, host_node_enumerator, c);
        if (r < 0)
                return r;
        r = sd_bus_add_fallback_vtable(c->bus, NULL, GPUPASS_CLUSTER_VM_PREFIX, GPUPASS_CLUSTER_VM_IFACE,
                                       vm_object_vtable, vm_object_find, c);
        if (r < 0)
                return r;
        r = sd_bus_add_node_enumerator(c->bus, NULL, GPUPASS_CLUSTER_VM_PREFIX, vm_node_enumerator, c);
        if (r < 0)
                return r;
        r = vm_signals_new(c, &c->vm_signals);
        if (r < 0)
                return r;
        reconciler_set_idle_hook(c->reconciler, vm_signals_flush);
        return 0;
}

void cluster_objects_done(struct clusterd *c) {
        vmstore_set_hook(c->db, NULL, NULL);
        c->vm_signals = vm_signals_free(c->vm_signals);
        host_views_free(c);
        vm_record_done(&c->vm_slot);
}
