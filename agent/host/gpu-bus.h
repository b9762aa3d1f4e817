/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-bus.h>

struct gpu;
struct manager;

extern const sd_bus_vtable gpu_vtable[];

int gpu_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **ret_found,
                    sd_bus_error *error);
int gpu_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***ret_nodes, sd_bus_error *error);
void gpu_emit_properties_changed(struct gpu *g, char **names);
/* Appends one ListGpus entry, GPUPASS_GPU_ENTRY_SIGNATURE. */
int gpu_append_entry(struct gpu *g, sd_bus_message *reply);
