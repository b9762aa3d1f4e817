/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "bus-reply.h"
#include "macro.h"

int bus_reply_array(sd_bus_message *call, const char *element,
                    int (*fill)(sd_bus_message *reply, void *userdata), void *userdata) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(call, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', element);
        if (r < 0)
                return r;
        r = fill(reply, userdata);
        if (r < 0)
                return r;
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(/* bus= */ NULL, reply, /* cookie= */ NULL);
}
