/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <systemd/sd-daemon.h>

#include "config.h"
#include "log.h"
#include "manager.h"

int main(int argc, char *argv[]) {
        _cleanup_(manager_freep) struct manager *m = NULL;
        int r;

        if (argc > 1 && strcmp(argv[1], "--version") == 0) {
                printf("gpupassd %s\n", GPUPASS_VERSION);
                return 0;
        }
        if (argc > 1) {
                fprintf(stderr, "Usage: %s [--version]\n", argv[0]);
                return 2;
        }

        r = manager_new(&m);
        if (r >= 0) {
                m->version = GPUPASS_VERSION;
                r = manager_startup(m);
        }
        if (r >= 0)
                r = manager_run(m);
        if (r < 0) {
                log_error_errno(r, "gpupassd failed: %m");
                (void) sd_notifyf(/* unset_environment= */ false, "ERRNO=%d", -r);
        }
        return r < 0 ? 1 : 0;
}
