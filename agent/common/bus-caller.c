/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "bus-caller.h"
#include "gpupass/bus-names.h"
#include "macro.h"

static void creds_unrefp(sd_bus_creds **c) {
        sd_bus_creds_unref(*c);
}

static bool creds_in_group(sd_bus_creds *creds, gid_t gid) {
        const gid_t *gids = NULL;
        gid_t egid;
        int n;

        if (sd_bus_creds_get_egid(creds, &egid) >= 0 && egid == gid)
                return true;
        n = sd_bus_creds_get_supplementary_gids(creds, &gids);
        for (int i = 0; i < n; i++)
                if (gids[i] == gid)
                        return true;
        return false;
}

int bus_check_caller(sd_bus_message *m, bool admin_gid_valid, gid_t admin_gid, const char *admin_group,
                     const char *what, sd_bus_error *error) {
        _cleanup_(creds_unrefp) sd_bus_creds *creds = NULL;
        uid_t euid;
        int r;

        r = sd_bus_query_sender_creds(m, SD_BUS_CREDS_EUID | SD_BUS_CREDS_EGID | SD_BUS_CREDS_SUPPLEMENTARY_GIDS |
                                      SD_BUS_CREDS_AUGMENT, &creds);
        if (r < 0)
                return sd_bus_error_set_errnof(error, -r, "Cannot determine the caller's credentials: %m");
        r = sd_bus_creds_get_euid(creds, &euid);
        if (r < 0)
                return sd_bus_error_setf(error, GPUPASS_ERROR_ACCESS_DENIED,
                                         "The bus did not report the caller's user; refusing");
        if (euid == 0)
                return 0;
        if (admin_gid_valid && creds_in_group(creds, admin_gid))
                return 0;
        return sd_bus_error_setf(error, GPUPASS_ERROR_ACCESS_DENIED,
                                 "uid %u may not change %s: only root and members of group %s may", (unsigned) euid,
                                 what, admin_group ?: "(none)");
}
