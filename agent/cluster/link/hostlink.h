/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

/*
 * One agent, seen from the aggregator: a D-Bus connection of its own (the agent's system bus, reached
 * directly, over ssh or into a container), the agent's objects loaded with GetManagedObjects and kept
 * current from its signals, reconnection with backoff when the connection or the agent goes away. Every
 * call is asynchronous: a slow host never stalls the aggregator's event loop.
 *
 * The lowest layer of gpupass-clusterd: it reports what it sees through the callbacks it is given and
 * never decides what a change means (a reflash, a lost claim): that is lifecycle/'s.
 */

/* One GPU as the agent reports it. */
struct cluster_gpu {
        char *path;
        char *address;
        char *model;
        char *mode;
        char *state;
        char *owner;
        char *previous_model;
        char **companions;  /* the functions that go to the VM with it (HDMI audio...) */
        int iommu_group;    /* -1: none */
        bool needs_reconfiguration;
};

enum link_state {
        LINK_CONNECTING,
        LINK_UP,
        LINK_UNREACHABLE,
};

struct hostlink;

/* What a link reports, each with the userdata given to hostlink_new(). Called from the event loop, never
 * from inside a call into the link. */
struct hostlink_callbacks {
        /* Anything of the host changed: state, objects, properties. */
        void (*changed)(struct hostlink *l, void *userdata);
        /* The host is up (its objects loaded) after being unreachable, or for the first time. */
        void (*up)(struct hostlink *l, void *userdata);
        /* A GPU's Owner changed in an agent's signal (a claim taken or ended, by anyone). */
        void (*owner_changed)(struct hostlink *l, const struct cluster_gpu *g, const char *old_owner,
                              void *userdata);
        /* A GPU changed identity: IdentityChanged, or a PreviousModel found when loading the objects. */
        void (*identity_changed)(struct hostlink *l, const char *address, const char *old_model,
                                 const char *new_model, void *userdata);
};

struct hostlink_call;

struct hostlink {
        sd_event *event;
        const struct hostlink_callbacks *callbacks;
        void *userdata;
        char *name;
        char *configured_address;
        char *bus_address;
        sd_bus *bus;
        enum link_state state;
        char *error;              /* why it is unreachable */
        sd_event_source *retry;
        sd_event_source *io, *timer; /* hostlink-io.c: the connection in the event loop */
        int io_events;               /* what io waits for; -1: disabled (closed) */
        uint64_t timer_until;
        bool timer_armed;
        uint64_t backoff_usec;
        struct hostlink *io_prev, *io_next; /* hostlink-io.c: the attached links */

        /* hostlink-call.c: calls waiting for the agent, and those of a dropped connection waiting for
         * their failure to be reported (deferred: never from inside the connection's own callback). */
        struct hostlink_call *calls;
        struct hostlink_call *failed_calls;
        sd_bus *closing;
        sd_event_source *close_defer;

        bool maintenance;
        uint32_t cpus;
        uint64_t memory_mib;
        struct cluster_gpu **gpus; /* sorted by address */
        size_t n_gpus;
};

/* bus_address: the sd-bus address of the configured one (clusterd-config.h converts it). */
int hostlink_new(sd_event *event, const char *name, const char *configured_address, const char *bus_address,
                 const struct hostlink_callbacks *callbacks, void *userdata, struct hostlink **ret);
/* Calls still waiting get their failure ("host removed") before the link goes. */
struct hostlink *hostlink_free(struct hostlink *l);
/* Starts connecting; the result arrives through the event loop. A failure schedules a retry. */
int hostlink_connect(struct hostlink *l);
/* The connection failed (why: the reason shown): unreachable, closed after the current callback returns,
 * reconnection with backoff. */
void hostlink_connection_failed(struct hostlink *l, const char *why);
const char *hostlink_state_to_string(const struct hostlink *l);
/* By the address as the agent reports it (full). */
struct cluster_gpu *hostlink_find_gpu(struct hostlink *l, const char *address);
/* The first GPU of that IOMMU group, or NULL. */
struct cluster_gpu *hostlink_find_group(struct hostlink *l, int group);

/* hostlink-parse.c: the agent's objects and properties into the link's GPU list. */
void cluster_gpu_free(struct cluster_gpu *g);
void hostlink_clear_gpus(struct hostlink *l);
int hostlink_read_gpu_properties(sd_bus_message *m, struct cluster_gpu *g);
int hostlink_read_object(struct hostlink *l, sd_bus_message *m, const char *path);
struct cluster_gpu *hostlink_find_gpu_by_path(struct hostlink *l, const char *path);

/*
 * hostlink-call.c: the calls the aggregator makes to an agent. done is called exactly once, on the event
 * loop: with error NULL on success, with the agent's error, or with HostUnreachable when the connection
 * is lost or the link freed before the answer. A negative return (no connection now) means done is not
 * called. A successful Claim or Release is applied to the link's view at once (owner of every GPU of the
 * group), so that the next decision does not wait for the agent's PropertiesChanged.
 */
typedef void (*hostlink_reply_t)(struct hostlink *l, const sd_bus_error *error, void *userdata);
int hostlink_claim(struct hostlink *l, struct cluster_gpu *g, const char *vm, hostlink_reply_t done, void *userdata);
int hostlink_release(struct hostlink *l, struct cluster_gpu *g, const char *vm, hostlink_reply_t done,
                     void *userdata);
/* SetMaintenance on the agent; on success the link shows it at once (and reports the change). */
int hostlink_set_maintenance(struct hostlink *l, bool enable, hostlink_reply_t done, void *userdata);
/* The connection is being dropped: its waiting calls fail once the current callback has returned. */
void hostlink_calls_disconnected(struct hostlink *l);
/* Reports the failure of every call of a dropped connection now (hostlink_free). */
void hostlink_calls_flush(struct hostlink *l);
/* Every call still waiting fails now with that error (the aggregator stops: its callers are answered while
 * its bus is still there); the agent's late answers are ignored. */
void hostlink_calls_fail(struct hostlink *l, const char *name, const char *why);

/* hostlink-io.c: each host connection in the event loop, every queued message handled per wake-up. */
int hostlink_io_attach(struct hostlink *l);
void hostlink_io_detach(struct hostlink *l);
/* Once, before connecting: the one prepare callback that re-arms every attached host connection. */
int hostlinks_io_setup(sd_event *event, sd_event_source **ret);
