/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

/*
 * One host's VM runtime, libvirt (Runtime=libvirt in clusterd.conf): a libvirt connection of its own,
 * the host's running domains as observed state (listed at connect, then kept current from libvirt's
 * domain lifecycle events), and the operations the lifecycle needs: start a transient domain, stop one
 * (ACPI shutdown, destroy after a timeout).
 *
 * libvirt's API calls are blocking RPCs (virConnectOpen over ssh alone can take seconds), so each link
 * has a worker thread that makes them one at a time, and hands each result back to the event loop
 * through an eventfd: a slow or hung host holds only its own thread. libvirt's own event loop (keepalive,
 * the connection's socket, event dispatch) runs on sd-event (libvirt-event.h), so domain events and the
 * close callback's news arrive on the main thread, where every callback below is called. A lost
 * connection (close callback, keepalive timeout, a failed call on a dead connection) makes the link
 * unreachable and it reconnects with backoff (250 ms to 30 s, as host links). Like a host link, it never
 * decides what an event means: it reports through the callbacks it is given.
 */
struct runtime_link;

enum runtime_link_state {
        RUNTIME_CONNECTING,
        RUNTIME_UP,
        RUNTIME_UNREACHABLE,
};

struct runtime_callbacks {
        /* Connected (the running domains were just listed) or lost: every domain may have changed. */
        void (*state_changed)(struct runtime_link *r, void *userdata);
        /* A domain's state changed. state: "running", "paused", "crashed", "pmsuspended", or NULL
         * (not running any more); why: libvirt's event detail ("shutdown", "destroyed", "crashed",
         * "failed", "booted"...); expected: the change is the work of this link's own start or stop. */
        void (*domain_changed)(struct runtime_link *r, const char *uuid, const char *state, const char *why,
                               bool expected, void *userdata);
};

/* r: 0 or negative errno; message: libvirt's error text when r < 0, else NULL. */
typedef void (*runtime_done_t)(struct runtime_link *r, int error, const char *message, void *userdata);

int runtime_link_new(sd_event *event, const char *name, const char *uri, const struct runtime_callbacks *cb,
                     void *userdata, struct runtime_link **ret);
/* Calls every pending done with -ECANCELED; the worker finishes its call (if any) and exits on its own. */
struct runtime_link *runtime_link_free(struct runtime_link *r);
/* Starts connecting (in the worker); the result arrives through state_changed. */
int runtime_link_connect(struct runtime_link *r);

const char *runtime_link_name(const struct runtime_link *r);
const char *runtime_link_uri(const struct runtime_link *r);
enum runtime_link_state runtime_link_state(const struct runtime_link *r);
/* Why it is unreachable (libvirt's error), or NULL. */
const char *runtime_link_error(const struct runtime_link *r);
/* The domain's state as observed ("running", "paused", ...), or NULL when it is not running there. Only
 * meaningful while the link is up. */
const char *runtime_link_domain_state(const struct runtime_link *r, const char *uuid);

/* virDomainCreateXML (transient, no autodestroy). -ENOTCONN when the link is not up. */
int runtime_link_start(struct runtime_link *r, const char *uuid, const char *xml, runtime_done_t done,
                       void *userdata);
/* ACPI shutdown (virDomainShutdown), virDomainDestroy once timeout_usec has passed without the domain
 * stopping; done once it has stopped (at once, with 0, when it is not running). */
int runtime_link_stop(struct runtime_link *r, const char *uuid, uint64_t timeout_usec, runtime_done_t done,
                      void *userdata);
