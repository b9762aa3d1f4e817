/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gpupass-clusterd: connects to every configured host agent, keeps one view of all their GPUs, the VM
 * registry, and powers VMs on and off over it (README "Aggregator").
 */
#include <stdio.h>
#include <string.h>

#include <systemd/sd-daemon.h>

#include "clusterd.h"
#include "config.h"
#include "log.h"

int main(int argc, char *argv[]) {
        struct clusterd *c = NULL;
        int r;

        if (argc > 1 && strcmp(argv[1], "--version") == 0) {
                printf("gpupass-clusterd %s\n", GPUPASS_VERSION);
                return 0;
        }
        if (argc > 1) {
                fprintf(stderr, "Usage: %s [--version]\n", argv[0]);
                return 2;
        }

        r = clusterd_new(&c);
        if (r >= 0)
                r = clusterd_startup(c);
        if (r >= 0)
                r = clusterd_run(c);
        if (r < 0) {
                log_error("gpupass-clusterd failed: %s", strerror(-r));
                (void) sd_notifyf(false, "ERRNO=%d", -r);
        }
        clusterd_free(c);
        return r < 0 ? 1 : 0;
}
