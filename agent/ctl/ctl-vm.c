/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gpupassctl's registry, power and maintenance verbs: each is one aggregator call. Refusals (a running
 * VM with GPUs cannot migrate, a VM that is not off cannot change its GPUs, ...) are the aggregator's
 * decision; gpupassctl prints its message and error name and exits 1.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ctl-cluster.h"
#include "gpupass/bus-names.h"
#include "macro.h"
#include "strv.h"

/* With --json, prints {"K1": v1, "K2": v2} (the answer of create-vm and console): 1 when printed, 0 without
 * --json, or a negative errno. */
static int print_json_pair(const char *k1, const char *v1, const char *k2, const char *v2) {
        _cleanup_(json_object_putp) json_object *json = NULL;
        int r;

        if (arg_json == JSON_OFF)
                return 0;
        json = json_object_new_object();
        if (!json || json_add_string(json, k1, v1) < 0 || json_add_string(json, k2, v2) < 0)
                return -ENOMEM;
        r = ctl_json_print(json);
        return r < 0 ? r : 1;
}

int verb_create_vm(sd_bus *bus, char **args) {
        _cleanup_(message_unrefp) sd_bus_message *reply = NULL;
        const char *uuid;
        int r;

        if (arg_vcpus == 0 || arg_memory_mib == 0)
                return ctl_usage_error("create-vm needs --vcpus=N and --memory=SIZE");
        r = ctl_call_cluster(bus, "CreateVm", "create VM", &reply, "sut", args[0], arg_vcpus, arg_memory_mib);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "s", &uuid);
        if (r < 0)
                return r;
        r = print_json_pair("Name", args[0], "Uuid", uuid);
        if (r == 0)
                printf("%s\n", uuid);
        return r < 0 ? r : 0;
}

int verb_delete_vm(sd_bus *bus, char **args) {
        return ctl_call_cluster(bus, "DeleteVm", "delete VM", NULL, "s", args[0]);
}

int verb_set_gpus(sd_bus *bus, char **args) {
        /* "" (an empty argument) clears the requests: a VM without GPUs. */
        return ctl_call_cluster(bus, "SetVmGpus", "set the VM's GPUs", NULL, "ss", args[0], args[1]);
}

int verb_set_resources(sd_bus *bus, char **args) {
        _cleanup_(message_unrefp) sd_bus_message *reply = NULL;
        uint32_t vcpus = arg_vcpus;
        uint64_t memory = arg_memory_mib;
        int r;

        if (vcpus == 0 && memory == 0)
                return ctl_usage_error("set-resources needs --vcpus=N, --memory=SIZE or both");
        if (vcpus == 0 || memory == 0) {
                /* SetVmResources takes both; the one not given stays as the registry has it. */
                struct vm_row v;

                r = ctl_find_vm(bus, args[0], &reply, &v);
                if (r < 0)
                        return r;
                if (vcpus == 0)
                        vcpus = v.vcpus;
                if (memory == 0)
                        memory = v.memory_mib;
        }
        return ctl_call_cluster(bus, "SetVmResources", "set the VM's resources", NULL, "sut", args[0], vcpus,
                                memory);
}

int verb_set_affinity(sd_bus *bus, char **args) {
        _cleanup_(message_unrefp) sd_bus_message *m = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        /* No host after the VM: any host again. */
        r = sd_bus_message_new_method_call(bus, &m, GPUPASS_CLUSTER_BUS_NAME, GPUPASS_CLUSTER_MANAGER_PATH,
                                           GPUPASS_CLUSTER_MANAGER_IFACE, "SetVmAffinity");
        if (r >= 0)
                r = sd_bus_message_append(m, "s", args[0]);
        if (r >= 0)
                r = sd_bus_message_append_strv(m, args + 1);
        if (r < 0)
                return r;
        r = sd_bus_call(bus, m, 0, &error, NULL);
        if (r < 0) {
                r = ctl_report_error("set the VM's affinity", &error, r);
                sd_bus_error_free(&error);
        }
        return r;
}

int verb_power_on(sd_bus *bus, char **args) {
        _cleanup_(message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_strv_free_ char **gpus = NULL;
        const char *host;
        int r;

        r = ctl_call_cluster_long(bus, "PowerOn", "power on", &reply, "s", args[0]);
        if (r != 0)
                return r < 0 ? r : 0;
        r = sd_bus_message_read(reply, "s", &host);
        if (r >= 0)
                r = sd_bus_message_read_strv(reply, &gpus);
        if (r < 0)
                return r;
        if (arg_json != JSON_OFF) {
                _cleanup_(json_object_putp) json_object *json = json_object_new_object();

                if (!json || json_add_string(json, "Vm", args[0]) < 0 || json_add_string(json, "Host", host) < 0 ||
                    json_add_strv(json, "Gpus", gpus) < 0)
                        return -ENOMEM;
                return ctl_json_print(json);
        }
        printf("%s is on, on host %s", args[0], host);
        for (char **g = gpus; g && *g; g++)
                printf("%s%s", g == gpus ? " with GPUs " : ", ", *g);
        printf("\n");
        return 0;
}

int verb_power_off(sd_bus *bus, char **args) {
        int r = ctl_call_cluster_long(bus, "PowerOff", "power off", NULL, "s", args[0]);

        return r < 0 ? r : 0;
}

int verb_migrate(sd_bus *bus, char **args) {
        return ctl_call_cluster(bus, "Migrate", "migrate", NULL, "s", args[0]);
}

int verb_pause(sd_bus *bus, char **args) {
        return ctl_call_cluster(bus, "Pause", "pause", NULL, "s", args[0]);
}

int verb_resume(sd_bus *bus, char **args) {
        return ctl_call_cluster(bus, "Resume", "resume", NULL, "s", args[0]);
}

int verb_console(sd_bus *bus, char **args) {
        _cleanup_(message_unrefp) sd_bus_message *reply = NULL;
        const char *host;
        int r;

        r = ctl_call_cluster_string(bus, "GetConsole", "get the console", args[0], &reply, &host);
        if (r < 0)
                return r;
        r = print_json_pair("Vm", args[0], "Host", host);
        if (r == 0)
                printf("The console of %s is on host %s\n", args[0], host);
        return r < 0 ? r : 0;
}

int verb_host_maintenance(sd_bus *bus, char **args) {
        _cleanup_(message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_strv_free_ char **vms = NULL;
        bool enter;
        int r;

        if (strcmp(args[1], "on") == 0)
                enter = true;
        else if (strcmp(args[1], "off") == 0)
                enter = false;
        else
                return ctl_usage_error("host-maintenance takes 'on' or 'off' after the host, not '%s'", args[1]);
        r = ctl_call_cluster_long(bus, enter ? "EnterHostMaintenance" : "ExitHostMaintenance",
                                  enter ? "enter maintenance" : "exit maintenance", &reply, "s", args[0]);
        if (r != 0)
                return r < 0 ? r : 0;
        r = sd_bus_message_read_strv(reply, &vms);
        if (r < 0)
                return r;
        if (arg_json != JSON_OFF) {
                _cleanup_(json_object_putp) json_object *json = json_object_new_object();

                if (!json || json_add_string(json, "Host", args[0]) < 0 || json_add_bool(json, "Maintenance", enter) < 0 ||
                    json_add_strv(json, enter ? "PoweredOff" : "PoweredOn", vms) < 0)
                        return -ENOMEM;
                return ctl_json_print(json);
        }
        printf("%s %s maintenance", args[0], enter ? "is in" : "is out of");
        for (char **v = vms; v && *v; v++)
                printf("%s%s", v == vms ? (enter ? "; powered off: " : "; powered on again: ") : ", ", *v);
        printf("\n");
        return 0;
}
