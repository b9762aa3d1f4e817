/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "clusterd-config.h"
#include "registry/vmstore.h"

struct host_runtime;
struct hostlink;
struct placement_view;
struct reconciler;
struct sqlite3;
struct vm_signals;

/* gpupass-clusterd: every agent's objects in one view, exported as org.gpupass.cluster1. */
struct clusterd {
        sd_event *event;
        sd_bus *bus;
        struct clusterd_config config;
        struct hostlink **hosts;
        size_t n_hosts;
        struct sqlite3 *db;       /* the VM registry */
        bool admin_gid_valid;
        gid_t admin_gid;
        unsigned jobs;            /* reconciles running (lifecycle/reconcile.c) */
        bool reload_pending;      /* a reload's host changes wait for jobs to reach 0 */
        sd_event_source *reload_defer;
        sd_event_source *hosts_prepare; /* hostlink-io.c: re-arms the host connections */
        bool started;             /* lifecycle_startup() ran: every host answered or failed once */
        struct host_view *host_views; /* the Host objects, one per host, same order */
        struct vm_record vm_slot;     /* the Vm object sd-bus is looking at (vm-object-bus.c) */
        struct vm_signals *vm_signals; /* Vm PropertiesChanged held back while a reconcile runs */
        struct placement_view *placement; /* lifecycle/placement-view.c */
        struct reconciler *reconciler;    /* lifecycle/reconcile.c */
        struct vm_table *known_vms;       /* the registry's UUIDs: whose claims are ours, not foreign */
        struct host_runtime *runtimes; /* lifecycle/vm-runtime.h: the Runtime=libvirt hosts' links */
        size_t n_runtimes;
};

/* clusterd.c: the daemon's life, as main.c runs it. */
int clusterd_new(struct clusterd **ret);
int clusterd_startup(struct clusterd *c);
int clusterd_run(struct clusterd *c);
struct clusterd *clusterd_free(struct clusterd *c);

sd_event *clusterd_event(struct clusterd *c);

/* clusterd-reload.c. A job holds host pointers and per-host arrays across agents' replies: hosts are
 * added or removed by a reload only while no job runs. */
void clusterd_job_begin(struct clusterd *c);
void clusterd_job_end(struct clusterd *c);
/* Rereads clusterd.conf: AdminGroup now, hosts added/removed/readdressed once no job runs. A file that
 * does not parse changes nothing. */
int clusterd_reload(struct clusterd *c);
int clusterd_config_path(char **ret);
void clusterd_resolve_admin_group(struct clusterd *c);
/* A host's objects or state changed (the link's callback); l NULL: the host list changed (a reload). */
void clusterd_host_changed(struct clusterd *c, struct hostlink *l);
/* A new link for a configured host, reporting to the daemon. */
int clusterd_host_new(struct clusterd *c, const struct host_config *h, struct hostlink **ret);
int clusterd_bus_setup(struct clusterd *c);
/* Root or the configured admin group, from the sender's credentials; AccessDenied otherwise. */
int clusterd_check_admin(struct clusterd *c, sd_bus_message *m, sd_bus_error *error);
struct vm_record;
/* The connected host of that name (and its index in c->hosts), or NULL. */
struct hostlink *clusterd_find_host(struct clusterd *c, const char *name, size_t *ret_index);
/* Whether name is a configured host (userdata: the struct clusterd): the configuration, which after a
 * reload may list hosts that c->hosts gets only once the running calls are done. */
bool clusterd_is_host(const char *name, void *userdata);
/* A refusal of vm-spec.h as the bus error it is: InvalidArgument, NotFound (a host not in the cluster), or
 * -ENOMEM. */
int clusterd_spec_error(int r, const char *why, sd_bus_error *error);
/* A VM by UUID or name; NotFound naming what was asked for. */
int clusterd_lookup_vm(struct clusterd *c, const char *vm, struct vm_record *ret, sd_bus_error *error);
/* The prologue of the methods that take one VM: the caller check (when admin), the VM argument, the VM. */
int clusterd_vm_from_call(struct clusterd *c, sd_bus_message *call, bool admin, struct vm_record *ret,
                          sd_bus_error *error);
extern const sd_bus_vtable vm_registry_vtable[];
extern const sd_bus_vtable power_vtable[];
extern const sd_bus_vtable vm_limits_vtable[];
extern const sd_bus_vtable maintenance_vtable[];
extern const sd_bus_vtable vm_runtime_vtable[];
/* clusterd-runtime.c: the runtime links as clusterd.conf says (start-up, reload), their news routed to the
 * lifecycle and the Vm objects. */
int clusterd_runtime_sync(struct clusterd *c);
/* registry/request-check.c: -ENOENT with the reason when a request names a host, GPU or model the cluster
 * does not have. */
int clusterd_check_requests(struct clusterd *c, const char *text, char **ret_error);

