/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The agent's objects (GetManagedObjects, InterfacesAdded, PropertiesChanged) into the link's GPU list. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "gpupass/bus-names.h"
#include "link/hostlink.h"
#include "macro.h"
#include "strv.h"

void cluster_gpu_free(struct cluster_gpu *g) {
        if (!g)
                return;
        free(g->path);
        free(g->address);
        free(g->model);
        free(g->mode);
        free(g->state);
        free(g->owner);
        free(g->previous_model);
        strv_free(g->companions);
        free(g);
}

void hostlink_clear_gpus(struct hostlink *l) {
        for (size_t i = 0; i < l->n_gpus; i++)
                cluster_gpu_free(l->gpus[i]);
        free(l->gpus);
        l->gpus = NULL;
        l->n_gpus = 0;
}

struct cluster_gpu *hostlink_find_gpu_by_path(struct hostlink *l, const char *path) {
        for (size_t i = 0; i < l->n_gpus; i++)
                if (strcmp(l->gpus[i]->path, path) == 0)
                        return l->gpus[i];
        return NULL;
}

static int compare_gpus(const void *a, const void *b) {
        return strcmp((*(struct cluster_gpu * const *) a)->address, (*(struct cluster_gpu * const *) b)->address);
}

static int set_string(char **field, const char *value) {
        char *s = strdup(value);

        if (!s)
                return -ENOMEM;
        free(*field);
        *field = s;
        return 0;
}

/* One property (name read, its variant next) into g; 0 when it is not one the aggregator keeps. */
static int read_gpu_property(sd_bus_message *m, struct cluster_gpu *g, const char *name) {
        static const struct {
                const char *name;
                size_t offset;
        } strings[] = {
                { "Address", offsetof(struct cluster_gpu, address) },
                { "Model", offsetof(struct cluster_gpu, model) },
                { "Mode", offsetof(struct cluster_gpu, mode) },
                { "State", offsetof(struct cluster_gpu, state) },
                { "Owner", offsetof(struct cluster_gpu, owner) },
                { "PreviousModel", offsetof(struct cluster_gpu, previous_model) },
        };
        const char *value;
        char **l = NULL;
        int b, r;

        for (size_t i = 0; i < ELEMENTSOF(strings); i++)
                if (strcmp(name, strings[i].name) == 0) {
                        r = sd_bus_message_read(m, "v", "s", &value);
                        if (r < 0)
                                return r;
                        r = set_string((char **) ((uint8_t *) g + strings[i].offset), value);
                        return r < 0 ? r : 1;
                }
        if (strcmp(name, "Companions") == 0) {
                r = sd_bus_message_enter_container(m, 'v', "as");
                if (r >= 0)
                        r = sd_bus_message_read_strv(m, &l);
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
                if (r < 0) {
                        strv_free(l);
                        return r;
                }
                strv_free(g->companions);
                g->companions = l;
                return 1;
        }
        if (strcmp(name, "IommuGroup") == 0)
                return sd_bus_message_read(m, "v", "i", &g->iommu_group);
        if (strcmp(name, "NeedsReconfiguration") == 0) {
                r = sd_bus_message_read(m, "v", "b", &b);
                g->needs_reconfiguration = b;
                return r;
        }
        return 0;
}

/* Reads an a{sv} of org.gpupass.agent1.Gpu properties into g; unknown properties are skipped. */
int hostlink_read_gpu_properties(sd_bus_message *m, struct cluster_gpu *g) {
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                const char *name;

                r = sd_bus_message_read(m, "s", &name);
                if (r >= 0)
                        r = read_gpu_property(m, g, name);
                if (r == 0)
                        r = sd_bus_message_skip(m, "v");
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

/* Reads a{sa{sv}} (interfaces of one object) and adds or updates the GPU at `path`. */
int hostlink_read_object(struct hostlink *l, sd_bus_message *m, const char *path) {
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sa{sv}}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sa{sv}")) > 0) {
                const char *interface;

                r = sd_bus_message_read(m, "s", &interface);
                if (r < 0)
                        return r;
                if (strcmp(interface, GPUPASS_AGENT_GPU_IFACE) == 0) {
                        struct cluster_gpu *g = hostlink_find_gpu_by_path(l, path);
                        bool is_new = !g;

                        if (is_new) {
                                struct cluster_gpu **t;

                                g = calloc(1, sizeof(*g));
                                if (!g || !(g->path = strdup(path))) {
                                        cluster_gpu_free(g);
                                        return -ENOMEM;
                                }
                                g->iommu_group = -1;
                                t = realloc(l->gpus, sizeof(*t) * (l->n_gpus + 1));
                                if (!t) {
                                        cluster_gpu_free(g);
                                        return -ENOMEM;
                                }
                                l->gpus = t;
                                l->gpus[l->n_gpus++] = g;
                        }
                        r = hostlink_read_gpu_properties(m, g);
                        if (r < 0)
                                return r;
                        if (!g->address && set_string(&g->address, "") < 0)
                                return -ENOMEM;
                        qsort(l->gpus, l->n_gpus, sizeof(*l->gpus), compare_gpus);
                } else {
                        r = sd_bus_message_skip(m, "a{sv}");
                        if (r < 0)
                                return r;
                }
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

