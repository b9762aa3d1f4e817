/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

/*
 * A daemon whose bus connection is gone can no longer be reached, and systemd's Restart= does not restart
 * a process that keeps running: so the daemons end their event loop with -ENOTCONN (exit status 1, a
 * failure that Restart=on-failure acts on) when sd-bus reports the connection's end (the local Disconnected
 * signal). sd_bus_set_exit_on_disconnect() would end the loop with a success status instead.
 */
int bus_exit_on_disconnect(sd_bus *bus, sd_event *event);
