/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gpupass/bus-names.h"
#include "hook-agent.h"
#include "macro.h"
#include "pci-address.h"
#include "strv.h"

static uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

void hook_agent_set_timeout(struct hook_agent *a, uint64_t timeout_usec) {
        a->deadline = now_usec() + timeout_usec;
}

/* What is left of the deadline becomes the next call's timeout; -ETIMEDOUT when nothing is left. */
static int arm_timeout(struct hook_agent *a) {
        uint64_t now = now_usec();

        if (now >= a->deadline)
                return -ETIMEDOUT;
        return sd_bus_set_method_call_timeout(a->bus, a->deadline - now);
}

int hook_agent_open(struct hook_agent *a, uint64_t timeout_usec, char **ret_error) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        struct gpu_entry *gpus = NULL;
        size_t n = 0;
        int r;

        *a = (struct hook_agent) {};
        hook_agent_set_timeout(a, timeout_usec);
        r = sd_bus_open_system(&a->bus);
        if (r < 0)
                return asprintf(ret_error, "cannot connect to the system bus: %s", strerror(-r)) < 0 ? -ENOMEM : r;
        r = arm_timeout(a);
        if (r >= 0)
                r = sd_bus_call_method(a->bus, GPUPASS_AGENT_BUS_NAME, GPUPASS_AGENT_MANAGER_PATH,
                                       GPUPASS_AGENT_MANAGER_IFACE, "ListGpus", &error, &a->list_reply, NULL);
        if (r < 0) {
                int k;

                if (r == -ETIMEDOUT)
                        k = asprintf(ret_error, "gpupassd did not list its GPUs within %llu s",
                                     (unsigned long long) (timeout_usec / 1000000u));
                else if (sd_bus_error_is_set(&error))
                        k = asprintf(ret_error, "gpupassd did not list its GPUs: %s: %s", error.name, error.message);
                else
                        k = asprintf(ret_error, "gpupassd did not list its GPUs: %s", strerror(-r));
                sd_bus_error_free(&error);
                return k < 0 ? -ENOMEM : r;
        }
        r = sd_bus_message_enter_container(a->list_reply, 'a', GPUPASS_GPU_ENTRY_SIGNATURE);
        for (;;) {
                struct gpu_entry e = {}, *grown;

                if (r < 0)
                        break;
                r = gpu_entry_read(a->list_reply, &e);
                if (r <= 0)
                        break;
                grown = reallocarray(gpus, n + 1, sizeof(*gpus));
                if (!grown) {
                        strv_free(e.companions);
                        r = -ENOMEM;
                        break;
                }
                gpus = grown;
                gpus[n++] = e;
        }
        a->gpus = gpus;
        a->n_gpus = n;
        if (r < 0)
                return asprintf(ret_error, "cannot read gpupassd's GPU list: %s", strerror(-r)) < 0 ? -ENOMEM : r;
        return 0;
}

void hook_agent_close(struct hook_agent *a) {
        for (size_t i = 0; i < a->n_gpus; i++)
                strv_free(a->gpus[i].companions);
        free(a->gpus);
        free(a->groups);
        sd_bus_message_unref(a->list_reply);
        sd_bus_flush_close_unref(a->bus);
        *a = (struct hook_agent) {};
}

/* The GPU whose address or companion is address (canonical form), or NULL. */
static const struct gpu_entry *find_gpu(const struct hook_agent *a, const char *address) {
        for (size_t i = 0; i < a->n_gpus; i++) {
                char canonical[PCI_ADDRESS_MAX];

                if (pci_address_normalize(a->gpus[i].address, canonical) == 0 && strcmp(canonical, address) == 0)
                        return &a->gpus[i];
                for (char **c = a->gpus[i].companions; c && *c; c++)
                        if (pci_address_normalize(*c, canonical) == 0 && strcmp(canonical, address) == 0)
                                return &a->gpus[i];
        }
        return NULL;
}

/* Two GPUs stand for one claim when they share an IOMMU group; a GPU without a group is its own. */
static bool same_group(const struct gpu_entry *x, const struct gpu_entry *y) {
        return x == y || (x->group >= 0 && x->group == y->group);
}

int hook_agent_plan(struct hook_agent *a, const struct domain_xml_info *d) {
        free(a->groups);
        a->groups = NULL;
        a->n_groups = 0;
        for (size_t i = 0; i < d->n_hostdevs; i++) {
                const struct gpu_entry *gpu;
                struct hook_group *grown;
                char address[PCI_ADDRESS_MAX];
                bool seen = false;

                pci_address_format(&d->hostdevs[i].address, address);
                gpu = find_gpu(a, address);
                if (!gpu)
                        continue;
                for (size_t j = 0; j < a->n_groups; j++)
                        if (same_group(a->groups[j].gpu, gpu)) {
                                /* One managed='yes' member is enough for libvirt to rebind the group. */
                                a->groups[j].managed = a->groups[j].managed || d->hostdevs[i].managed;
                                seen = true;
                        }
                if (seen)
                        continue;
                grown = reallocarray(a->groups, a->n_groups + 1, sizeof(*grown));
                if (!grown)
                        return -ENOMEM;
                a->groups = grown;
                a->groups[a->n_groups] = (struct hook_group) { .gpu = gpu, .managed = d->hostdevs[i].managed };
                memcpy(a->groups[a->n_groups].hostdev, address, sizeof(address));
                a->n_groups++;
        }
        return 0;
}

int hook_agent_call(struct hook_agent *a, const struct hook_group *g, const char *method, const char *vm,
                    sd_bus_error *error) {
        int r;

        r = arm_timeout(a);
        if (r >= 0)
                r = sd_bus_call_method(a->bus, GPUPASS_AGENT_BUS_NAME, g->gpu->path, GPUPASS_AGENT_GPU_IFACE, method,
                                       error, NULL, "s", vm);
        /* Our own deadline, or a failure that is not the agent's answer: give it a name too. */
        if (r == -ETIMEDOUT && !sd_bus_error_is_set(error))
                sd_bus_error_set(error, SD_BUS_ERROR_TIMEOUT, "gpupassd did not answer in time");
        else if (r < 0 && !sd_bus_error_is_set(error))
                sd_bus_error_set_errno(error, r);
        return r;
}
