/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gpupassctl: the command line of gpupass, what hostnamectl and machinectl are to their daemons. Tables
 * with a legend by default, --json for scripts, -H for an agent on another host (sd-bus over ssh),
 * --cluster for an aggregator elsewhere, the D-Bus error name in every failure so scripts can match it.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#include "config.h"
#include "ctl.h"
#include "macro.h"

const char *arg_host = NULL;
static const char *arg_cluster = NULL;
bool arg_legend = true;
JsonMode arg_json = JSON_OFF;
uint32_t arg_vcpus = 0;
uint64_t arg_memory_mib = 0;
bool arg_no_block = false;

static void bus_unrefp(sd_bus **b) {
        sd_bus_flush_close_unref(*b);
}

int ctl_report_error(const char *what, const sd_bus_error *error, int r) {
        if (sd_bus_error_is_set(error))
                fprintf(stderr, "Failed to %s: %s (%s)\n", what, error->message ?: "", error->name);
        else
                fprintf(stderr, "Failed to %s: %s\n", what, strerror(-r));
        /* sd-bus connects lazily: an ssh that could not reach the host shows up as the first call failing. */
        if (arg_host && sd_bus_error_has_names(error, "System.Error.ENOTCONN", "System.Error.ECONNRESET"))
                fprintf(stderr, "(Is %s reachable with ssh, and systemd-stdio-bridge installed there?)\n", arg_host);
        return -EXIT_CALL_FAILED;
}

int ctl_usage_error(const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        vfprintf(stderr, format, ap);
        va_end(ap);
        fputc('\n', stderr);
        return -EXIT_USAGE;
}

int ctl_json_print(json_object *document) {
        const char *text = json_text(document, arg_json == JSON_PRETTY);

        if (!text)
                return -ENOMEM;
        if (puts(text) == EOF || fflush(stdout) == EOF)
                return -EIO;
        return 0;
}

enum verb_target {
        AGENT,   /* one host's gpupassd: the local system bus, or HOST's with -H */
        CLUSTER, /* gpupass-clusterd: the system bus, or --cluster=ADDRESS */
};

enum {
        OPT_RESOURCES = 1 << 0, /* takes --vcpus and --memory */
        OPT_JSON = 1 << 1,      /* has a --json form */
        OPT_LEGEND = 1 << 2,    /* a table with a legend */
        OPT_ON_OFF = 1 << 3,    /* the last argument is on or off: checked before connecting */
        OPT_NO_BLOCK = 1 << 4,  /* waits for guests (long call timeout); --no-block returns at once */
};

static const struct verb {
        const char *name;
        int min_args, max_args; /* max -1: any number */
        enum verb_target target;
        unsigned options;
        verb_fn run;
        const char *usage, *summary, *details;
} verbs[] = {
        { "list", 0, 0, AGENT, OPT_JSON | OPT_LEGEND, verb_list, "list", "List the host's GPUs (the default)",
          "One line per GPU: address, model, mode, state, driver, IOMMU group, owning VM, problem." },
        { "status", 0, 0, AGENT, OPT_JSON | OPT_LEGEND, verb_status, "status", "Show the host and its GPUs",
          "The agent's host (hostname, CPUs, memory, IOMMU, maintenance, agent version), then its GPUs." },
        { "show", 1, 1, AGENT, OPT_JSON, verb_show, "show ADDRESS", "Show every property of one GPU",
          "ADDRESS is a PCI address, 0000:3b:00.0 or 3b:00.0." },
        { "prepare", 1, 1, AGENT, 0, verb_prepare, "prepare ADDRESS", "Bind the GPU's IOMMU group to vfio-pci",
          "Every GPU and companion of the group goes to vfio-pci; on failure all of them go back." },
        { "return", 1, 1, AGENT, 0, verb_return, "return ADDRESS",
          "Give the GPU's IOMMU group back to its host drivers", "Refused while the group is claimed." },
        { "claim", 2, 2, AGENT, 0, verb_claim, "claim ADDRESS VM-UUID", "Claim the GPU's IOMMU group for a VM",
          "Prepares the group first when needed. The aggregator's power-on does this for cluster VMs." },
        { "release", 2, 2, AGENT, 0, verb_release, "release ADDRESS VM-UUID", "End a VM's claim (resets the GPU)",
          "Refused (Busy) while a VMM still holds the group open." },
        { "allow-user", 3, 3, AGENT, 0, verb_allow_user, "allow-user ADDRESS VM-UUID UID",
          "Let a user's VMM open the claimed group's /dev/vfio nodes",
          "Until the claim is released. UID is numeric." },
        { "rescan", 0, 0, AGENT, 0, verb_rescan, "rescan", "Re-read every PCI device", NULL },
        { "maintenance", 1, 1, AGENT, OPT_ON_OFF, verb_maintenance, "maintenance on|off",
          "Refuse (or allow again) new claims on this host",
          "Only the agent's flag; host-maintenance also powers the host's VMs off and on again." },
        { "hosts", 0, 0, CLUSTER, OPT_JSON | OPT_LEGEND, verb_cluster_hosts, "hosts",
          "List the cluster's hosts and their state", NULL },
        { "gpus", 0, 0, CLUSTER, OPT_JSON | OPT_LEGEND, verb_cluster_gpus, "gpus",
          "The cluster-wide view of every GPU", NULL },
        { "vms", 0, 0, CLUSTER, OPT_JSON | OPT_LEGEND, verb_cluster_vms, "vms", "List the VMs of the registry",
          NULL },
        { "show-vm", 1, 1, CLUSTER, OPT_JSON, verb_show_vm, "show-vm VM", "Show one VM of the registry",
          "VM is a name or a UUID, here and in every VM verb." },
        { "create-vm", 1, 1, CLUSTER, OPT_RESOURCES | OPT_JSON, verb_create_vm,
          "create-vm NAME --vcpus=N --memory=SIZE", "Add a VM to the registry; prints its UUID",
          "SIZE is in MiB, or with a suffix: M/MiB, G/GiB, T/TiB (8G = 8192 MiB)." },
        { "delete-vm", 1, 1, CLUSTER, 0, verb_delete_vm, "delete-vm VM", "Remove a VM that is off", NULL },
        { "set-gpus", 2, 2, CLUSTER, 0, verb_set_gpus, "set-gpus VM REQUESTS", "Set the GPUs a VM asks for",
          "REQUESTS: ';'-separated, each COUNT:MODEL|MODEL or =HOST/ADDRESS, e.g.\n"
          "  '2:NVIDIA Tesla T4.compute;=alpha/0000:3b:00.0'. '' for none. Only while the VM is off;\n"
          "  clears a reconfigure flag." },
        { "set-resources", 1, 1, CLUSTER, OPT_RESOURCES, verb_set_resources,
          "set-resources VM [--vcpus=N] [--memory=SIZE]", "Change a VM's vCPUs and/or memory",
          "What is not given stays. Memory changes of a running VM with GPUs are refused." },
        { "set-affinity", 1, -1, CLUSTER, 0, verb_set_affinity, "set-affinity VM [HOST...]",
          "Restrict the VM to these hosts (none: any host)", NULL },
        { "power-on", 1, 1, CLUSTER, OPT_JSON | OPT_NO_BLOCK, verb_power_on, "power-on VM",
          "Place the VM, claim its GPUs, start its domain",
          "Prints the host and the GPUs; when no host fits, every host's reason (NoHostAvailable). On a host\n"
          "  with Runtime=libvirt the VM's domain is started after the claims (RuntimeFailed: libvirt's error)." },
        { "power-off", 1, 1, CLUSTER, OPT_NO_BLOCK, verb_power_off, "power-off VM",
          "Stop the VM's domain, release its GPUs",
          "On a host with Runtime=libvirt: ACPI shutdown, destroy after the aggregator's ShutdownTimeoutSec,\n"
          "  then the release; gpupassctl waits as long (--no-block: it does not)." },
        { "migrate", 1, 1, CLUSTER, 0, verb_migrate, "migrate VM", "Live migration (refused with pass-through)",
          NULL },
        { "pause", 1, 1, CLUSTER, 0, verb_pause, "pause VM", "Pause (refused with pass-through)", NULL },
        { "resume", 1, 1, CLUSTER, 0, verb_resume, "resume VM", "Resume (refused with pass-through)", NULL },
        { "console", 1, 1, CLUSTER, OPT_JSON, verb_console, "console VM", "Which host has the VM's console",
          "Refused for a running VM with GPUs: its display is the GPU's." },
        { "domain-xml", 1, 1, CLUSTER, 0, verb_domain_xml, "domain-xml VM",
          "The libvirt domain XML the VM runs (or would start) with",
          "Its template (or a minimal domain) with name, UUID, vCPUs, memory and one <hostdev managed='no'>\n"
          "  per GPU and companion; for a VM that is off, its last GPUs." },
        { "set-template", 2, 2, CLUSTER, 0, verb_set_template, "set-template VM FILE",
          "Set the VM's libvirt domain XML template (FILE - : stdin)",
          "Disks, network, firmware: everything but name, UUID, vCPUs, memory and the GPUs, which gpupass\n"
          "  sets. Refused (InvalidArgument) when not a domain, another UUID, or a GPU hostdev of its own.\n"
          "  An empty FILE removes the template." },
        { "hostdev", 1, 1, CLUSTER, OPT_JSON, verb_hostdev, "hostdev VM",
          "QEMU arguments and libvirt <hostdev> for a running VM",
          "The functions of the VM's IOMMU groups (GPUs and companions) as -device vfio-pci,host= and\n"
          "  <hostdev managed='no'> elements, and where the launcher gets the descriptors." },
        { "host-maintenance", 2, 2, CLUSTER, OPT_JSON | OPT_ON_OFF | OPT_NO_BLOCK, verb_host_maintenance, "host-maintenance HOST on|off",
          "Take a host out of (or back into) service",
          "on: powers off the host's GPU VMs (flagged restart:HOST) and sets the agent's maintenance;\n"
          "  off: clears it and powers those VMs on again on that host. Prints the VMs." },
};

static const struct verb *find_verb(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (strcmp(verbs[i].name, name) == 0)
                        return &verbs[i];
        return NULL;
}

static void help(void) {
        printf("gpupassctl [OPTIONS...] COMMAND ...\n\n"
               "Query and control gpupass: a host's GPU pass-through agent and the cluster's aggregator.\n"
               "\nHost commands (org.gpupass.agent1 on this host, or on HOST with -H):\n");
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++) {
                if (i > 0 && verbs[i].target != verbs[i - 1].target)
                        printf("\nCluster commands (org.gpupass.cluster1, on the system bus or at --cluster):\n");
                if (strlen(verbs[i].usage) > 32) /* the summary on a line of its own, aligned */
                        printf("  %s\n  %-32s %s\n", verbs[i].usage, "", verbs[i].summary);
                else
                        printf("  %-32s %s\n", verbs[i].usage, verbs[i].summary);
        }
        printf("\nOptions:\n"
               "  -h --help               Show this help; COMMAND --help shows the command's\n"
               "     --version            Show the version\n"
               "  -H --host=[USER@]HOST   Host commands: the agent of a remote host (over ssh)\n"
               "     --cluster=ADDRESS    Cluster commands: the aggregator at ssh:[USER@]HOST, machine:NAME\n"
               "                          or a D-Bus address (default: $GPUPASS_CLUSTER_ADDRESS, else the\n"
               "                          system bus)\n"
               "     --no-legend          Do not print the table header and footer\n"
               "     --json=pretty|short|off  JSON output (--json alone: pretty)\n"
               "  -j                      pretty JSON on a terminal, short otherwise\n"
               "     --vcpus=N            create-vm, set-resources: vCPUs\n"
               "     --memory=SIZE        create-vm, set-resources: memory (MiB, or M/G/T suffixes)\n"
               "     --no-block           power-on, power-off, host-maintenance: do not wait for the end\n"
               "\nExit status: 0 success; 1 the daemon refused or the call failed (the message ends with the\n"
               "D-Bus error name in parentheses); 2 bad usage (the message names what was wrong).\n");
}

static void help_verb(const struct verb *v) {
        printf("gpupassctl [OPTIONS...] %s\n\n%s.\n", v->usage, v->summary);
        if (v->details)
                printf("  %s\n", v->details);
        printf("\nTalks to %s.\n", v->target == AGENT ? "the host's agent (org.gpupass.agent1); -H HOST for another host's"
                                                      : "the aggregator (org.gpupass.cluster1); --cluster=ADDRESS for another");
        if (v->options & (OPT_JSON | OPT_LEGEND))
                printf("Options:%s%s\n", v->options & OPT_LEGEND ? " --no-legend" : "",
                       v->options & OPT_JSON ? " --json=pretty|short|off -j" : "");
        if (v->options & OPT_RESOURCES)
                printf("Options: --vcpus=N --memory=SIZE\n");
        if (v->options & OPT_NO_BLOCK)
                printf("Options: --no-block (send the call, do not wait: the Vm object's Power tells the end)\n");
        printf("Exit status: 0 success, 1 refused or failed (D-Bus error name in the message), 2 bad usage.\n");
}

static int connect_agent(sd_bus **ret) {
        int r = arg_host ? sd_bus_open_system_remote(ret, arg_host) : sd_bus_open_system(ret);

        if (r < 0)
                fprintf(stderr, "Failed to connect to the %s system bus: %s\n", arg_host ?: "local", strerror(-r));
        return r;
}

/* ADDRESS as clusterd.conf's Address=: ssh:HOST, machine:NAME, or any D-Bus address. */
static int connect_cluster(sd_bus **ret) {
        const char *address = arg_cluster ?: getenv("GPUPASS_CLUSTER_ADDRESS");
        _cleanup_(bus_unrefp) sd_bus *bus = NULL;
        int r;

        if (!address || !*address)
                r = sd_bus_open_system(&bus);
        else if (strncmp(address, "ssh:", 4) == 0)
                r = sd_bus_open_system_remote(&bus, address + 4);
        else if (strncmp(address, "machine:", 8) == 0)
                r = sd_bus_open_system_machine(&bus, address + 8);
        else {
                r = sd_bus_new(&bus);
                if (r >= 0)
                        r = sd_bus_set_address(bus, address);
                if (r >= 0)
                        r = sd_bus_set_bus_client(bus, true);
                if (r >= 0)
                        r = sd_bus_start(bus);
        }
        if (r < 0) {
                fprintf(stderr, "Failed to connect to the aggregator's bus %s: %s\n",
                        address && *address ? address : "(system bus)", strerror(-r));
                return r;
        }
        *ret = TAKE_PTR(bus);
        return 0;
}

static int parse_json(const char *s) {
        if (!s || strcmp(s, "pretty") == 0)
                arg_json = JSON_PRETTY;
        else if (strcmp(s, "short") == 0)
                arg_json = JSON_SHORT;
        else if (strcmp(s, "off") == 0)
                arg_json = JSON_OFF;
        else
                return ctl_usage_error("--json takes pretty, short or off, not '%s'", s);
        return 0;
}

int main(int argc, char *argv[]) {
        enum { ARG_VERSION = 0x100, ARG_NO_LEGEND, ARG_JSON, ARG_CLUSTER, ARG_VCPUS, ARG_MEMORY, ARG_NO_BLOCK };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "host", required_argument, NULL, 'H' },
                { "cluster", required_argument, NULL, ARG_CLUSTER },
                { "no-legend", no_argument, NULL, ARG_NO_LEGEND },
                { "json", optional_argument, NULL, ARG_JSON },
                { "vcpus", required_argument, NULL, ARG_VCPUS },
                { "memory", required_argument, NULL, ARG_MEMORY },
                { "no-block", no_argument, NULL, ARG_NO_BLOCK },
                {}
        };
        _cleanup_(bus_unrefp) sd_bus *bus = NULL;
        const struct verb *verb;
        bool arg_help = false, resources_given = false;
        const char *name;
        int c, n_args, r;

        /* Options may come before or after the command (getopt permutes): "create-vm x --vcpus=2". */
        while ((c = getopt_long(argc, argv, "hH:j", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        arg_help = true;
                        break;
                case ARG_VERSION:
                        printf("gpupassctl %s\n", GPUPASS_VERSION);
                        return 0;
                case 'H':
                        arg_host = optarg;
                        break;
                case ARG_CLUSTER:
                        arg_cluster = optarg;
                        break;
                case ARG_NO_LEGEND:
                        arg_legend = false;
                        break;
                case ARG_NO_BLOCK:
                        arg_no_block = true;
                        break;
                case ARG_JSON:
                        if (parse_json(optarg) < 0)
                                return EXIT_USAGE;
                        break;
                case 'j':
                        arg_json = isatty(STDOUT_FILENO) ? JSON_PRETTY : JSON_SHORT;
                        break;
                case ARG_VCPUS:
                        if (parse_vcpus(optarg, &arg_vcpus) < 0) {
                                ctl_usage_error("--vcpus takes a positive number, not '%s'", optarg);
                                return EXIT_USAGE;
                        }
                        resources_given = true;
                        break;
                case ARG_MEMORY:
                        if (parse_size_mib(optarg, &arg_memory_mib) < 0) {
                                ctl_usage_error("--memory takes a size in MiB or with a M/MiB, G/GiB or T/TiB suffix, "
                                                "not '%s'", optarg);
                                return EXIT_USAGE;
                        }
                        resources_given = true;
                        break;
                default: /* getopt named the option */
                        fprintf(stderr, "See gpupassctl --help\n");
                        return EXIT_USAGE;
                }
        }
        name = optind < argc ? argv[optind] : NULL;
        if (arg_help && !name) {
                help();
                return 0;
        }
        if (!name)
                name = "list";
        verb = find_verb(name);
        if (!verb) {
                fprintf(stderr, "Unknown command '%s'; see gpupassctl --help\n", name);
                return EXIT_USAGE;
        }
        if (arg_help) {
                help_verb(verb);
                return 0;
        }
        n_args = optind < argc ? argc - optind - 1 : 0;
        if (n_args < verb->min_args || (verb->max_args >= 0 && n_args > verb->max_args)) {
                fprintf(stderr, "%s takes %s arguments; usage: gpupassctl %s\n", verb->name,
                        n_args < verb->min_args ? "more" : "fewer", verb->usage);
                return EXIT_USAGE;
        }
        if ((verb->options & OPT_ON_OFF) && strcmp(argv[argc - 1], "on") != 0 && strcmp(argv[argc - 1], "off") != 0) {
                fprintf(stderr, "%s takes 'on' or 'off'%s, not '%s'\n", verb->name,
                        verb->min_args > 1 ? " after the host" : "", argv[argc - 1]);
                return EXIT_USAGE;
        }
        if (resources_given && !(verb->options & OPT_RESOURCES)) {
                fprintf(stderr, "--vcpus and --memory apply to create-vm and set-resources, not %s\n", verb->name);
                return EXIT_USAGE;
        }
        if (arg_no_block && !(verb->options & OPT_NO_BLOCK)) {
                fprintf(stderr, "--no-block applies to power-on, power-off and host-maintenance, not %s\n",
                        verb->name);
                return EXIT_USAGE;
        }
        if (verb->target == CLUSTER && arg_host) {
                fprintf(stderr, "-H chooses a host's agent; %s talks to the aggregator: use --cluster=ssh:%s\n",
                        verb->name, arg_host);
                return EXIT_USAGE;
        }
        if (verb->target == AGENT && arg_cluster) {
                fprintf(stderr, "--cluster chooses the aggregator; %s talks to a host's agent: use -H HOST\n",
                        verb->name);
                return EXIT_USAGE;
        }

        r = verb->target == AGENT ? connect_agent(&bus) : connect_cluster(&bus);
        if (r < 0)
                return EXIT_CALL_FAILED;
        r = verb->run(bus, argv + optind + 1);
        if (r == -EXIT_USAGE)
                return EXIT_USAGE;
        if (r == -EXIT_CALL_FAILED)
                return EXIT_CALL_FAILED;
        if (r < 0) {
                fprintf(stderr, "Failed to parse the reply: %s\n", strerror(-r));
                return EXIT_CALL_FAILED;
        }
        return 0;
}
