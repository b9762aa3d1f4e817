/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include "clusterd.h"
#include "gpupass/bus-names.h"
#include "hostlink.h"
#include "log.h"

static int method_list_hosts(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        struct clusterd *c = userdata;
        sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(call, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(ssssutu)");
        for (size_t i = 0; r >= 0 && i < c->n_hosts; i++) {
                struct hostlink *l = c->hosts[i];

                r = sd_bus_message_append(reply, "(ssssutu)", l->name, l->configured_address,
                                          hostlink_state_to_string(l), l->state == LINK_UNREACHABLE ? l->error ?: "" : "",
                                          l->cpus, l->memory_mib, (uint32_t) l->n_gpus);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
        sd_bus_message_unref(reply);
        return r;
}

static int method_list_gpus(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        struct clusterd *c = userdata;
        sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(call, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(sssssssb)");
        for (size_t i = 0; r >= 0 && i < c->n_hosts; i++) {
                struct hostlink *l = c->hosts[i];

                for (size_t j = 0; r >= 0 && j < l->n_gpus; j++) {
                        struct cluster_gpu *g = l->gpus[j];

                        /* A host that is not reachable shows its GPUs as last seen, in state "unreachable". */
                        r = sd_bus_message_append(reply, "(sssssssb)", l->name, g->address ?: "", g->model ?: "",
                                                  g->mode ?: "", l->state == LINK_UP ? g->state ?: "" : "unreachable",
                                                  g->owner ?: "", g->previous_model ?: "", (int) g->needs_reconfiguration);
                }
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
        sd_bus_message_unref(reply);
        return r;
}

static void creds_unrefp(sd_bus_creds **c) {
        sd_bus_creds_unref(*c);
}

int clusterd_check_admin(struct clusterd *c, sd_bus_message *m, sd_bus_error *error) {
        _cleanup_(creds_unrefp) sd_bus_creds *creds = NULL;
        const gid_t *gids = NULL;
        uid_t euid;
        gid_t egid;
        int n, r;

        r = sd_bus_query_sender_creds(m, SD_BUS_CREDS_EUID | SD_BUS_CREDS_EGID | SD_BUS_CREDS_SUPPLEMENTARY_GIDS |
                                      SD_BUS_CREDS_AUGMENT, &creds);
        if (r < 0)
                return sd_bus_error_set_errnof(error, -r, "Cannot determine the caller's credentials: %m");
        if (sd_bus_creds_get_euid(creds, &euid) < 0)
                return sd_bus_error_setf(error, GPUPASS_ERROR_ACCESS_DENIED, "The bus did not report the caller");
        if (euid == 0)
                return 0;
        if (c->admin_gid_valid) {
                if (sd_bus_creds_get_egid(creds, &egid) >= 0 && egid == c->admin_gid)
                        return 0;
                n = sd_bus_creds_get_supplementary_gids(creds, &gids);
                for (int i = 0; i < n; i++)
                        if (gids[i] == c->admin_gid)
                                return 0;
        }
        return sd_bus_error_setf(error, GPUPASS_ERROR_ACCESS_DENIED,
                                 "uid %u may not change the cluster: only root and members of group %s may",
                                 (unsigned) euid, c->config.admin_group);
}

static const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("ListHosts", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(ssssutu)", hosts), method_list_hosts,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListGpus", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(sssssssb)", gpus), method_list_gpus,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

int clusterd_bus_setup(struct clusterd *c) {
        int r;

        r = sd_bus_open_system(&c->bus);
        if (r < 0)
                return log_error_errno(r, "Failed to connect to the system bus: %m");
        r = sd_bus_add_object_manager(c->bus, NULL, GPUPASS_CLUSTER_MANAGER_PATH);
        if (r < 0)
                return r;
        r = sd_bus_add_object_vtable(c->bus, NULL, GPUPASS_CLUSTER_MANAGER_PATH, GPUPASS_CLUSTER_MANAGER_IFACE,
                                     manager_vtable, c);
        if (r < 0)
                return r;
        /* The registry's methods are the Manager's too: one interface, two tables, one per file. */
        r = sd_bus_add_object_vtable(c->bus, NULL, GPUPASS_CLUSTER_MANAGER_PATH, GPUPASS_CLUSTER_MANAGER_IFACE,
                                     vm_registry_vtable, c);
        if (r < 0)
                return r;
        r = sd_bus_add_object_vtable(c->bus, NULL, GPUPASS_CLUSTER_MANAGER_PATH, GPUPASS_CLUSTER_MANAGER_IFACE,
                                     power_vtable, c);
        if (r < 0)
                return r;
        r = sd_bus_add_object_vtable(c->bus, NULL, GPUPASS_CLUSTER_MANAGER_PATH, GPUPASS_CLUSTER_MANAGER_IFACE,
                                     vm_limits_vtable, c);
        if (r < 0)
                return r;
        r = sd_bus_add_object_vtable(c->bus, NULL, GPUPASS_CLUSTER_MANAGER_PATH, GPUPASS_CLUSTER_MANAGER_IFACE,
                                     maintenance_vtable, c);
        if (r < 0)
                return r;
        r = sd_bus_attach_event(c->bus, c->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return r;
        r = sd_bus_request_name(c->bus, GPUPASS_CLUSTER_BUS_NAME, 0);
        if (r < 0)
                return log_error_errno(r, "Failed to acquire %s: %m", GPUPASS_CLUSTER_BUS_NAME);
        return 0;
}
