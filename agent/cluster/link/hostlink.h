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
 */
struct clusterd;

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
        bool needs_reconfiguration;
};

enum link_state {
        LINK_CONNECTING,
        LINK_UP,
        LINK_UNREACHABLE,
};

struct hostlink {
        struct clusterd *clusterd;
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

        bool maintenance;
        uint32_t cpus;
        uint64_t memory_mib;
        struct cluster_gpu **gpus; /* sorted by address */
        size_t n_gpus;
};

int hostlink_new(struct clusterd *c, const char *name, const char *configured_address, struct hostlink **ret);
struct hostlink *hostlink_free(struct hostlink *l);
/* Starts connecting; the result arrives through the event loop. A failure schedules a retry. */
int hostlink_connect(struct hostlink *l);
/* The connection failed (why: the reason shown): unreachable, closed, reconnection with backoff. */
void hostlink_connection_failed(struct hostlink *l, const char *why);
const char *hostlink_state_to_string(const struct hostlink *l);
struct cluster_gpu *hostlink_find_gpu(struct hostlink *l, const char *address);

/* hostlink-io.c: each host connection in the event loop, every queued message handled per wake-up. */
int hostlink_io_attach(struct hostlink *l);
void hostlink_io_detach(struct hostlink *l);
/* Once, before connecting: the one prepare callback that re-arms every host connection. */
int hostlinks_io_setup(struct clusterd *c);
