/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl-cluster.h"
#include "gpupass/bus-names.h"
#include "macro.h"
#include "pci-address.h"
#include "strv.h"

static void message_unrefp(sd_bus_message **m) {
        sd_bus_message_unref(*m);
}

/* Calls a Manager method of the aggregator; on failure prints the message and the error name. */
/* One ListGpus entry; companions (if wanted) is the caller's to free. */
static int read_gpu(sd_bus_message *m, const char **host, const char **address, const char **model,
                    const char **mode, const char **state, const char **owner, const char **previous, int *needs,
                    char ***companions) {
        int r;

        r = sd_bus_message_enter_container(m, 'r', "sssssssbas");
        if (r <= 0)
                return r;
        r = sd_bus_message_read(m, "sssssssb", host, address, model, mode, state, owner, previous, needs);
        if (r >= 0)
                r = companions ? sd_bus_message_read_strv(m, companions) : sd_bus_message_skip(m, "as");
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        return r < 0 ? r : 1;
}

static int call_cluster(sd_bus *bus, const char *method, const char *what, sd_bus_message **ret, const char *types,
                        const char *arg) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = types ? sd_bus_call_method(bus, GPUPASS_CLUSTER_BUS_NAME, GPUPASS_CLUSTER_MANAGER_PATH,
                                       GPUPASS_CLUSTER_MANAGER_IFACE, method, &error, ret, types, arg)
                  : sd_bus_call_method(bus, GPUPASS_CLUSTER_BUS_NAME, GPUPASS_CLUSTER_MANAGER_PATH,
                                       GPUPASS_CLUSTER_MANAGER_IFACE, method, &error, ret, NULL);
        if (r < 0) {
                r = ctl_report_error(what, &error, r);
                sd_bus_error_free(&error);
                return r;
        }
        return 0;
}

int verb_cluster_hosts(sd_bus *bus, char **args) {
        _cleanup_(message_unrefp) sd_bus_message *reply = NULL;
        const char *name, *address, *state, *why;
        uint32_t cpus, gpus;
        uint64_t memory;
        unsigned n = 0;
        int r;

        r = call_cluster(bus, "ListHosts", "list hosts", &reply, NULL, NULL);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "(ssssutu)");
        if (r < 0)
                return r;
        if (arg_legend)
                printf("%-16s %-12s %5s %10s %5s %s\n", "HOST", "STATE", "CPUS", "MEMORY", "GPUS", "ADDRESS / WHY");
        while ((r = sd_bus_message_read(reply, "(ssssutu)", &name, &address, &state, &why, &cpus, &memory, &gpus)) > 0) {
                printf("%-16s %-12s %5u %6llu MiB %5u %s%s%s\n", name, state, cpus, (unsigned long long) memory, gpus,
                       address, *why ? ": " : "", why);
                n++;
        }
        if (r < 0)
                return r;
        if (arg_legend)
                printf("\n%u hosts listed.\n", n);
        return 0;
}

int verb_cluster_gpus(sd_bus *bus, char **args) {
        _cleanup_(message_unrefp) sd_bus_message *reply = NULL;
        const char *host, *address, *model, *mode, *state, *owner, *previous;
        unsigned n = 0;
        int needs, r;

        r = call_cluster(bus, "ListGpus", "list the cluster's GPUs", &reply, NULL, NULL);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "(sssssssbas)");
        if (r < 0)
                return r;
        if (arg_legend)
                printf("%-12s %-13s %-28s %-9s %-12s %s\n", "HOST", "ADDRESS", "MODEL", "MODE", "STATE", "OWNER");
        while ((r = read_gpu(reply, &host, &address, &model, &mode, &state, &owner, &previous, &needs, NULL)) > 0) {
                printf("%-12s %-13s %-28s %-9s %-12s %s", host, address, model, mode, state, *owner ? owner : "-");
                if (*previous)
                        printf(" (was %s%s)", previous, needs ? ", needs reconfiguration" : "");
                printf("\n");
                n++;
        }
        if (r < 0)
                return r;
        if (arg_legend)
                printf("\n%u GPUs listed.\n", n);
        return 0;
}

int verb_cluster_vms(sd_bus *bus, char **args) {
        _cleanup_(message_unrefp) sd_bus_message *reply = NULL;
        const char *uuid, *name, *gpus, *affinity, *power, *host, *flags;
        uint32_t vcpus;
        uint64_t memory;
        unsigned n = 0;
        int r;

        r = call_cluster(bus, "ListVms", "list VMs", &reply, NULL, NULL);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "(ssutsssss)");
        if (r < 0)
                return r;
        if (arg_legend)
                printf("%-16s %-5s %-10s %5s %9s %-40s %s\n", "VM", "POWER", "HOST", "VCPUS", "MEMORY", "GPUS", "FLAGS");
        while ((r = sd_bus_message_read(reply, "(ssutsssss)", &uuid, &name, &vcpus, &memory, &gpus, &affinity, &power,
                                        &host, &flags)) > 0) {
                printf("%-16s %-5s %-10s %5u %5llu MiB %-40s %s\n", name, power, *host ? host : "-", vcpus,
                       (unsigned long long) memory, *gpus ? gpus : "-", *flags ? flags : "-");
                n++;
        }
        if (r < 0)
                return r;
        if (arg_legend)
                printf("\n%u VMs listed.\n", n);
        return 0;
}

int verb_power_on(sd_bus *bus, char **args) {
        _cleanup_(message_unrefp) sd_bus_message *reply = NULL;
        const char *host, *gpu;
        int r;

        r = call_cluster(bus, "PowerOn", "power on", &reply, "s", args[0]);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "s", &host);
        if (r < 0)
                return r;
        printf("%s is on, on host %s", args[0], host);
        r = sd_bus_message_enter_container(reply, 'a', "s");
        for (const char *sep = " with GPUs "; r >= 0 && (r = sd_bus_message_read(reply, "s", &gpu)) > 0; sep = ", ")
                printf("%s%s", sep, gpu);
        printf("\n");
        return r < 0 ? r : 0;
}

int verb_power_off(sd_bus *bus, char **args) {
        return call_cluster(bus, "PowerOff", "power off", NULL, "s", args[0]);
}

int verb_hostdev(sd_bus *bus, char **args) {
        _cleanup_(message_unrefp) sd_bus_message *reply = NULL;
        const char *uuid, *name, *gpus, *affinity, *power, *host, *flags;
        uint32_t vcpus;
        uint64_t memory;
        int r;

        r = call_cluster(bus, "ListVms", "list VMs", &reply, NULL, NULL);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "(ssutsssss)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(ssutsssss)", &uuid, &name, &vcpus, &memory, &gpus,
                                                  &affinity, &power, &host, &flags)) > 0) {
                _cleanup_(message_unrefp) sd_bus_message *gpu_list = NULL;
                _cleanup_strv_free_ char **functions = NULL;
                const char *h, *address, *model, *mode, *state, *owner, *previous;
                int needs;

                if (strcmp(name, args[0]) != 0 && strcasecmp(uuid, args[0]) != 0)
                        continue;
                if (strcmp(power, "on") != 0) {
                        fprintf(stderr, "VM %s is off: its GPUs are chosen at power-on\n", name);
                        return -1;
                }
                r = call_cluster(bus, "ListGpus", "list the cluster's GPUs", &gpu_list, NULL, NULL);
                if (r < 0)
                        return r;
                r = sd_bus_message_enter_container(gpu_list, 'a', "(sssssssbas)");
                while (r >= 0) {
                        _cleanup_strv_free_ char **companions = NULL;

                        r = read_gpu(gpu_list, &h, &address, &model, &mode, &state, &owner, &previous, &needs,
                                     &companions);
                        if (r <= 0)
                                break;
                        if (strcmp(h, host) != 0 || strcasecmp(owner, uuid) != 0)
                                continue;
                        /* The GPU and its companions: the functions of its IOMMU group that go to the VM. */
                        r = strv_extend(&functions, address);
                        for (char **c = companions; r >= 0 && c && *c; c++)
                                r = strv_extend(&functions, *c);
                }
                if (r < 0)
                        return r;
                printf("# VM %s (%s) runs on %s. The launcher there takes the descriptors from the agent's\n"
                       "# OpenVfio(\"%s\") (or AllowUser for a VMM that opens /dev/vfio itself).\n# QEMU:\n", name,
                       uuid, host, uuid);
                for (char **f = functions; f && *f; f++)
                        printf("-device vfio-pci,host=%s\n", *f);
                printf("# libvirt (inside <devices>; managed='no': gpupassd binds the group, not libvirt):\n");
                for (char **f = functions; f && *f; f++) {
                        struct pci_address a;

                        if (pci_address_parse(*f, &a) < 0)
                                continue;
                        printf("<hostdev mode='subsystem' type='pci' managed='no'>\n"
                               "  <source><address domain='0x%04x' bus='0x%02x' slot='0x%02x' function='0x%x'/></source>\n"
                               "</hostdev>\n", a.domain, a.bus, a.device, a.function);
                }
                return r < 0 ? r : 0;
        }
        if (r < 0)
                return r;
        fprintf(stderr, "No VM '%s' in the registry\n", args[0]);
        return -1;
}
