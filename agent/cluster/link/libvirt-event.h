/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-event.h>

/*
 * libvirt's event loop on sd-event (virEventRegisterImpl): libvirt's file handles become sd-event io
 * sources and its timeouts sd-event time sources, so libvirt's keepalive, its remote driver's socket and
 * its domain-event dispatch run in the aggregator's one event loop, and their callbacks (domain lifecycle
 * events) arrive on the main thread.
 *
 * libvirt calls the registration functions from whichever thread makes an API call (the runtime links'
 * worker threads, runtime-libvirt.c), and sd-event is not thread-safe: every change is recorded under a
 * mutex and applied to sd-event on the main thread (at once when the caller is the main thread, else
 * after an eventfd wakes it). A removed handle's free callback runs later on the main thread, never from
 * inside the remove call (libvirt may hold its own locks there).
 */

/* Once per process, before the first virConnectOpen, from the thread that runs the event loop. */
int libvirt_event_setup(sd_event *event);
/* Before the event loop is freed: the sources go; libvirt's later calls are recorded and never run. */
void libvirt_event_detach(void);
