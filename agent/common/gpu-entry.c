/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "gpu-entry.h"

int gpu_entry_read(sd_bus_message *reply, struct gpu_entry *e) {
        int boot_vga, needs, r;

        r = sd_bus_message_enter_container(reply, 'r', "osssssssiiasbbs");
        if (r <= 0)
                return r;
        r = sd_bus_message_read(reply, "osssssssii", &e->path, &e->address, &e->model, &e->mode, &e->state,
                                &e->driver, &e->owner, &e->serial, &e->group, &e->numa);
        if (r < 0)
                return r;
        r = sd_bus_message_read_strv(reply, &e->companions);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "bbs", &boot_vga, &needs, &e->problem);
        if (r < 0)
                return r;
        e->boot_vga = boot_vga;
        e->needs_reconfiguration = needs;
        r = sd_bus_message_exit_container(reply);
        return r < 0 ? r : 1;
}
