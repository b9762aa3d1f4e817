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
        JsonWriter j;
        int r;

        r = ctl_call_cluster(bus, "ListHosts", "list hosts", &reply, NULL);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "(ssssutu)");
        if (r < 0)
                return r;
        if (arg_json != JSON_OFF) {
                ctl_json_begin(&j);
                json_begin_array(&j);
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
                json_begin_object(&j);
                json_kv_string(&j, "Name", name);
                json_kv_string(&j, "Address", address);
                json_kv_string(&j, "State", state);
                json_kv_string(&j, "Why", why);
                json_kv_uint(&j, "CpuCount", cpus);
                json_kv_uint(&j, "MemoryMiB", memory);
                json_kv_uint(&j, "GpuCount", gpus);
                json_end_object(&j);
        }
        if (r < 0)
                return r;
        if (arg_json != JSON_OFF) {
                json_end_array(&j);
                json_finish(&j);
                return 0;
        }
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
        JsonWriter j;
        int r;

        r = ctl_call_cluster(bus, "ListGpus", "list the cluster's GPUs", &reply, NULL);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "(sssssssbas)");
        if (r < 0)
                return r;
        if (arg_json != JSON_OFF) {
                ctl_json_begin(&j);
                json_begin_array(&j);
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
                json_begin_object(&j);
                json_kv_string(&j, "Host", g.host);
                json_kv_string(&j, "Address", g.address);
                json_kv_string(&j, "Model", g.model);
                json_kv_string(&j, "Mode", g.mode);
                json_kv_string(&j, "State", g.state);
                json_kv_string(&j, "Owner", g.owner);
                json_kv_string(&j, "PreviousModel", g.previous);
                json_kv_bool(&j, "NeedsReconfiguration", g.needs);
                json_key(&j, "Companions");
                json_strv(&j, companions);
                json_end_object(&j);
        }
        if (r < 0)
                return r;
        if (arg_json != JSON_OFF) {
                json_end_array(&j);
                json_finish(&j);
                return 0;
        }
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

static void json_vm(JsonWriter *j, const struct vm_row *v) {
        json_begin_object(j);
        json_kv_string(j, "Name", v->name);
        json_kv_string(j, "Uuid", v->uuid);
        json_kv_string(j, "Power", v->power);
        json_kv_string(j, "Host", v->host);
        json_kv_uint(j, "Vcpus", v->vcpus);
        json_kv_uint(j, "MemoryMiB", v->memory_mib);
        json_kv_string(j, "GpuRequests", v->gpus);
        json_key(j, "Affinity");
        json_split(j, v->affinity, ',');
        json_key(j, "Flags");
        json_split(j, v->flags, ';');
        if (v->runtime)
                json_kv_string(j, "RuntimeState", v->runtime);
        json_end_object(j);
}

static const TableColumn vm_columns[] = {
        { "VM", 16, false },    { "POWER", 5, false }, { "RUNTIME", 8, false }, { "HOST", 10, false }, { "VCPUS", 5, true },
        { "MEMORY", 9, true }, { "GPUS", 40, false },  { "FLAGS", 0, false },
};

int verb_cluster_vms(sd_bus *bus, char **args) {
        _cleanup_(message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(table_freep) Table *t = NULL;
        _cleanup_strv_free_ char **runtime = NULL;
        struct vm_row v;
        JsonWriter j;
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
                ctl_json_begin(&j);
                json_begin_array(&j);
        } else if (!(t = table_new(vm_columns, ELEMENTSOF(vm_columns))))
                return -ENOMEM;
        while ((r = read_vm(reply, &v)) > 0) {
                char c[16], m[32];

                v.runtime = ctl_runtime_state_of(runtime, v.uuid);
                if (arg_json != JSON_OFF) {
                        json_vm(&j, &v);
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
        if (arg_json != JSON_OFF) {
                json_end_array(&j);
                json_finish(&j);
                return 0;
        }
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
        JsonWriter j;
        int r;

        _cleanup_strv_free_ char **runtime = NULL;

        r = ctl_find_vm(bus, args[0], &reply, &v);
        if (r >= 0)
                r = ctl_runtime_states(bus, &runtime);
        if (r < 0)
                return r;
        v.runtime = ctl_runtime_state_of(runtime, v.uuid);
        if (arg_json != JSON_OFF) {
                ctl_json_begin(&j);
                json_vm(&j, &v);
                json_finish(&j);
                return 0;
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
        struct vm_row v;
        JsonWriter j;
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
                ctl_json_begin(&j);
                json_begin_object(&j);
                json_kv_string(&j, "Vm", v.name);
                json_kv_string(&j, "Uuid", v.uuid);
                json_kv_string(&j, "Host", v.host);
                json_key(&j, "Functions");
                json_strv(&j, functions);
                json_key(&j, "QemuArguments");
                json_begin_array(&j);
        } else
                printf("# VM %s (%s) runs on %s. The launcher there takes the descriptors from the agent's\n"
                       "# OpenVfio(\"%s\") (or AllowUser for a VMM that opens /dev/vfio itself).\n# QEMU:\n",
                       v.name, v.uuid, v.host, v.uuid);
        for (char **f = functions; f && *f; f++) {
                char arg[64];

                snprintf(arg, sizeof(arg), "vfio-pci,host=%s", *f);
                if (arg_json != JSON_OFF) {
                        json_string(&j, "-device");
                        json_string(&j, arg);
                } else
                        printf("-device %s\n", arg);
        }
        if (arg_json != JSON_OFF) {
                json_end_array(&j);
                json_key(&j, "LibvirtHostdevs");
                json_begin_array(&j);
        } else
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
                if (arg_json != JSON_OFF)
                        json_string(&j, xml);
                else
                        fputs(xml, stdout);
        }
        if (arg_json != JSON_OFF) {
                json_end_array(&j);
                json_end_object(&j);
                json_finish(&j);
        }
        return 0;
}
