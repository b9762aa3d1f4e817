/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "macro.h"
#include "pci-address.h"

/*
 * Moving the assigned members of one IOMMU group between their host drivers and vfio-pci, the kernel's
 * way (see libvirt's virPCIDeviceBindToStub): per device, never new_id,
 *   driver_override := "vfio-pci"; unbind from the current driver; drivers_probe; check the driver link,
 * because drivers_probe reports success even when no driver took the device. All or nothing: on any
 * failure every member touched so far goes back to its original driver and override.
 *
 * These functions block (unbinding waits for the driver's remove(), module loading for the module):
 * they run on a worker thread, never on the event loop, and touch nothing but sysfs.
 */
struct bind_member {
        char address[PCI_ADDRESS_MAX];
        char *original_driver;   /* NULL when it was unbound */
        char *original_override; /* NULL when unset */
        bool touched;
};

struct bind_plan {
        int group;
        size_t n_members;
        struct bind_member *members;
        char *error_message; /* set on failure: names the device, the step and the kernel's answer */
};

/* An empty plan for IOMMU group `group`; members come with bind_plan_add(). */
int bind_plan_new(int group, struct bind_plan **ret);
struct bind_plan *bind_plan_free(struct bind_plan *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct bind_plan *, bind_plan_free);
int bind_plan_add(struct bind_plan *p, const char *address);
/* Why the plan failed: its error_message, else `error` as text (kept in error_message). */
const char *bind_plan_error(struct bind_plan *p, int error);

/* Loads vfio-pci through libkmod when its driver directory is missing. */
int vfio_pci_ensure_loaded(char **ret_message);
int bind_plan_to_vfio(struct bind_plan *p);
/* Clears driver_override with a newline, unbinds from vfio-pci, probes: the host driver (if any matches)
 * takes the device back. Continues past a failing member so that as much as possible returns; the first
 * error is reported. */
int bind_plan_to_host(struct bind_plan *p);
