/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-bus.h>

/*
 * The aggregator's per-host and per-VM objects: org.gpupass.cluster1.Host at
 * /org/gpupass/cluster1/host/<name> and org.gpupass.cluster1.Vm at /org/gpupass/cluster1/vm/<uuid>, both
 * through sd_bus_path_encode, under the ObjectManager at /org/gpupass/cluster1. Their PropertiesChanged
 * come from two places only: clusterd_host_changed() (every change hostlink.c sees) and the registry hook
 * (every VM write, whichever file makes it).
 */
struct clusterd;
struct hostlink;
struct cluster_gpu;
struct vm_record;

/* What a Host object shows; kept as last announced so that only what changed is emitted. */
struct host_values {
        const char *state;        /* static text */
        char *unreachable_reason;
        uint32_t cpus;
        uint64_t memory_mib;
        uint32_t free_cpus;
        uint64_t free_memory_mib;
        uint32_t gpus;
        uint32_t free_gpus;
        bool maintenance;
        char **foreign;           /* "ADDRESS OWNER": claims of VMs this registry does not know */
};

struct host_view {
        struct clusterd *clusterd;
        struct hostlink *link;
        char *path;
        uint32_t cpus_used;       /* reserved by the VMs on there, from the registry */
        uint64_t memory_used_mib;
        struct host_values shown;
        char *shown_gpus;         /* the Gpus property last announced, as host_gpus_text() gives it */
};

/* host-object.c */
/* Allocates one view per host and sums what the running VMs reserve; nothing is emitted. */
int host_views_setup(struct clusterd *c);
void host_views_free(struct clusterd *c);
int host_views_rebuild(struct clusterd *c, char **old_paths);
struct host_view *host_view_find(struct clusterd *c, const char *name);
/* The values now (unreachable_reason points into the link; foreign is allocated: host_values_done). */
void host_values_compute(const struct host_view *v, struct host_values *ret);
void host_values_done(struct host_values *h);
/* Recomputes the values of l's object and emits PropertiesChanged for those that differ. */
void host_view_refresh(struct clusterd *c, struct hostlink *l);
/* A VM changed: moves its reservation from old's host to new's (either may be NULL) and refreshes both. */
void host_views_vm_changed(struct clusterd *c, const struct vm_record *old, const struct vm_record *new);
/* The placement view of free: a GPU is free when its agent is reachable and reports it "host" or "vfio". */
bool cluster_gpu_is_free_on(const struct hostlink *l, size_t index);

/* host-bus.c */
extern const sd_bus_vtable host_vtable[];
/* One GPU of l as ListGpus and the Host's Gpus property give it, a "(sssssssbas)": host, address, model, mode,
 * state ("unreachable" while the host is), owner VM, previous model, needs reconfiguration, companions. */
int cluster_gpu_append(sd_bus_message *m, const struct hostlink *l, const struct cluster_gpu *g);
/* The same values of all of l's GPUs as one text, to tell whether the Gpus property changed. */
int host_gpus_text(const struct hostlink *l, char **ret);
int host_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **ret_found,
                     sd_bus_error *error);
int host_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***ret_nodes, sd_bus_error *error);
void host_emit_properties_changed(struct host_view *v, char **names);

/* vm-object-bus.c */
extern const sd_bus_vtable vm_object_vtable[];
int vm_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **ret_found,
                   sd_bus_error *error);
int vm_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***ret_nodes, sd_bus_error *error);
/* InterfacesAdded (old NULL), InterfacesRemoved (new NULL) or PropertiesChanged for what differs. */
void vm_object_emit(struct clusterd *c, const struct vm_record *old, const struct vm_record *new);

/* vm-signals.c: a Vm's PropertiesChanged is held back while a reconcile of the VM is queued or runs and
 * then carries the difference between before and after in one signal (a PowerOn: Power, Host and Gpus
 * together, not its intermediate "starting"); other changes go out from the event loop's next idle turn,
 * all writes of one call in one signal. InterfacesAdded/Removed go at once. */
struct vm_signals;
int vm_signals_new(struct clusterd *c, struct vm_signals **ret);
struct vm_signals *vm_signals_free(struct vm_signals *s);
void vm_signals_changed(struct clusterd *c, const struct vm_record *old, const struct vm_record *new);
/* The VM's reconcile is over: what it changed is announced now. */
void vm_signals_flush(struct clusterd *c, const char *uuid);
/* RuntimeState changed on host: for the VM uuid if it is on that host, or (uuid NULL) every VM there. */
void vm_objects_runtime_changed(struct clusterd *c, const char *host, const char *uuid);

/* cluster-objects.c */
/* A registry write (the hook): the Vm object's signals and the Host objects' reservations. */
void cluster_objects_vm_changed(struct clusterd *c, const struct vm_record *old, const struct vm_record *new);
/* Registers both object kinds on c->bus (after the ObjectManager) and hooks the registry. */
int cluster_objects_bus_setup(struct clusterd *c);
void cluster_objects_done(struct clusterd *c);
