/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The baseline of signal-bench: the least a daemon can do for "uevent in, D-Bus signal out" with the agent's
 * libraries, on the same bus. A libudev monitor on the pci subsystem (as gpupassd's, enabled the same way, on
 * the same sd-event loop); for every bind or unbind of one device it emits Driver(s address, s driver) with
 * the driver the uevent names, reading nothing from sysfs. The agent must do at least this (wake, receive,
 * send through dbus-daemon), so signal-bench reports the agent's latency beside this one, measured in the
 * same run, and their difference is what gpupassd itself adds.
 * Usage: uevent-relay BUS-NAME ADDRESS (on the system bus, i.e. $DBUS_SYSTEM_BUS_ADDRESS).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <libudev.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#define RELAY_PATH "/org/gpupass/bench/relay"
#define RELAY_INTERFACE "org.gpupass.bench.Relay"

struct relay {
        sd_bus *bus;
        struct udev_monitor *monitor;
        const char *address;
};

static int relay_on_uevent(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct relay *relay = userdata;
        struct udev_device *d;

        (void) s, (void) fd, (void) revents;
        /* Drained as the agent drains its monitor. */
        while ((d = udev_monitor_receive_device(relay->monitor))) {
                const char *action = udev_device_get_action(d), *name = udev_device_get_sysname(d);

                if (action && name && strcmp(name, relay->address) == 0 &&
                    (strcmp(action, "bind") == 0 || strcmp(action, "unbind") == 0))
                        (void) sd_bus_emit_signal(relay->bus, RELAY_PATH, RELAY_INTERFACE, "Driver", "ss", name,
                                                  strcmp(action, "bind") == 0 ? udev_device_get_driver(d) ?: "" : "");
                udev_device_unref(d);
        }
        return 0;
}

int main(int argc, char *argv[]) {
        struct relay relay = {};
        sd_event *event = NULL;
        struct udev *udev;
        int r;

        if (argc != 3) {
                fprintf(stderr, "Usage: %s BUS-NAME ADDRESS\n", argv[0]);
                return 2;
        }
        relay.address = argv[2];
        udev = udev_new();
        relay.monitor = udev ? udev_monitor_new_from_netlink(udev, "udev") : NULL;
        if (!relay.monitor || udev_monitor_filter_add_match_subsystem_devtype(relay.monitor, "pci", NULL) < 0 ||
            udev_monitor_enable_receiving(relay.monitor) < 0) {
                fprintf(stderr, "udev monitor: %m\n");
                return 1;
        }
        r = sd_event_default(&event);
        if (r >= 0)
                r = sd_event_add_io(event, NULL, udev_monitor_get_fd(relay.monitor), EPOLLIN, relay_on_uevent, &relay);
        if (r >= 0)
                r = sd_bus_open_system(&relay.bus);
        if (r >= 0)
                r = sd_bus_request_name(relay.bus, argv[1], 0);
        if (r >= 0)
                r = sd_bus_attach_event(relay.bus, event, 0);
        if (r >= 0)
                r = sd_event_loop(event);
        if (r < 0)
                fprintf(stderr, "uevent-relay: %s\n", strerror(-r));
        sd_bus_flush_close_unref(relay.bus);
        udev_monitor_unref(relay.monitor);
        udev_unref(udev);
        sd_event_unref(event);
        return r < 0 ? 1 : 0;
}
