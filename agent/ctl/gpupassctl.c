/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gpupassctl: the command line of gpupass, what hostnamectl is to hostnamed. Tables by default, -H for an
 * agent on another host (sd-bus over ssh), the D-Bus error name in every failure so scripts can match it.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-bus.h>

#include "config.h"
#include "ctl-cluster.h"
#include "gpupass/bus-names.h"
#include "macro.h"
#include "pci-address.h"

/* Exit codes, documented in README: */
#define EXIT_CALL_FAILED 1 /* the agent refused or the call failed */
#define EXIT_USAGE 2       /* bad command line */

static const char *arg_host = NULL;
bool arg_legend = true;

static void bus_unrefp(sd_bus **b) {
        sd_bus_flush_close_unref(*b);
}
static void message_unrefp(sd_bus_message **m) {
        sd_bus_message_unref(*m);
}

static int connect_agent(sd_bus **ret) {
        int r = arg_host ? sd_bus_open_system_remote(ret, arg_host) : sd_bus_open_system(ret);

        if (r < 0)
                fprintf(stderr, "Failed to connect to the %s system bus: %s\n", arg_host ?: "local", strerror(-r));
        return r;
}

int ctl_report_error(const char *what, const sd_bus_error *error, int r) {
        if (sd_bus_error_is_set(error))
                fprintf(stderr, "Failed to %s: %s (%s)\n", what, error->message ?: "", error->name);
        else
                fprintf(stderr, "Failed to %s: %s\n", what, strerror(-r));
        return -EXIT_CALL_FAILED;
}

struct gpu_row {
        const char *path, *address, *model, *mode, *state, *driver, *owner, *serial, *problem;
        int32_t group, numa;
        bool boot_vga, needs_reconfiguration;
};

static void print_gpu_table_header(void) {
        if (arg_legend)
                printf("%-13s %-28s %-9s %-11s %-14s %-5s %-36s %s\n", "ADDRESS", "MODEL", "MODE", "STATE", "DRIVER",
                       "GROUP", "OWNER", "PROBLEM");
}

static void print_gpu_row(const struct gpu_row *g) {
        char group[16];

        if (g->group >= 0)
                snprintf(group, sizeof(group), "%d", g->group);
        else
                snprintf(group, sizeof(group), "-");
        printf("%-13s %-28s %-9s %-11s %-14s %-5s %-36s %s\n", g->address, g->model, g->mode, g->state,
               *g->driver ? g->driver : "-", group, *g->owner ? g->owner : "-", *g->problem ? g->problem : "-");
}

static int read_gpu_row(sd_bus_message *reply, struct gpu_row *g) {
        int boot_vga, needs, r;

        r = sd_bus_message_enter_container(reply, 'r', "osssssssiiasbbs");
        if (r <= 0)
                return r;
        r = sd_bus_message_read(reply, "osssssssii", &g->path, &g->address, &g->model, &g->mode, &g->state,
                                &g->driver, &g->owner, &g->serial, &g->group, &g->numa);
        if (r < 0)
                return r;
        r = sd_bus_message_skip(reply, "as");
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "bbs", &boot_vga, &needs, &g->problem);
        if (r < 0)
                return r;
        g->boot_vga = boot_vga;
        g->needs_reconfiguration = needs;
        r = sd_bus_message_exit_container(reply);
        return r < 0 ? r : 1;
}

static int verb_list(sd_bus *bus, char **args) {
        _cleanup_(message_unrefp) sd_bus_message *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        struct gpu_row g;
        unsigned n = 0;
        int r;

        r = sd_bus_call_method(bus, GPUPASS_AGENT_BUS_NAME, GPUPASS_AGENT_MANAGER_PATH, GPUPASS_AGENT_MANAGER_IFACE,
                               "ListGpus", &error, &reply, NULL);
        if (r < 0) {
                r = ctl_report_error("list GPUs", &error, r);
                sd_bus_error_free(&error);
                return r;
        }
        r = sd_bus_message_enter_container(reply, 'a', "(osssssssiiasbbs)");
        if (r < 0)
                return r;
        print_gpu_table_header();
        while ((r = read_gpu_row(reply, &g)) > 0) {
                print_gpu_row(&g);
                n++;
        }
        if (r < 0)
                return r;
        if (arg_legend)
                printf("\n%u GPUs listed.\n", n);
        return 0;
}

static int print_manager_property(sd_bus *bus, const char *label, const char *property, char type) {
        _cleanup_(message_unrefp) sd_bus_message *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char sig[2] = { type, 0 };
        int r;

        r = sd_bus_get_property(bus, GPUPASS_AGENT_BUS_NAME, GPUPASS_AGENT_MANAGER_PATH, GPUPASS_AGENT_MANAGER_IFACE,
                                property, &error, &reply, sig);
        if (r < 0) {
                r = ctl_report_error("read host properties", &error, r);
                sd_bus_error_free(&error);
                return r;
        }
        switch (type) {
        case 's': {
                const char *s;
                r = sd_bus_message_read(reply, "s", &s);
                if (r >= 0)
                        printf("%16s: %s\n", label, s);
                break;
        }
        case 'b': {
                int b;
                r = sd_bus_message_read(reply, "b", &b);
                if (r >= 0)
                        printf("%16s: %s\n", label, b ? "yes" : "no");
                break;
        }
        case 'u': {
                uint32_t u;
                r = sd_bus_message_read(reply, "u", &u);
                if (r >= 0)
                        printf("%16s: %u\n", label, u);
                break;
        }
        case 't': {
                uint64_t t;
                r = sd_bus_message_read(reply, "t", &t);
                if (r >= 0)
                        printf("%16s: %llu MiB\n", label, (unsigned long long) t);
                break;
        }
        }
        return r;
}

static int verb_status(sd_bus *bus, char **args) {
        static const struct {
                const char *label, *property;
                char type;
        } props[] = {
                { "Hostname", "Hostname", 's' },   { "Machine ID", "MachineId", 's' },
                { "CPUs", "CpuCount", 'u' },       { "Memory", "MemoryMiB", 't' },
                { "IOMMU", "IommuEnabled", 'b' },  { "Maintenance", "Maintenance", 'b' },
                { "Agent version", "Version", 's' },
        };
        int r;

        for (size_t i = 0; i < ELEMENTSOF(props); i++) {
                r = print_manager_property(bus, props[i].label, props[i].property, props[i].type);
                if (r < 0)
                        return r;
        }
        printf("\n");
        return verb_list(bus, args);
}

static int resolve_gpu(sd_bus *bus, const char *address, char **ret_path) {
        _cleanup_(message_unrefp) sd_bus_message *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *path;
        int r;

        r = sd_bus_call_method(bus, GPUPASS_AGENT_BUS_NAME, GPUPASS_AGENT_MANAGER_PATH, GPUPASS_AGENT_MANAGER_IFACE,
                               "GetGpu", &error, &reply, "s", address);
        if (r < 0) {
                char what[64];

                snprintf(what, sizeof(what), "find GPU %s", address);
                r = ctl_report_error(what, &error, r);
                sd_bus_error_free(&error);
                return r;
        }
        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return r;
        *ret_path = strdup(path);
        return *ret_path ? 0 : -ENOMEM;
}

static int verb_show(sd_bus *bus, char **args) {
        _cleanup_free_ char *path = NULL;
        _cleanup_(message_unrefp) sd_bus_message *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = resolve_gpu(bus, args[0], &path);
        if (r < 0)
                return r;
        r = sd_bus_call_method(bus, GPUPASS_AGENT_BUS_NAME, path, "org.freedesktop.DBus.Properties", "GetAll",
                               &error, &reply, "s", GPUPASS_AGENT_GPU_IFACE);
        if (r < 0) {
                r = ctl_report_error("read GPU properties", &error, r);
                sd_bus_error_free(&error);
                return r;
        }
        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                const char *name, *contents;
                char type;

                r = sd_bus_message_read(reply, "s", &name);
                if (r < 0)
                        return r;
                r = sd_bus_message_peek_type(reply, &type, &contents);
                if (r < 0)
                        return r;
                r = sd_bus_message_enter_container(reply, 'v', contents);
                if (r < 0)
                        return r;
                printf("%22s: ", name);
                if (strcmp(contents, "s") == 0) {
                        const char *s;
                        r = sd_bus_message_read(reply, "s", &s);
                        printf("%s\n", *s ? s : "-");
                } else if (strcmp(contents, "b") == 0) {
                        int b;
                        r = sd_bus_message_read(reply, "b", &b);
                        printf("%s\n", b ? "yes" : "no");
                } else if (strcmp(contents, "q") == 0) {
                        uint16_t q;
                        r = sd_bus_message_read(reply, "q", &q);
                        printf("0x%04x\n", q);
                } else if (strcmp(contents, "u") == 0) {
                        uint32_t u;
                        r = sd_bus_message_read(reply, "u", &u);
                        printf("0x%06x\n", u);
                } else if (strcmp(contents, "y") == 0) {
                        uint8_t y;
                        r = sd_bus_message_read(reply, "y", &y);
                        printf("0x%02x\n", y);
                } else if (strcmp(contents, "i") == 0) {
                        int32_t i;
                        r = sd_bus_message_read(reply, "i", &i);
                        printf("%d\n", i);
                } else if (strcmp(contents, "as") == 0) {
                        const char *s;
                        bool first = true;
                        r = sd_bus_message_enter_container(reply, 'a', "s");
                        while (r >= 0 && (r = sd_bus_message_read(reply, "s", &s)) > 0) {
                                printf("%s%s", first ? "" : " ", s);
                                first = false;
                        }
                        printf("%s\n", first ? "-" : "");
                        if (r >= 0)
                                r = sd_bus_message_exit_container(reply);
                } else
                        r = sd_bus_message_skip(reply, contents);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(reply);
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        return r;
        }
        return r;
}

static int call_gpu_method(sd_bus *bus, const char *address, const char *method, const char *what) {
        _cleanup_free_ char *path = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char description[96];
        int r;

        r = resolve_gpu(bus, address, &path);
        if (r < 0)
                return r;
        r = sd_bus_call_method(bus, GPUPASS_AGENT_BUS_NAME, path, GPUPASS_AGENT_GPU_IFACE, method, &error, NULL, NULL);
        if (r < 0) {
                snprintf(description, sizeof(description), "%s %s", what, address);
                r = ctl_report_error(description, &error, r);
                sd_bus_error_free(&error);
                return r;
        }
        return 0;
}

static int verb_prepare(sd_bus *bus, char **args) {
        return call_gpu_method(bus, args[0], "Prepare", "prepare");
}

static int verb_return(sd_bus *bus, char **args) {
        return call_gpu_method(bus, args[0], "ReturnToHost", "return to host");
}

static int call_manager(sd_bus *bus, const char *method, const char *what, const char *signature, int value) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = signature ? sd_bus_call_method(bus, GPUPASS_AGENT_BUS_NAME, GPUPASS_AGENT_MANAGER_PATH,
                                           GPUPASS_AGENT_MANAGER_IFACE, method, &error, NULL, signature, value)
                      : sd_bus_call_method(bus, GPUPASS_AGENT_BUS_NAME, GPUPASS_AGENT_MANAGER_PATH,
                                           GPUPASS_AGENT_MANAGER_IFACE, method, &error, NULL, NULL);
        if (r < 0) {
                r = ctl_report_error(what, &error, r);
                sd_bus_error_free(&error);
        }
        return r;
}

static int verb_rescan(sd_bus *bus, char **args) {
        return call_manager(bus, "Rescan", "rescan", NULL, 0);
}

static int verb_maintenance(sd_bus *bus, char **args) {
        int enable;

        if (strcmp(args[0], "on") == 0)
                enable = 1;
        else if (strcmp(args[0], "off") == 0)
                enable = 0;
        else {
                fprintf(stderr, "maintenance takes 'on' or 'off', not '%s'\n", args[0]);
                return -EXIT_USAGE;
        }
        return call_manager(bus, "SetMaintenance", "set maintenance", "b", enable);
}

static const struct verb {
        const char *name;
        int n_args;
        int (*run)(sd_bus *bus, char **args);
        const char *usage, *help;
} verbs[] = {
        { "list", 0, verb_list, "list", "List the host's GPUs (the default)" },
        { "status", 0, verb_status, "status", "Show the host and its GPUs" },
        { "show", 1, verb_show, "show ADDRESS", "Show every property of one GPU" },
        { "prepare", 1, verb_prepare, "prepare ADDRESS", "Bind the GPU's IOMMU group to vfio-pci" },
        { "return", 1, verb_return, "return ADDRESS", "Give the GPU's IOMMU group back to its host drivers" },
        { "rescan", 0, verb_rescan, "rescan", "Re-read every PCI device" },
        { "maintenance", 1, verb_maintenance, "maintenance on|off", "Refuse (or allow again) new claims" },
        /* The cluster, through gpupass-clusterd: */
        { "hosts", 0, verb_cluster_hosts, "hosts", "List the cluster's hosts and their state" },
        { "gpus", 0, verb_cluster_gpus, "gpus", "The cluster-wide view of every GPU" },
        { "vms", 0, verb_cluster_vms, "vms", "List the VMs of the registry" },
        { "power-on", 1, verb_power_on, "power-on VM", "Place the VM and claim its GPUs" },
        { "power-off", 1, verb_power_off, "power-off VM", "Release the VM's GPUs" },
        { "hostdev", 1, verb_hostdev, "hostdev VM", "QEMU arguments and libvirt <hostdev> for a running VM" },
};

static void help(void) {
        printf("gpupassctl [OPTIONS...] COMMAND ...\n\n"
               "Query and control the GPU pass-through agent of a host.\n\nCommands:\n");
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                printf("  %-22s %s\n", verbs[i].usage, verbs[i].help);
        printf("\nOptions:\n"
               "  -h --help              Show this help\n"
               "     --version           Show the version\n"
               "  -H --host=[USER@]HOST  Operate on the agent of a remote host (over ssh)\n"
               "     --no-legend         Do not print the table header and footer\n"
               "\nlist, status, show, prepare, return, rescan and maintenance talk to the host's agent\n"
               "(org.gpupass.agent1); hosts, gpus, vms, power-on, power-off and hostdev to the cluster's\n"
               "aggregator (org.gpupass.cluster1). Both on the system bus, or on HOST's with -H.\n"
               "\nExit status: 0 success, 1 the agent refused or the call failed "
               "(the message ends with the D-Bus error name), 2 bad usage.\n"
               "Addresses are PCI addresses, 0000:3b:00.0 or 3b:00.0.\n");
}

int main(int argc, char *argv[]) {
        enum { ARG_VERSION = 0x100, ARG_NO_LEGEND };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "host", required_argument, NULL, 'H' },
                { "no-legend", no_argument, NULL, ARG_NO_LEGEND },
                {}
        };
        _cleanup_(bus_unrefp) sd_bus *bus = NULL;
        const struct verb *verb = NULL;
        const char *name;
        int c, r;

        while ((c = getopt_long(argc, argv, "hH:", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("gpupassctl %s\n", GPUPASS_VERSION);
                        return 0;
                case 'H':
                        arg_host = optarg;
                        break;
                case ARG_NO_LEGEND:
                        arg_legend = false;
                        break;
                default:
                        return EXIT_USAGE;
                }
        }
        name = optind < argc ? argv[optind] : "list";
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (strcmp(verbs[i].name, name) == 0)
                        verb = &verbs[i];
        if (!verb) {
                fprintf(stderr, "Unknown command '%s'; see gpupassctl --help\n", name);
                return EXIT_USAGE;
        }
        if (optind < argc && argc - optind - 1 != verb->n_args) {
                fprintf(stderr, "Usage: gpupassctl %s\n", verb->usage);
                return EXIT_USAGE;
        }
        if (verb->n_args > 0 && optind >= argc) {
                fprintf(stderr, "Usage: gpupassctl %s\n", verb->usage);
                return EXIT_USAGE;
        }

        r = connect_agent(&bus);
        if (r < 0)
                return EXIT_CALL_FAILED;
        r = verb->run(bus, argv + optind + 1);
        if (r == -EXIT_USAGE)
                return EXIT_USAGE;
        if (r == -EXIT_CALL_FAILED)
                return EXIT_CALL_FAILED;
        if (r < 0) {
                fprintf(stderr, "Failed to parse the agent's reply: %s\n", strerror(-r));
                return EXIT_CALL_FAILED;
        }
        return 0;
}
