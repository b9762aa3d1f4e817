/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include <systemd/sd-bus.h>

#include "lifecycle/reconcile.h"

/*
 * What the layers above (the bus methods, the daemon's link callbacks) ask of the VM lifecycle. Each sets
 * the desired state in the registry and lets the reconciler (reconcile.h) do the rest.
 */
struct clusterd;
struct hostlink;
struct cluster_gpu;
struct vm_record;

/* power.c: an operator wants the VM on (anywhere: its restart flag goes) or off; done gets the outcome. */
int lifecycle_power_on(struct clusterd *c, struct vm_record *v, reconcile_done_t done, void *userdata);
int lifecycle_power_off(struct clusterd *c, struct vm_record *v, reconcile_done_t done, void *userdata);

/* maintenance.c. Enter: the host's GPU VMs wanted off, flagged restart:HOST; once all are off the agent's
 * maintenance flag is set. Exit: the flag cleared, those VMs wanted on again there, as one batch. done
 * gets the agent's refusal (error set), or the VMs concerned and, for Enter, the reasons of those that
 * stayed on (then the host does not go into maintenance). */
typedef void (*lifecycle_maintenance_done_t)(struct clusterd *c, const sd_bus_error *error, char **vms,
                                             char **refused, void *userdata);
int lifecycle_maintenance(struct clusterd *c, struct hostlink *l, bool enter, lifecycle_maintenance_done_t done,
                          void *userdata);
/* A GPU changed identity: the VMs whose configuration refers to it are flagged reconfigure:NEW and wanted
 * off. */
void lifecycle_flag_reflash(struct clusterd *c, struct hostlink *l, const char *address, const char *old_model,
                            const char *new_model);

/* host-return.c. A host is up (back, or first seen): its VMs and the claims it shows are reconciled, and the
 * VMs waiting for it (restart:HOST) wanted on again, unless it is in maintenance; one batch. */
void lifecycle_host_up(struct clusterd *c, struct hostlink *l);
/* An agent's signal changed a GPU's owner: the VMs concerned are reconciled when the change is not theirs. */
void lifecycle_owner_changed(struct clusterd *c, struct hostlink *l, const struct cluster_gpu *g,
                             const char *old_owner);
/* Once every host has answered or failed its first connection: the VMs not where they are wanted
 * (a crash between the operator's call and the end of its reconcile) are reconciled. */
void lifecycle_startup(struct clusterd *c);
