/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "clusterd-config.h"

struct hostlink;

/* gpupass-clusterd: every agent's objects in one view, exported as org.gpupass.cluster1. */
struct clusterd {
        sd_event *event;
        sd_bus *bus;
        struct clusterd_config config;
        struct hostlink **hosts;
        size_t n_hosts;
};

sd_event *clusterd_event(struct clusterd *c);
/* A host's objects or state changed (hostlink.c calls it). */
void clusterd_host_changed(struct clusterd *c, struct hostlink *l);
int clusterd_bus_setup(struct clusterd *c);
