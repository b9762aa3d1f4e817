/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-bus.h>

#include "ctl-json.h"

/* Exit codes, documented in README and --help: */
#define EXIT_CALL_FAILED 1 /* the daemon refused or the call failed */
#define EXIT_USAGE 2       /* bad command line */

typedef enum JsonMode {
        JSON_OFF,
        JSON_SHORT,
        JSON_PRETTY,
} JsonMode;

/* Options that verbs read (set by main). */
extern const char *arg_host; /* -H: the agent's host, NULL for this one */
extern bool arg_legend;
extern JsonMode arg_json;
extern uint32_t arg_vcpus;     /* 0: not given */
extern uint64_t arg_memory_mib; /* 0: not given */
extern bool arg_no_block;       /* power-on, power-off, host-maintenance: ask, do not wait for the answer */

static inline void message_unrefp(sd_bus_message **m) {
        sd_bus_message_unref(*m);
}

/* Prints "Failed to WHAT: message (error name)" and returns -EXIT_CALL_FAILED. Frees nothing. */
int ctl_report_error(const char *what, const sd_bus_error *error, int r);
/* Prints the usage error and returns -EXIT_USAGE. */
int ctl_usage_error(const char *format, ...) __attribute__((format(printf, 1, 2)));
/* Prints a --json document on stdout as --json asks (pretty or short), with a newline. Consumes nothing. */
int ctl_json_print(json_object *document);

/* Parsers for the command line (ctl-parse.c): 0 or -EINVAL. */
int parse_size_mib(const char *s, uint64_t *ret_mib);
int parse_vcpus(const char *s, uint32_t *ret_vcpus);

/* Verbs: args is NULL-terminated, checked against the verb's argument count by main. */
typedef int (*verb_fn)(sd_bus *bus, char **args);

/* Agent verbs (ctl-agent.c), on org.gpupass.agent1. */
int verb_list(sd_bus *bus, char **args);
int verb_status(sd_bus *bus, char **args);
int verb_show(sd_bus *bus, char **args);
int verb_prepare(sd_bus *bus, char **args);
int verb_return(sd_bus *bus, char **args);
int verb_claim(sd_bus *bus, char **args);
int verb_release(sd_bus *bus, char **args);
int verb_allow_user(sd_bus *bus, char **args);
int verb_rescan(sd_bus *bus, char **args);
int verb_maintenance(sd_bus *bus, char **args);

/* Cluster views (ctl-cluster.c), on org.gpupass.cluster1. */
int verb_cluster_hosts(sd_bus *bus, char **args);
int verb_cluster_gpus(sd_bus *bus, char **args);
int verb_cluster_vms(sd_bus *bus, char **args);
int verb_show_vm(sd_bus *bus, char **args);
/* The QEMU arguments and libvirt <hostdev> elements for a running VM's GPUs. */
int verb_hostdev(sd_bus *bus, char **args);

/* Registry, power and maintenance (ctl-vm.c), on org.gpupass.cluster1. */
int verb_create_vm(sd_bus *bus, char **args);
int verb_delete_vm(sd_bus *bus, char **args);
int verb_set_gpus(sd_bus *bus, char **args);
int verb_set_resources(sd_bus *bus, char **args);
int verb_set_affinity(sd_bus *bus, char **args);
int verb_power_on(sd_bus *bus, char **args);
int verb_power_off(sd_bus *bus, char **args);
int verb_migrate(sd_bus *bus, char **args);
int verb_pause(sd_bus *bus, char **args);
int verb_resume(sd_bus *bus, char **args);
int verb_console(sd_bus *bus, char **args);
int verb_host_maintenance(sd_bus *bus, char **args);

/* The VM runtime (ctl-runtime.c). */
int verb_domain_xml(sd_bus *bus, char **args);
int verb_set_template(sd_bus *bus, char **args);
/* Every VM's RuntimeState from the aggregator's objects: UUID, state, UUID, state, ... */
int ctl_runtime_states(sd_bus *bus, char ***ret);
const char *ctl_runtime_state_of(char **pairs, const char *uuid);

/* A VM's row of ListVms (ctl-cluster.c); the strings point into the message (runtime: into the pairs of
 * ctl_runtime_states(), NULL when unknown). */
struct vm_row {
        const char *uuid, *name, *gpus, *affinity, *power, *host, *flags, *runtime;
        uint32_t vcpus;
        uint64_t memory_mib;
};
/* Finds VM (name or UUID) in ListVms; *ret_reply owns the row's strings. When there is no such VM it prints
 * the message with org.gpupass.Error.NotFound, as the aggregator would, and returns -EXIT_CALL_FAILED. */
int ctl_find_vm(sd_bus *bus, const char *vm, sd_bus_message **ret_reply, struct vm_row *ret_row);
