/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-bus.h>

/*
 * The reply of a List method: an array of `element` (a struct signature such as "(ssssutu)"), its entries
 * appended by fill(reply, userdata), sent. One place that owns the reply message, whatever fails.
 */
int bus_reply_array(sd_bus_message *call, const char *element,
                    int (*fill)(sd_bus_message *reply, void *userdata), void *userdata);
