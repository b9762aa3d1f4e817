/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-bus.h>

#include "domain-xml.h"
#include "gpu-entry.h"

/*
 * What gpupass-libvirt-hook asks of gpupassd: which of a domain's PCI hostdevs it manages (a GPU's address
 * or one of its companions'), grouped by IOMMU group (a claim is per group), then Claim or Release on one
 * GPU object per group. Every call is bounded by a deadline on CLOCK_MONOTONIC: libvirtd waits for the
 * hook with the domain's lock held.
 */

/* One IOMMU group the domain wants, with the GPU object that stands for it. */
struct hook_group {
        const struct gpu_entry *gpu;   /* Claim/Release go to gpu->path; gpu->owner as ListGpus said */
        char hostdev[PCI_ADDRESS_MAX]; /* the domain's first hostdev in the group, for messages */
        bool managed;                  /* that hostdev is managed='yes' (libvirt would rebind it itself) */
};

struct hook_agent {
        sd_bus *bus;
        uint64_t deadline;             /* CLOCK_MONOTONIC, µs */
        sd_bus_message *list_reply;    /* the gpu entries' strings point into it */
        struct gpu_entry *gpus;
        size_t n_gpus;
        struct hook_group *groups;
        size_t n_groups;
};

/* Connects to the system bus ($DBUS_SYSTEM_BUS_ADDRESS in tests) and lists the agent's GPUs, within
 * timeout_usec. On failure *ret_error says what could not be reached (the caller's to free). */
int hook_agent_open(struct hook_agent *a, uint64_t timeout_usec, char **ret_error);
void hook_agent_close(struct hook_agent *a);

/* The groups of d's PCI hostdevs that gpupassd manages, in the domain's order, one entry per group; any
 * other hostdev is not gpupass's business and is left out. */
int hook_agent_plan(struct hook_agent *a, const struct domain_xml_info *d);

/* Restarts the clock: a rollback gets its own time after a claim ran out of it. */
void hook_agent_set_timeout(struct hook_agent *a, uint64_t timeout_usec);

/* Claim(vm) or Release(vm) on the group's GPU. On a refusal, 0 > return and *error holds the agent's
 * error name and message (or a timeout the hook made up, org.freedesktop.DBus.Error.Timeout). */
int hook_agent_call(struct hook_agent *a, const struct hook_group *g, const char *method, const char *vm,
                    sd_bus_error *error);
