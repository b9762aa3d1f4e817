/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-bus.h>

/* One entry of the agent's ListGpus reply (GPUPASS_GPU_ENTRY_SIGNATURE, README "D-Bus API"). The strings
 * point into the message; companions is the reader's to strv_free(). */
struct gpu_entry {
        const char *path, *address, *model, *mode, *state, *driver, *owner, *serial, *problem;
        int32_t group, numa;
        char **companions;
        bool boot_vga, needs_reconfiguration;
};

/* The next entry of a ListGpus array the caller has entered: 1 with *e filled, 0 at the end of the array. */
int gpu_entry_read(sd_bus_message *reply, struct gpu_entry *e);
