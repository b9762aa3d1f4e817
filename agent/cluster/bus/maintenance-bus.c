/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* EnterHostMaintenance and ExitHostMaintenance on the bus (lifecycle/maintenance.c does the work). */
#include <errno.h>
#include <stdlib.h>

#include "clusterd.h"
#include "gpupass/bus-names.h"
#include "lifecycle/lifecycle.h"
#include "link/hostlink.h"
#include "macro.h"
#include "strv.h"

struct maintenance_reply {
        sd_bus_message *call;
        char *host;
};

static void on_done(struct clusterd *c, const sd_bus_error *error, char **vms, char **refused, void *userdata) {
        struct maintenance_reply *m = userdata;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *out = NULL;

        if (error)
                (void) sd_bus_reply_method_errorf(m->call, error->name, "Host %s: %s", m->host,
                                                  error->message ?: "");
        else if (refused) {
                _cleanup_free_ char *why = strv_join(refused, "; "), *off = strv_join(vms, ", ");

                (void) sd_bus_reply_method_errorf(m->call, GPUPASS_ERROR_BUSY,
                                                  "Host %s does not go into maintenance: %s. Powered off "
                                                  "(ExitHostMaintenance powers them on again): %s", m->host,
                                                  why ?: "a release was refused", off && *off ? off : "none");
        } else if (sd_bus_message_new_method_return(m->call, &out) >= 0 && sd_bus_message_append_strv(out, vms) >= 0)
                (void) sd_bus_send(NULL, out, NULL);
        sd_bus_message_unref(m->call);
        free(m->host);
        free(m);
}

static int maintenance(sd_bus_message *call, struct clusterd *c, bool enter, sd_bus_error *error) {
        struct maintenance_reply *m;
        struct hostlink *l;
        const char *host;
        int r;

        r = clusterd_check_admin(c, call, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(call, "s", &host);
        if (r < 0)
                return r;
        l = clusterd_find_host(c, host, NULL);
        if (!l)
                return sd_bus_error_setf(error, GPUPASS_ERROR_NOT_FOUND, "Host %s is not in the cluster", host);
        if (l->state != LINK_UP || !l->bus)
                return sd_bus_error_setf(error, GPUPASS_ERROR_HOST_UNREACHABLE, "Host %s is unreachable", host);
        m = calloc(1, sizeof(*m));
        if (!m || !(m->host = strdup(host))) {
                free(m);
                return -ENOMEM;
        }
        m->call = sd_bus_message_ref(call);
        r = lifecycle_maintenance(c, l, enter, on_done, m);
        if (r < 0) {
                sd_bus_message_unref(m->call);
                free(m->host);
                free(m);
                return sd_bus_error_set_errnof(error, -r, "Reading the VM registry failed: %m");
        }
        return 1;
}

static int method_enter(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        return maintenance(call, userdata, true, error);
}

static int method_exit(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        return maintenance(call, userdata, false, error);
}

const sd_bus_vtable maintenance_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("EnterHostMaintenance", SD_BUS_ARGS("s", host), SD_BUS_RESULT("as", vms),
                                method_enter, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ExitHostMaintenance", SD_BUS_ARGS("s", host), SD_BUS_RESULT("as", vms),
                                method_exit, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};
