/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Drives the agents' connections from the event loop without sd_bus_attach_event().
 *
 * Why: an attached bus gets a prepare callback that sd-event runs on every loop iteration, and
 * sd_bus_process() handles one message per dispatch. With one connection per host that is O(hosts)
 * work per message: at 100 hosts, ~12 messages each while connecting, clusterd spent more CPU in those
 * prepare callbacks (35% of its instructions, callgrind) than in reading the agents' objects. Here each
 * host bus has a plain I/O source and a timer; a wake-up processes every message queued on that bus (up
 * to a bound, so one busy host cannot starve the others), and a single prepare callback for all hosts
 * re-arms only what changed: a call sent from elsewhere (PowerOn's Claim) may leave output queued or add
 * a reply timeout, so every bus is looked at once per iteration, but cheaply.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>

#include "link/hostlink.h"

#define PROCESS_MAX 64

static void hostlink_io_rearm(struct hostlink *l) {
        uint64_t until;
        int events, r;

        if (!l->bus || !l->io)
                return;
        events = sd_bus_get_events(l->bus);
        if (events < 0) {
                /* Closed: nothing to read or write any more (a hang-up would wake us in a loop); the
                 * Disconnected callback comes from the queue, through the timer below. */
                if (l->io_events >= 0 && sd_event_source_set_enabled(l->io, SD_EVENT_OFF) >= 0)
                        l->io_events = -1;
        } else if (events != l->io_events && sd_event_source_set_io_events(l->io, (uint32_t) events) >= 0)
                l->io_events = events;
        r = sd_bus_get_timeout(l->bus, &until);
        if (r > 0) {
                if (!l->timer_armed || until != l->timer_until) {
                        (void) sd_event_source_set_time(l->timer, until);
                        (void) sd_event_source_set_enabled(l->timer, SD_EVENT_ONESHOT);
                        l->timer_until = until;
                        l->timer_armed = true;
                }
        } else if (l->timer_armed) {
                (void) sd_event_source_set_enabled(l->timer, SD_EVENT_OFF);
                l->timer_armed = false;
        }
}

/* Everything queued, bounded. A callback may drop the connection (l->bus replaced or gone): stop then. */
static int hostlink_io_process(struct hostlink *l) {
        sd_bus *bus = sd_bus_ref(l->bus);
        int r = 0;

        for (unsigned n = 0; n < PROCESS_MAX && l->bus == bus; n++) {
                r = sd_bus_process(bus, NULL);
                if (r <= 0)
                        break;
        }
        /* sd-bus turns a disconnection into its Disconnected message itself; any other failure is treated
         * the same way, as sd_bus_attach_event() does (it closes the connection). */
        if (r < 0 && l->bus == bus)
                hostlink_connection_failed(l, strerror(-r));
        sd_bus_unref(bus);
        if (l->bus)
                hostlink_io_rearm(l);
        return 0;
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        return hostlink_io_process(userdata);
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct hostlink *l = userdata;

        l->timer_armed = false; /* a oneshot timer is off once it fired */
        return hostlink_io_process(l);
}

/* The links whose connection is in the event loop: the one prepare callback looks at these. */
static struct hostlink *attached;

static void attached_add(struct hostlink *l) {
        l->io_prev = NULL;
        l->io_next = attached;
        if (attached)
                attached->io_prev = l;
        attached = l;
}

static void attached_remove(struct hostlink *l) {
        if (l->io_prev)
                l->io_prev->io_next = l->io_next;
        else if (attached == l)
                attached = l->io_next;
        if (l->io_next)
                l->io_next->io_prev = l->io_prev;
        l->io_prev = l->io_next = NULL;
}

int hostlink_io_attach(struct hostlink *l) {
        sd_event *e = l->event;
        int fd, r;

        fd = sd_bus_get_fd(l->bus);
        if (fd < 0) /* separate input and output descriptors: let sd-bus drive it */
                return sd_bus_attach_event(l->bus, e, SD_EVENT_PRIORITY_NORMAL);
        l->io_events = sd_bus_get_events(l->bus);
        if (l->io_events < 0)
                l->io_events = POLLIN;
        r = sd_event_add_io(e, &l->io, fd, (uint32_t) l->io_events, on_io, l);
        if (r < 0)
                return r;
        /* Accuracy 1 µs: the timer also stands for "messages already queued", which must not wait for
         * sd-event's default 250 ms slack. */
        r = sd_event_add_time(e, &l->timer, CLOCK_MONOTONIC, 0, 1, on_timer, l);
        if (r < 0) {
                hostlink_io_detach(l);
                return r;
        }
        l->timer_armed = true; /* fires at once: the first look at the connection */
        l->timer_until = 0;
        attached_add(l);
        (void) sd_event_source_set_description(l->io, l->name);
        return 0;
}

void hostlink_io_detach(struct hostlink *l) {
        if (l->io)
                attached_remove(l);
        l->io = sd_event_source_disable_unref(l->io);
        l->timer = sd_event_source_disable_unref(l->timer);
        l->timer_armed = false;
        l->io_events = 0;
}

static int on_prepare(sd_event_source *s, void *userdata) {
        for (struct hostlink *l = attached; l; l = l->io_next)
                hostlink_io_rearm(l);
        return 0;
}

static int on_never(sd_event_source *s, uint64_t usec, void *userdata) {
        return 0;
}

int hostlinks_io_setup(sd_event *event, sd_event_source **ret) {
        int r;

        /* The prepare callback needs an enabled source to hang on: a timer that never elapses. */
        r = sd_event_add_time(event, ret, CLOCK_MONOTONIC, UINT64_MAX, 0, on_never, NULL);
        if (r < 0)
                return r;
        return sd_event_source_set_prepare(*ret, on_prepare);
}
