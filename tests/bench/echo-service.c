/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The baseline of rtt-bench: the least an sd-bus service can do for the same calls as gpupassd's, on the
 * same bus. ListGpus answers a prebuilt a(osssssssiiasbbs) of 8 GPUs shaped as the agent's (same field
 * count and string lengths), and one property Get answers a string, so that the measured difference is
 * what gpupassd does per call, not the size of the message.
 * Usage: echo-service BUS-NAME (on the system bus, i.e. $DBUS_SYSTEM_BUS_ADDRESS).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#define ECHO_PATH "/org/gpupass/bench/echo"
#define ECHO_INTERFACE "org.gpupass.bench.Echo"
#define ECHO_GPUS 8

static const char *const echo_addresses[ECHO_GPUS] = {
        "0000:17:00.0", "0000:18:00.0", "0000:31:00.0", "0000:32:00.0",
        "0000:65:00.0", "0000:66:00.0", "0000:b1:00.0", "0000:b2:00.0",
};

static int echo_list_gpus(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        sd_bus_message *reply = NULL;
        int r;

        (void) userdata;
        (void) error;
        r = sd_bus_message_new_method_return(m, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(osssssssiiasbbs)");
        for (int i = 0; r >= 0 && i < ECHO_GPUS; i++) {
                char path[128];

                snprintf(path, sizeof(path), "/org/gpupass/agent1/gpu/_30000_3a%02x_3a00_2e0", i);
                r = sd_bus_message_append(reply, "(osssssssiiasbbs)", path, echo_addresses[i],
                                          "NVIDIA Tesla T4.compute", "compute", "host", "nouveau", "",
                                          "00-00-00-00-00-01-7a-10", 40 + i, i / 4, 0, 0, 0, "");
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
        sd_bus_message_unref(reply);
        return r;
}

static int echo_get_model(sd_bus *bus, const char *path, const char *interface, const char *property,
                          sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        (void) bus, (void) path, (void) interface, (void) property, (void) userdata, (void) error;
        return sd_bus_message_append(reply, "s", "NVIDIA Tesla T4.compute");
}

static const sd_bus_vtable echo_vtable[] = {
        SD_BUS_VTABLE_START(0),
        /* Unprivileged as the agent's: otherwise sd-bus asks the bus for the caller's credentials first. */
        SD_BUS_METHOD("ListGpus", "", "a(osssssssiiasbbs)", echo_list_gpus, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_PROPERTY("Model", "s", echo_get_model, 0, 0),
        SD_BUS_VTABLE_END,
};

int main(int argc, char *argv[]) {
        sd_event *event = NULL;
        sd_bus *bus = NULL;
        int r;

        if (argc != 2) {
                fprintf(stderr, "Usage: %s BUS-NAME\n", argv[0]);
                return 2;
        }
        r = sd_event_default(&event);
        if (r >= 0)
                r = sd_bus_open_system(&bus);
        if (r >= 0)
                r = sd_bus_add_object_vtable(bus, NULL, ECHO_PATH, ECHO_INTERFACE, echo_vtable, NULL);
        if (r >= 0)
                r = sd_bus_request_name(bus, argv[1], 0);
        if (r >= 0)
                r = sd_bus_attach_event(bus, event, 0);
        if (r >= 0)
                r = sd_event_loop(event);
        if (r < 0)
                fprintf(stderr, "echo-service: %s\n", strerror(-r));
        sd_bus_unref(bus);
        sd_event_unref(event);
        return r < 0 ? 1 : 0;
}
