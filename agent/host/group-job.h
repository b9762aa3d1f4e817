/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include <systemd/sd-bus.h>

struct gpu;

/* Binds the GPU's group to vfio-pci (a job); `reply` is the method call to answer when done. */
int gpu_prepare(struct gpu *g, sd_bus_message *reply, sd_bus_error *error);
int gpu_return_to_host(struct gpu *g, sd_bus_message *reply, sd_bus_error *error);
/* Binds (to_vfio) or returns the group; with claim_vm, records the claim when bound. Answers `call`. */
int gpu_start_bind_job(struct gpu *g, sd_bus_message *call, bool to_vfio, const char *claim_vm,
                       sd_bus_error *error);
/* A claimed GPU whose card came back from a surprise removal: the kernel probed the host drivers for its
 * functions again, but the claim says they belong on vfio-pci, so they go back there (a job: unbinding a
 * host driver can take long; no call to answer). 1 when a job started, 0 when nothing is to do. A failure
 * is retried (the kernel probes the host driver right after the add uevent, and that bind can land between
 * our driver_override write and drivers_probe), up to GPU_REBIND_ATTEMPTS until the card goes again. */
#define GPU_REBIND_ATTEMPTS 5
int gpu_rebind_claimed(struct gpu *g);
/* Resets the GPU's group off the loop and ends vm's claim when done (Release, after its checks). Answers `call`. */
int release_job_start(struct gpu *g, sd_bus_message *call, const char *vm, sd_bus_error *error);
