/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>

#include "bus-disconnect.h"
#include "log.h"

static int on_disconnected(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        sd_event *event = userdata;

        log_error("The bus connection is gone; exiting so that the service manager can restart the daemon.");
        return sd_event_exit(event, -ENOTCONN);
}

int bus_exit_on_disconnect(sd_bus *bus, sd_event *event) {
        /* Delivered by sd-bus itself (sender org.freedesktop.DBus.Local): no AddMatch goes to the bus. */
        return sd_bus_match_signal(bus, /* ret_slot= */ NULL, "org.freedesktop.DBus.Local",
                                   "/org/freedesktop/DBus/Local", "org.freedesktop.DBus.Local", "Disconnected",
                                   on_disconnected, event);
}
