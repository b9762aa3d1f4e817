/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-bus.h>

struct gpu;
struct manager;

extern const sd_bus_vtable gpu_vtable[];

int gpu_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **ret_found,
                    sd_bus_error *error);
int gpu_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***ret_nodes, sd_bus_error *error);
/* PropertiesChanged for the named properties of g, as logind's session_send_changed(): the variadic form
 * names them, gpu_send_changed_strv() takes a list built at run time. Nothing before the bus is up. */
void gpu_send_changed_strv(struct gpu *g, char **names);
#define gpu_send_changed(g, ...) gpu_send_changed_strv((g), (char **) (const char *[]) { __VA_ARGS__, NULL })
/* Appends one ListGpus entry, GPUPASS_GPU_ENTRY_SIGNATURE. */
int gpu_append_entry(struct gpu *g, sd_bus_message *reply);
