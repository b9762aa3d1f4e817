/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* org.gpupass.cluster1.Host: one object per configured host, read-only; the values from host-object.c. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "clusterd.h"
#include "bus/cluster-objects.h"
#include "gpupass/bus-names.h"
#include "link/hostlink.h"
#include "macro.h"
#include "strv.h"

static int property_get_name(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct host_view *v = userdata;

        return sd_bus_message_append(reply, "s", v->link->name);
}

static int property_get_address(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct host_view *v = userdata;

        return sd_bus_message_append(reply, "s", v->link->configured_address);
}

/* "ADDRESS OWNER" items as a(ss). */
static int append_foreign(sd_bus_message *reply, char **items) {
        int r;

        r = sd_bus_message_open_container(reply, 'a', "(ss)");
        for (char **i = items; r >= 0 && i && *i; i++) {
                _cleanup_free_ char *address = strndup(*i, strcspn(*i, " "));

                r = address ? sd_bus_message_append(reply, "(ss)", address, *i + strlen(address) + 1) : -ENOMEM;
        }
        if (r < 0)
                return r;
        return sd_bus_message_close_container(reply);
}

/* A host that is not reachable shows its GPUs as last seen, in state "unreachable". */
static const char *gpu_state_shown(const struct hostlink *l, const struct cluster_gpu *g) {
        return l->state == LINK_UP ? g->state ?: "" : "unreachable";
}

int cluster_gpu_append(sd_bus_message *m, const struct hostlink *l, const struct cluster_gpu *g) {
        int r;

        r = sd_bus_message_open_container(m, 'r', "sssssssbas");
        if (r >= 0)
                r = sd_bus_message_append(m, "sssssssb", l->name, g->address ?: "", g->model ?: "", g->mode ?: "",
                                          gpu_state_shown(l, g), g->owner ?: "", g->previous_model ?: "",
                                          (int) g->needs_reconfiguration);
        if (r >= 0)
                r = sd_bus_message_append_strv(m, g->companions);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        return r;
}

/* s and the separator at *p, which moves on; only counted while *p is NULL. The length taken. */
static size_t text_put(char **p, const char *s, char separator) {
        size_t n = strlen(s);

        if (*p) {
                memcpy(*p, s, n);
                (*p)[n] = separator;
                *p += n + 1;
        }
        return n + 1;
}

/* Fields end with US, GPUs with RS: no value the agents report holds either. Written at out (NULL: only
 * counted); the length. */
static size_t gpus_text(const struct hostlink *l, char *out) {
        size_t n = 0;

        for (size_t j = 0; j < l->n_gpus; j++) {
                const struct cluster_gpu *g = l->gpus[j];

                n += text_put(&out, g->address ?: "", '\x1f');
                n += text_put(&out, g->model ?: "", '\x1f');
                n += text_put(&out, g->mode ?: "", '\x1f');
                n += text_put(&out, gpu_state_shown(l, g), '\x1f');
                n += text_put(&out, g->owner ?: "", '\x1f');
                n += text_put(&out, g->previous_model ?: "", '\x1f');
                n += text_put(&out, g->needs_reconfiguration ? "1" : "0", '\x1f');
                for (char **c = g->companions; c && *c; c++)
                        n += text_put(&out, *c, '\x1f');
                n += text_put(&out, "", '\x1e');
        }
        return n;
}

/* Built at every change an agent reports (host_view_refresh): without stdio, which cost 4 times as much. */
int host_gpus_text(const struct hostlink *l, char **ret) {
        size_t n = gpus_text(l, NULL);
        char *text = malloc(n + 1);

        if (!text)
                return -ENOMEM;
        gpus_text(l, text);
        text[n] = '\0';
        *ret = text;
        return 0;
}

static int property_get_gpus(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        struct host_view *v = userdata;
        int r;

        r = sd_bus_message_open_container(reply, 'a', "(sssssssbas)");
        for (size_t j = 0; r >= 0 && j < v->link->n_gpus; j++)
                r = cluster_gpu_append(reply, v->link, v->link->gpus[j]);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        return r;
}

/* Every changing property is computed now, the way PropertiesChanged announces it. */
static int property_get_value(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        _cleanup_(host_values_done) struct host_values now = {};

        host_values_compute(userdata, &now);
        if (strcmp(property, "State") == 0)
                return sd_bus_message_append(reply, "s", now.state);
        if (strcmp(property, "UnreachableReason") == 0)
                return sd_bus_message_append(reply, "s", now.unreachable_reason ?: "");
        if (strcmp(property, "CpuCount") == 0)
                return sd_bus_message_append(reply, "u", now.cpus);
        if (strcmp(property, "MemoryMiB") == 0)
                return sd_bus_message_append(reply, "t", now.memory_mib);
        if (strcmp(property, "FreeCpus") == 0)
                return sd_bus_message_append(reply, "u", now.free_cpus);
        if (strcmp(property, "FreeMemoryMiB") == 0)
                return sd_bus_message_append(reply, "t", now.free_memory_mib);
        if (strcmp(property, "GpuCount") == 0)
                return sd_bus_message_append(reply, "u", now.gpus);
        if (strcmp(property, "FreeGpuCount") == 0)
                return sd_bus_message_append(reply, "u", now.free_gpus);
        if (strcmp(property, "Maintenance") == 0)
                return sd_bus_message_append(reply, "b", (int) now.maintenance);
        if (strcmp(property, "ForeignClaims") == 0)
                return append_foreign(reply, now.foreign);
        return -ENOENT;
}

const sd_bus_vtable host_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Name", "s", property_get_name, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Address", "s", property_get_address, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("State", "s", property_get_value, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("UnreachableReason", "s", property_get_value, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("CpuCount", "u", property_get_value, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("MemoryMiB", "t", property_get_value, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("FreeCpus", "u", property_get_value, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("FreeMemoryMiB", "t", property_get_value, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("GpuCount", "u", property_get_value, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("FreeGpuCount", "u", property_get_value, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Maintenance", "b", property_get_value, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("ForeignClaims", "a(ss)", property_get_value, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Gpus", "a(sssssssbas)", property_get_gpus, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_VTABLE_END,
};

int host_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **ret_found,
                     sd_bus_error *error) {
        _cleanup_free_ char *name = NULL;
        struct host_view *v;
        int r;

        r = sd_bus_path_decode(path, GPUPASS_CLUSTER_HOST_PREFIX, &name);
        if (r <= 0)
                return r;
        v = host_view_find(userdata, name);
        if (!v)
                return 0;
        *ret_found = v;
        return 1;
}

int host_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***ret_nodes, sd_bus_error *error) {
        struct clusterd *c = userdata;
        _cleanup_strv_free_ char **nodes = NULL;
        int r;

        for (size_t i = 0; c->host_views && i < c->n_hosts; i++) {
                r = strv_extend(&nodes, c->host_views[i].path);
                if (r < 0)
                        return r;
        }
        *ret_nodes = TAKE_PTR(nodes);
        return 0;
}

void host_emit_properties_changed(struct host_view *v, char **names) {
        sd_bus *bus = v->clusterd->bus;

        if (!bus || !names || !names[0])
                return;
        (void) sd_bus_emit_properties_changed_strv(bus, v->path, GPUPASS_CLUSTER_HOST_IFACE, names);
}
