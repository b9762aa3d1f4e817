/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gpupassctl's cluster views: hosts, GPUs and VMs as gpupass-clusterd (org.gpupass.cluster1) sees them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ctl-cluster.h"
#include "ctl-table.h"
#include "gpupass/bus-names.h"
#include "macro.h"
#include "pci-address.h"
#include "strv.h"

/* One ListGpus entry; companions (if wanted) is the caller's to free. */
struct cluster_gpu {
        const char *host, *address, *model, *mode, *state, *owner, *previous;
        int needs;
};

static int read_gpu(sd_bus_message *m, struct cluster_gpu *g, char ***companions) {
        int r;

        r = sd_bus_message_enter_container(m, 'r', "sssssssbas");
        if (r <= 0)
                return r;
        r = sd_bus_message_read(m, "sssssssb", &g->host, &g->address, &g->model, &g->mode, &g->state, &g->owner,
                                &g->previous, &g->needs);
        if (r >= 0)
                r = companions ? sd_bus_message_read_strv(m, companions) : sd_bus_message_skip(m, "as");
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        return r < 0 ? r : 1;
}

static int on_early_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        *(sd_bus_message **) userdata = sd_bus_message_ref(reply);
        return 0;
}

/* --no-block: the call is sent, then a Ping. The aggregator handles its messages in order, so once the Ping
 * is answered the call has been taken (caller checked, VM found, the job started); a refusal made at once
 * has been answered before the Ping and is reported. What the call does later, the Vm object's Power and
 * RuntimeState show (as systemctl --no-block leaves a job to run). */
static int send_no_block(sd_bus *bus, sd_bus_message *m, const char *what, sd_bus_message **ret) {
        _cleanup_(message_unrefp) sd_bus_message *early = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_slot *slot = NULL;
        int r;

        r = sd_bus_call_async(bus, &slot, m, on_early_reply, &early, CTL_LONG_CALL_TIMEOUT_USEC);
        if (r >= 0)
                r = sd_bus_call_method(bus, GPUPASS_CLUSTER_BUS_NAME, GPUPASS_CLUSTER_MANAGER_PATH,
                                       "org.freedesktop.DBus.Peer", "Ping", &error, NULL, NULL);
        while (r >= 0 && !early && (r = sd_bus_process(bus, NULL)) > 0)
                ;
        sd_bus_slot_unref(slot);
        if (r >= 0 && early && sd_bus_message_is_method_error(early, NULL))
                r = sd_bus_error_copy(&error, sd_bus_message_get_error(early));
        if (r < 0) {
                r = ctl_report_error(what, &error, r);
                sd_bus_error_free(&error);
                return r;
        }
        if (early && ret) {
                *ret = TAKE_PTR(early);
                return 0;
        }
        return early ? 0 : 1;
}

static int call_cluster(sd_bus *bus, const char *method, const char *what, sd_bus_message **ret, uint64_t timeout_usec,
                        const char *types, va_list ap) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, GPUPASS_CLUSTER_BUS_NAME, GPUPASS_CLUSTER_MANAGER_PATH,
                                           GPUPASS_CLUSTER_MANAGER_IFACE, method);
        if (r < 0)
                return r;
        if (types) {
                r = sd_bus_message_appendv(m, types, ap);
                if (r < 0)
                        return r;
        }
        if (timeout_usec > 0 && arg_no_block)
                return send_no_block(bus, m, what, ret);
        r = sd_bus_call(bus, m, timeout_usec, &error, ret);
        if (r < 0) {
                r = ctl_report_error(what, &error, r);
                sd_bus_error_free(&error);
                return r;
        }
        return 0;
}

int ctl_call_cluster(sd_bus *bus, const char *method, const char *what, sd_bus_message **ret, const char *types,
                     ...) {
        va_list ap;
        int r;

        va_start(ap, types);
        r = call_cluster(bus, method, what, ret, 0, types, ap);
        va_end(ap);
        return r;
}

int ctl_call_cluster_string(sd_bus *bus, const char *method, const char *what, const char *arg,
                            sd_bus_message **ret_reply, const char **ret_value) {
        _cleanup_(message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = ctl_call_cluster(bus, method, what, &reply, "s", arg);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "s", ret_value);
        if (r < 0)
                return r;
        *ret_reply = TAKE_PTR(reply);
        return 0;
}

int ctl_call_cluster_long(sd_bus *bus, const char *method, const char *what, sd_bus_message **ret, const char *types,
                          ...) {
        va_list ap;
        int r;

        va_start(ap, types);
        r = call_cluster(bus, method, what, ret, CTL_LONG_CALL_TIMEOUT_USEC, types, ap);
        va_end(ap);
        return r;
}

static const TableColumn host_columns[] = {
        { "HOST", 16, false }, { "STATE", 12, false }, { "CPUS", 5, true },
        { "MEMORY", 10, true }, { "GPUS", 5, true },    { "ADDRESS / WHY", 0, false },
};

int verb_cluster_hosts(sd_bus *bus, char **args) {
        _cleanup_(message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(table_freep) Table *t = NULL;
        const char *name, *address, *state, *why;
        uint32_t cpus, gpus;
        uint64_t memory;
        _cleanup_(json_object_putp) json_object *json = NULL;
        int r;

        r = ctl_call_cluster(bus, "ListHosts", "list hosts", &reply, NULL);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "(ssssutu)");
        if (r < 0)
                return r;
        if (arg_json != JSON_OFF) {
                if (!(json = json_object_new_array()))
                        return -ENOMEM;
        } else if (!(t = table_new(host_columns, ELEMENTSOF(host_columns))))
                return -ENOMEM;
        while ((r = sd_bus_message_read(reply, "(ssssutu)", &name, &address, &state, &why, &cpus, &memory, &gpus)) > 0) {
                if (arg_json == JSON_OFF) {
                        _cleanup_free_ char *where = NULL;
                        char c[16], m[32], g[16];

                        snprintf(c, sizeof(c), "%u", cpus);
                        snprintf(m, sizeof(m), "%llu MiB", (unsigned long long) memory);
                        snprintf(g, sizeof(g), "%u", gpus);
                        if (asprintf(&where, "%s%s%s", address, *why ? ": " : "", why) < 0)
                                return -ENOMEM;
                        r = table_add_row(t, (const char * const[]) { name, state, c, m, g, where });
                        if (r < 0)
                                return r;
                        continue;
                }
                json_object *host = json_object_new_object();

                r = json_append(json, host);
                if (r < 0 || json_add_string(host, "Name", name) < 0 || json_add_string(host, "Address", address) < 0 ||
                    json_add_string(host, "State", state) < 0 || json_add_string(host, "Why", why) < 0 ||
                    json_add_uint(host, "CpuCount", cpus) < 0 || json_add_uint(host, "MemoryMiB", memory) < 0 ||
                    json_add_uint(host, "GpuCount", gpus) < 0)
                        return -ENOMEM;
        }
        if (r < 0)
                return r;
        if (json)
                return ctl_json_print(json);
        table_print(t, stdout, arg_legend);
        if (arg_legend)
                printf("\n%zu hosts listed.\n", table_rows(t));
        return 0;
}

static const TableColumn cluster_gpu_columns[] = {
        { "HOST", 12, false }, { "ADDRESS", 13, false }, { "MODEL", 28, false },
        { "MODE", 9, false },  { "STATE", 12, false },   { "OWNER", 0, false },
};

int verb_cluster_gpus(sd_bus *bus, char **args) {
        _cleanup_(message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(table_freep) Table *t = NULL;
        _cleanup_(json_object_putp) json_object *json = NULL;
        int r;

        r = ctl_call_cluster(bus, "ListGpus", "list the cluster's GPUs", &reply, NULL);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "(sssssssbas)");
        if (r < 0)
                return r;
        if (arg_json != JSON_OFF) {
                if (!(json = json_object_new_array()))
                        return -ENOMEM;
        } else if (!(t = table_new(cluster_gpu_columns, ELEMENTSOF(cluster_gpu_columns))))
                return -ENOMEM;
        for (;;) {
                _cleanup_strv_free_ char **companions = NULL;
                struct cluster_gpu g;

                r = read_gpu(reply, &g, &companions);
                if (r <= 0)
                        break;
                if (arg_json == JSON_OFF) {
                        _cleanup_free_ char *owner = NULL;

                        if (asprintf(&owner, "%s%s%s%s%s", *g.owner ? g.owner : "-", *g.previous ? " (was " : "",
                                     g.previous, *g.previous && g.needs ? ", needs reconfiguration" : "",
                                     *g.previous ? ")" : "") < 0)
                                return -ENOMEM;
                        r = table_add_row(t, (const char * const[]) { g.host, g.address, g.model, g.mode, g.state,
                                                                       owner });
                        if (r < 0)
                                return r;
                        continue;
                }
                json_object *gpu = json_object_new_object();

                r = json_append(json, gpu);
                if (r < 0 || json_add_string(gpu, "Host", g.host) < 0 || json_add_string(gpu, "Address", g.address) < 0 ||
                    json_add_string(gpu, "Model", g.model) < 0 || json_add_string(gpu, "Mode", g.mode) < 0 ||
                    json_add_string(gpu, "State", g.state) < 0 || json_add_string(gpu, "Owner", g.owner) < 0 ||
                    json_add_string(gpu, "PreviousModel", g.previous) < 0 ||
                    json_add_bool(gpu, "NeedsReconfiguration", g.needs) < 0 ||
                    json_add_strv(gpu, "Companions", companions) < 0)
                        return -ENOMEM;
        }
        if (r < 0)
                return r;
        if (json)
                return ctl_json_print(json);
        table_print(t, stdout, arg_legend);
        if (arg_legend)
                printf("\n%zu GPUs listed.\n", table_rows(t));
        return 0;
}

static int read_vm(sd_bus_message *m, struct vm_row *v) {
        v->runtime = NULL;
        return sd_bus_message_read(m, "(ssutsssss)", &v->uuid, &v->name, &v->vcpus, &v->memory_mib, &v->gpus,
                                   &v->affinity, &v->power, &v->host, &v->flags);
}

static json_object *vm_json(const struct vm_row *v) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();

        if (!o || json_add_string(o, "Name", v->name) < 0 || json_add_string(o, "Uuid", v->uuid) < 0 ||
            json_add_string(o, "Power", v->power) < 0 || json_add_string(o, "Host", v->host) < 0 ||
            json_add_uint(o, "Vcpus", v->vcpus) < 0 || json_add_uint(o, "MemoryMiB", v->memory_mib) < 0 ||
            json_add_string(o, "GpuRequests", v->gpus) < 0 ||
            json_add(o, "Affinity", json_split_new(v->affinity, ',')) < 0 ||
            json_add(o, "Flags", json_split_new(v->flags, ';')) < 0 ||
            (v->runtime && json_add_string(o, "RuntimeState", v->runtime) < 0))
                return NULL;
        return TAKE_PTR(o);
}

static const TableColumn vm_columns[] = {
        { "VM", 16, false },    { "POWER", 5, false }, { "RUNTIME", 8, false }, { "HOST", 10, false }, { "VCPUS", 5, true },
        { "MEMORY", 9, true }, { "GPUS", 40, false },  { "FLAGS", 0, false },
};

int verb_cluster_vms(sd_bus *bus, char **args) {
        _cleanup_(message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(table_freep) Table *t = NULL;
        _cleanup_(json_object_putp) json_object *json = NULL;
        _cleanup_strv_free_ char **runtime = NULL;
        struct vm_row v;
        int r;

        r = ctl_call_cluster(bus, "ListVms", "list VMs", &reply, NULL);
        if (r >= 0)
                r = ctl_runtime_states(bus, &runtime);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "(ssutsssss)");
        if (r < 0)
                return r;
        if (arg_json != JSON_OFF) {
                if (!(json = json_object_new_array()))
                        return -ENOMEM;
        } else if (!(t = table_new(vm_columns, ELEMENTSOF(vm_columns))))
                return -ENOMEM;
        while ((r = read_vm(reply, &v)) > 0) {
                char c[16], m[32];

                v.runtime = ctl_runtime_state_of(runtime, v.uuid);
                if (json) {
                        r = json_append(json, vm_json(&v));
                        if (r < 0)
                                return r;
                        continue;
                }
                snprintf(c, sizeof(c), "%u", v.vcpus);
                snprintf(m, sizeof(m), "%llu MiB", (unsigned long long) v.memory_mib);
                r = table_add_row(t, (const char * const[]) { v.name, v.power, v.runtime ?: "-", *v.host ? v.host : "-", c, m,
                                                               *v.gpus ? v.gpus : "-", *v.flags ? v.flags : "-" });
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        if (json)
                return ctl_json_print(json);
        table_print(t, stdout, arg_legend);
        if (arg_legend)
                printf("\n%zu VMs listed.\n", table_rows(t));
        return 0;
}

int ctl_find_vm(sd_bus *bus, const char *vm, sd_bus_message **ret_reply, struct vm_row *ret_row) {
        _cleanup_(message_unrefp) sd_bus_message *reply = NULL;
        struct vm_row v;
        int r;

        r = ctl_call_cluster(bus, "ListVms", "list VMs", &reply, NULL);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "(ssutsssss)");
        while (r >= 0 && (r = read_vm(reply, &v)) > 0)
                if (strcmp(v.name, vm) == 0 || strcasecmp(v.uuid, vm) == 0) {
                        *ret_reply = TAKE_PTR(reply);
                        *ret_row = v;
                        return 0;
                }
        if (r < 0)
                return r;
        /* The same words and error name as the aggregator's own lookup. */
        fprintf(stderr, "Failed to find VM: no VM '%s' in the registry (%s)\n", vm, GPUPASS_ERROR_NOT_FOUND);
        return -EXIT_CALL_FAILED;
}

int verb_show_vm(sd_bus *bus, char **args) {
        _cleanup_(message_unrefp) sd_bus_message *reply = NULL;
        struct vm_row v;
        int r;

        _cleanup_strv_free_ char **runtime = NULL;

        r = ctl_find_vm(bus, args[0], &reply, &v);
        if (r >= 0)
                r = ctl_runtime_states(bus, &runtime);
        if (r < 0)
                return r;
        v.runtime = ctl_runtime_state_of(runtime, v.uuid);
        if (arg_json != JSON_OFF) {
                _cleanup_(json_object_putp) json_object *json = vm_json(&v);

                return json ? ctl_json_print(json) : -ENOMEM;
        }
        printf("%12s: %s\n%12s: %s\n%12s: %s\n%12s: %s\n%12s: %s\n%12s: %u\n%12s: %llu MiB\n%12s: %s\n%12s: %s\n%12s: %s\n",
               "Name", v.name, "UUID", v.uuid, "Power", v.power, "Runtime", v.runtime ?: "-", "Host",
               *v.host ? v.host : "-", "vCPUs", v.vcpus,
               "Memory", (unsigned long long) v.memory_mib, "GPUs", *v.gpus ? v.gpus : "-", "Affinity",
               *v.affinity ? v.affinity : "any host", "Flags", *v.flags ? v.flags : "-");
        return 0;
}

int verb_hostdev(sd_bus *bus, char **args) {
        _cleanup_(message_unrefp) sd_bus_message *reply = NULL, *gpu_list = NULL;
        _cleanup_strv_free_ char **functions = NULL;
        _cleanup_(json_object_putp) json_object *json = NULL, *qemu = NULL, *libvirt = NULL;
        struct vm_row v;
        int r;

        r = ctl_find_vm(bus, args[0], &reply, &v);
        if (r < 0)
                return r;
        if (strcmp(v.power, "on") != 0) {
                fprintf(stderr, "VM %s is off: its GPUs are chosen at power-on\n", v.name);
                return -EXIT_CALL_FAILED;
        }
        r = ctl_call_cluster(bus, "ListGpus", "list the cluster's GPUs", &gpu_list, NULL);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(gpu_list, 'a', "(sssssssbas)");
        while (r >= 0) {
                _cleanup_strv_free_ char **companions = NULL;
                struct cluster_gpu g;

                r = read_gpu(gpu_list, &g, &companions);
                if (r <= 0)
                        break;
                if (strcmp(g.host, v.host) != 0 || strcasecmp(g.owner, v.uuid) != 0)
                        continue;
                /* The GPU and its companions: the functions of its IOMMU group that go to the VM. */
                r = strv_extend(&functions, g.address);
                for (char **c = companions; r >= 0 && c && *c; c++)
                        r = strv_extend(&functions, *c);
        }
        if (r < 0)
                return r;
        if (arg_json != JSON_OFF) {
                qemu = json_object_new_array();
                libvirt = json_object_new_array();
                if (!qemu || !libvirt)
                        return -ENOMEM;
        } else
                printf("# VM %s (%s) runs on %s. The launcher there takes the descriptors from the agent's\n"
                       "# OpenVfio(\"%s\") (or AllowUser for a VMM that opens /dev/vfio itself).\n# QEMU:\n",
                       v.name, v.uuid, v.host, v.uuid);
        for (char **f = functions; f && *f; f++) {
                char arg[64];

                snprintf(arg, sizeof(arg), "vfio-pci,host=%s", *f);
                if (qemu) {
                        if (json_append(qemu, json_string_new("-device")) < 0 ||
                            json_append(qemu, json_string_new(arg)) < 0)
                                return -ENOMEM;
                } else
                        printf("-device %s\n", arg);
        }
        if (!qemu)
                printf("# libvirt (inside <devices>; managed='no': gpupassd binds the group, not libvirt):\n");
        for (char **f = functions; f && *f; f++) {
                struct pci_address a;
                char xml[256];

                if (pci_address_parse(*f, &a) < 0)
                        continue;
                snprintf(xml, sizeof(xml),
                         "<hostdev mode='subsystem' type='pci' managed='no'>\n"
                         "  <source><address domain='0x%04x' bus='0x%02x' slot='0x%02x' function='0x%x'/></source>\n"
                         "</hostdev>\n", a.domain, a.bus, a.device, a.function);
                if (!libvirt)
                        fputs(xml, stdout);
                else if (json_append(libvirt, json_string_new(xml)) < 0)
                        return -ENOMEM;
        }
        if (arg_json == JSON_OFF)
                return 0;
        json = json_object_new_object();
        if (!json || json_add_string(json, "Vm", v.name) < 0 || json_add_string(json, "Uuid", v.uuid) < 0 ||
            json_add_string(json, "Host", v.host) < 0 || json_add_strv(json, "Functions", functions) < 0 ||
            json_add(json, "QemuArguments", TAKE_PTR(qemu)) < 0 ||
            json_add(json, "LibvirtHostdevs", TAKE_PTR(libvirt)) < 0)
                return -ENOMEM;
        return ctl_json_print(json);
}
