/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "pci-address.h"

/*
 * The VM runtime in the lifecycle: one runtime link per host with Runtime=libvirt (link/runtime-libvirt.h),
 * the domain XML a VM is started with (its template from the registry, or a minimal one, with name, UUID,
 * vCPUs, memory and one managed='no' hostdev per GPU and companion: agent/common/domain-xml.h), the start
 * and stop of a VM's domain, and what a domain stopping by itself means for the VM.
 */
struct clusterd;
struct runtime_callbacks;
struct runtime_link;
struct vm_record;

struct host_runtime {
        char *host;
        char *uri;
        struct runtime_link *link;
};

/* Matches the runtime links to c->config: a new Runtime=libvirt host gets a link (connecting), a host
 * whose LibvirtUri changed gets a new one, a host gone (or back to Runtime=none) loses its link (its name
 * appended to *ret_dropped). cb and userdata go to the new links. The first link sets libvirt's event
 * loop up on c->event. */
int vm_runtimes_sync(struct clusterd *c, const struct runtime_callbacks *cb, void *userdata, char ***ret_dropped);
void vm_runtimes_free(struct clusterd *c);
/* The host's runtime link, or NULL for Runtime=none. */
struct runtime_link *vm_runtime_link(struct clusterd *c, const char *host);

/* Vm.RuntimeState: "none" (Runtime=none, or never placed), "connecting"/"unreachable" (the host's libvirt),
 * else the domain's state: "running", "paused", "crashed", "pmsuspended", "shut off". */
const char *vm_runtime_state(struct clusterd *c, const struct vm_record *v);

/* The domain XML v is (or would be) started with on v->host with the GPUs v->held and their companions;
 * template: the template to use (NULL: the registry's). -EINVAL etc. with *ret_message as domain_xml_build(). */
int vm_runtime_domain_xml(struct clusterd *c, const struct vm_record *v, const char *template_xml, char **ret_xml,
                          char **ret_message);
/* The addresses gpupass assigns anywhere in the cluster (every GPU and companion the agents report): a
 * template must not name them itself. */
int vm_runtime_managed_addresses(struct clusterd *c, struct pci_address **ret, size_t *ret_n);

/* r: 0 or negative errno; message: libvirt's error (or why) when r < 0. */
typedef void (*vm_runtime_done_t)(struct clusterd *c, const char *uuid, int r, const char *message, void *userdata);
/* Starts v's domain on v->host (after its claims; v->held set). 1: nothing to do (the host has Runtime=none,
 * or a domain of that UUID runs there already: adopted), done is not called; 0: done follows; < 0 with
 * *ret_message: not started (the host's libvirt is not connected, or the XML cannot be built). */
int vm_runtime_start(struct clusterd *c, const struct vm_record *v, vm_runtime_done_t done, void *userdata,
                     char **ret_message);
/* Stops v's domain on v->host: ACPI shutdown, destroy after ShutdownTimeoutSec. 1: Runtime=none, nothing to
 * do; 0: done follows (with 0 once it is stopped or was not running). */
int vm_runtime_stop(struct clusterd *c, const struct vm_record *v, vm_runtime_done_t done, void *userdata);

/* The runtime's part of a reconcile step (reconcile-step.c), for a VM assigned to v->host. */
struct reconcile_task;
enum vm_runtime_step {
        VM_RUNTIME_READY,       /* nothing (more) to do: no runtime, or the domain is where it should be */
        VM_RUNTIME_WAIT,        /* a start or stop was sent: look again once it is answered */
        VM_RUNTIME_FAILED,      /* libvirt refused (*ret_message names its error) */
        VM_RUNTIME_UNREACHABLE, /* libvirt cannot be asked now (*ret_message) */
        VM_RUNTIME_RESTART,     /* step_on: wanted on, claimed, its domain gone: start it again */
};
/* Starting, every group claimed: its domain runs (READY: started by this reconcile, or adopted), its start
 * was sent (WAIT), or it cannot run (FAILED). */
enum vm_runtime_step vm_runtime_step_start(struct reconcile_task *t, const struct vm_record *v, char **ret_message);
/* Stopping, before the releases: no domain runs (READY), its stop was sent (WAIT: ACPI shutdown, destroy at
 * the timeout), libvirt refused (FAILED: it may still run) or is unreachable (UNREACHABLE). */
enum vm_runtime_step vm_runtime_step_stop(struct reconcile_task *t, const struct vm_record *v, char **ret_message);
/* On, every group claimed: its domain runs (READY), or is gone (RESTART), or crashed and kept (WAIT: it is
 * destroyed first, OnCrash=restart). */
enum vm_runtime_step vm_runtime_step_on(struct reconcile_task *t, const struct vm_record *v);

/* The observed state moved (callbacks of the runtime links, routed by clusterd-runtime.c). A domain that
 * stopped without being asked: its VM is wanted off (its claims are released), or, crashed with
 * OnCrash=restart, reconciled (started again there). A link up or lost: every VM assigned there is
 * reconciled: a domain running is adopted, one missing while the VM is on is started again (it stopped
 * while the aggregator could not see it, e.g. across its restart). domain_changed: true when a reconcile
 * of the VM announces the change at its end (its own start or stop, or one it queued). */
bool vm_runtime_domain_changed(struct clusterd *c, struct runtime_link *r, const char *uuid, const char *state,
                               const char *why, bool expected);
void vm_runtime_link_changed(struct clusterd *c, struct runtime_link *r);
