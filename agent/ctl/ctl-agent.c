/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gpupassctl's agent verbs: one host's gpupassd (org.gpupass.agent1), local or over ssh with -H. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl-table.h"
#include "ctl.h"
#include "gpu-entry.h"
#include "gpupass/bus-names.h"
#include "macro.h"
#include "strv.h"

static const TableColumn gpu_columns[] = {
        { "ADDRESS", 13, false }, { "MODEL", 28, false }, { "MODE", 9, false },  { "STATE", 11, false },
        { "DRIVER", 14, false },  { "GROUP", 5, false },  { "OWNER", 36, false }, { "PROBLEM", 0, false },
};

static int add_gpu_row(Table *t, const struct gpu_entry *g) {
        char group[16];

        if (g->group >= 0)
                snprintf(group, sizeof(group), "%d", g->group);
        else
                snprintf(group, sizeof(group), "-");
        return table_add_row(t, (const char * const[]) { g->address, g->model, g->mode, g->state,
                                                          *g->driver ? g->driver : "-", group,
                                                          *g->owner ? g->owner : "-",
                                                          *g->problem ? g->problem : "-" });
}

static json_object *gpu_row_json(const struct gpu_entry *g) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();

        if (!o || json_add_string(o, "Address", g->address) < 0 || json_add_string(o, "Model", g->model) < 0 ||
            json_add_string(o, "Mode", g->mode) < 0 || json_add_string(o, "State", g->state) < 0 ||
            json_add_string(o, "Driver", g->driver) < 0 || json_add_string(o, "Owner", g->owner) < 0 ||
            json_add_string(o, "SerialNumber", g->serial) < 0 || json_add_int(o, "IommuGroup", g->group) < 0 ||
            json_add_int(o, "NumaNode", g->numa) < 0 || json_add_strv(o, "Companions", g->companions) < 0 ||
            json_add_bool(o, "BootVga", g->boot_vga) < 0 ||
            json_add_bool(o, "NeedsReconfiguration", g->needs_reconfiguration) < 0 ||
            json_add_string(o, "Problem", g->problem) < 0 || json_add_string(o, "Object", g->path) < 0)
                return NULL;
        return TAKE_PTR(o);
}

/* The GPU table, or the GPUs appended to the JSON array `json` when it is not NULL. */
static int list_gpus(sd_bus *bus, json_object *json) {
        _cleanup_(message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(table_freep) Table *t = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
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
        if (!json && !(t = table_new(gpu_columns, ELEMENTSOF(gpu_columns))))
                return -ENOMEM;
        for (;;) {
                struct gpu_entry g = {};

                r = gpu_entry_read(reply, &g);
                if (r > 0) {
                        if (json) {
                                if (json_append(json, gpu_row_json(&g)) < 0)
                                        r = -ENOMEM;
                        } else if (add_gpu_row(t, &g) < 0)
                                r = -ENOMEM;
                }
                strv_free(g.companions);
                if (r <= 0)
                        break;
        }
        if (r < 0)
                return r;
        if (json)
                return 0;
        table_print(t, stdout, arg_legend);
        if (arg_legend)
                printf("\n%zu GPUs listed.\n", table_rows(t));
        return 0;
}

int verb_list(sd_bus *bus, char **args) {
        _cleanup_(json_object_putp) json_object *gpus = NULL;
        int r;

        if (arg_json == JSON_OFF)
                return list_gpus(bus, /* json= */ NULL);
        gpus = json_object_new_array();
        if (!gpus)
                return -ENOMEM;
        r = list_gpus(bus, gpus);
        if (r < 0)
                return r;
        return ctl_json_print(gpus);
}

/* One Manager property: a table line ("LABEL: value") or the member of `json` named after the property. */
static int show_manager_property(sd_bus *bus, json_object *json, const char *label, const char *property,
                                 char type) {
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
                if (r < 0)
                        break;
                if (json)
                        r = json_add_string(json, property, s);
                else if (*s || strcmp(property, "StateProblem") != 0) /* a problem only when there is one */
                        printf("%16s: %s\n", label, s);
                break;
        }
        case 'b': {
                int b;
                r = sd_bus_message_read(reply, "b", &b);
                if (r < 0)
                        break;
                if (json)
                        r = json_add_bool(json, property, b);
                else
                        printf("%16s: %s\n", label, b ? "yes" : "no");
                break;
        }
        case 'u': {
                uint32_t u;
                r = sd_bus_message_read(reply, "u", &u);
                if (r < 0)
                        break;
                if (json)
                        r = json_add_uint(json, property, u);
                else
                        printf("%16s: %u\n", label, u);
                break;
        }
        case 't': {
                uint64_t t;
                r = sd_bus_message_read(reply, "t", &t);
                if (r < 0)
                        break;
                if (json)
                        r = json_add_uint(json, property, t);
                else
                        printf("%16s: %llu MiB\n", label, (unsigned long long) t);
                break;
        }
        }
        return r;
}

int verb_status(sd_bus *bus, char **args) {
        static const struct {
                const char *label, *property;
                char type;
        } props[] = {
                { "Hostname", "Hostname", 's' },   { "Machine ID", "MachineId", 's' },
                { "CPUs", "CpuCount", 'u' },       { "Memory", "MemoryMiB", 't' },
                { "IOMMU", "IommuEnabled", 'b' },  { "Maintenance", "Maintenance", 'b' },
                { "State problem", "StateProblem", 's' }, { "Agent version", "Version", 's' },
        };
        _cleanup_(json_object_putp) json_object *json = NULL;
        json_object *gpus;
        int r;

        if (arg_json != JSON_OFF && !(json = json_object_new_object()))
                return -ENOMEM;
        for (size_t i = 0; i < ELEMENTSOF(props); i++) {
                r = show_manager_property(bus, json, props[i].label, props[i].property, props[i].type);
                if (r < 0)
                        return r;
        }
        if (!json) {
                printf("\n");
                return list_gpus(bus, /* json= */ NULL);
        }
        gpus = json_object_new_array();
        r = json_add(json, "Gpus", gpus);
        if (r < 0)
                return r;
        r = list_gpus(bus, gpus);
        if (r < 0)
                return r;
        return ctl_json_print(json);
}

static int resolve_gpu(sd_bus *bus, const char *address, char **ret_path) {
        _cleanup_(message_unrefp) sd_bus_message *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *path;
        char *copy;
        int r;

        r = sd_bus_call_method(bus, GPUPASS_AGENT_BUS_NAME, GPUPASS_AGENT_MANAGER_PATH, GPUPASS_AGENT_MANAGER_IFACE,
                               "GetGpu", &error, &reply, "s", address);
        if (r < 0) {
                char what[96];

                snprintf(what, sizeof(what), "find GPU %s", address);
                r = ctl_report_error(what, &error, r);
                sd_bus_error_free(&error);
                return r;
        }
        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return r;
        copy = strdup(path);
        if (!copy)
                return -ENOMEM;
        *ret_path = copy;
        return 0;
}

/* One property value of GetAll: printed as the table shows it, or as JSON into *ret_json (numbers as numbers)
 * when ret_json is not NULL. */
static int show_property_value(sd_bus_message *reply, json_object **ret_json, const char *contents) {
        json_object *value = NULL;
        bool known = true;
        int r;

        if (strcmp(contents, "s") == 0) {
                const char *s;
                r = sd_bus_message_read(reply, "s", &s);
                if (r >= 0 && ret_json)
                        value = json_string_new(s);
                else if (r >= 0)
                        printf("%s\n", *s ? s : "-");
        } else if (strcmp(contents, "b") == 0) {
                int b;
                r = sd_bus_message_read(reply, "b", &b);
                if (r >= 0 && ret_json)
                        value = json_object_new_boolean(b);
                else if (r >= 0)
                        printf("%s\n", b ? "yes" : "no");
        } else if (strcmp(contents, "q") == 0) {
                uint16_t q;
                r = sd_bus_message_read(reply, "q", &q);
                if (r >= 0 && ret_json)
                        value = json_object_new_uint64(q);
                else if (r >= 0)
                        printf("0x%04x\n", q);
        } else if (strcmp(contents, "u") == 0) {
                uint32_t u;
                r = sd_bus_message_read(reply, "u", &u);
                if (r >= 0 && ret_json)
                        value = json_object_new_uint64(u);
                else if (r >= 0)
                        printf("0x%06x\n", u);
        } else if (strcmp(contents, "y") == 0) {
                uint8_t y;
                r = sd_bus_message_read(reply, "y", &y);
                if (r >= 0 && ret_json)
                        value = json_object_new_uint64(y);
                else if (r >= 0)
                        printf("0x%02x\n", y);
        } else if (strcmp(contents, "i") == 0) {
                int32_t i;
                r = sd_bus_message_read(reply, "i", &i);
                if (r >= 0 && ret_json)
                        value = json_object_new_int64(i);
                else if (r >= 0)
                        printf("%d\n", i);
        } else if (strcmp(contents, "as") == 0) {
                _cleanup_strv_free_ char **l = NULL;
                r = sd_bus_message_read_strv(reply, &l);
                if (r >= 0 && ret_json)
                        value = json_strv_new(l);
                else if (r >= 0) {
                        for (char **s = l; s && *s; s++)
                                printf("%s%s", s == l ? "" : " ", *s);
                        printf("%s\n", l && *l ? "" : "-");
                }
        } else {
                known = false; /* JSON: null, as json-c writes a NULL value */
                r = sd_bus_message_skip(reply, contents);
                if (r >= 0 && !ret_json)
                        printf("(%s)\n", contents);
        }
        if (r < 0)
                return r;
        if (ret_json && known && !value)
                return -ENOMEM;
        if (ret_json)
                *ret_json = value;
        return 0;
}

/* Release resets a GPU so that a VM finds nothing of the one before; an operator must see when it cannot. */
static int show_reset_method(sd_bus_message *reply) {
        const char *s;
        int r;

        r = sd_bus_message_read(reply, "s", &s);
        if (r < 0)
                return r;
        if (*s)
                printf("%s\n", s);
        else
                printf("- (warning: the kernel has no way to reset this GPU; what one VM leaves in it can be "
                       "seen by the next)\n");
        return 0;
}

int verb_show(sd_bus *bus, char **args) {
        _cleanup_free_ char *path = NULL;
        _cleanup_(message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(json_object_putp) json_object *json = NULL;
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
        if (arg_json != JSON_OFF && !(json = json_object_new_object()))
                return -ENOMEM;
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
                if (json) {
                        json_object *value = NULL;

                        r = show_property_value(reply, &value, contents);
                        if (r >= 0 && json_object_object_add(json, name, value) < 0) {
                                json_object_put(value);
                                r = -ENOMEM;
                        }
                } else {
                        printf("%22s: ", name);
                        if (strcmp(name, "ResetMethod") == 0)
                                r = show_reset_method(reply);
                        else
                                r = show_property_value(reply, /* ret_json= */ NULL, contents);
                }
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        if (json)
                return ctl_json_print(json);
        return 0;
}

/* A Gpu method on ADDRESS's object; the description names the GPU in the error. */
static int call_gpu_method(sd_bus *bus, const char *address, const char *method, const char *what,
                           const char *types, const char *vm, uint32_t uid) {
        _cleanup_free_ char *path = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char description[128];
        int r;

        r = resolve_gpu(bus, address, &path);
        if (r < 0)
                return r;
        if (!types)
                r = sd_bus_call_method(bus, GPUPASS_AGENT_BUS_NAME, path, GPUPASS_AGENT_GPU_IFACE, method, &error,
                                       NULL, NULL);
        else if (strcmp(types, "s") == 0)
                r = sd_bus_call_method(bus, GPUPASS_AGENT_BUS_NAME, path, GPUPASS_AGENT_GPU_IFACE, method, &error,
                                       NULL, "s", vm);
        else
                r = sd_bus_call_method(bus, GPUPASS_AGENT_BUS_NAME, path, GPUPASS_AGENT_GPU_IFACE, method, &error,
                                       NULL, "su", vm, uid);
        if (r < 0) {
                snprintf(description, sizeof(description), "%s %s", what, address);
                r = ctl_report_error(description, &error, r);
                sd_bus_error_free(&error);
                return r;
        }
        return 0;
}

int verb_prepare(sd_bus *bus, char **args) {
        return call_gpu_method(bus, args[0], "Prepare", "prepare", NULL, NULL, 0);
}

int verb_return(sd_bus *bus, char **args) {
        return call_gpu_method(bus, args[0], "ReturnToHost", "return to host", NULL, NULL, 0);
}

int verb_claim(sd_bus *bus, char **args) {
        return call_gpu_method(bus, args[0], "Claim", "claim", "s", args[1], 0);
}

int verb_release(sd_bus *bus, char **args) {
        return call_gpu_method(bus, args[0], "Release", "release", "s", args[1], 0);
}

int verb_allow_user(sd_bus *bus, char **args) {
        uint32_t uid;
        char *end;
        unsigned long v;

        errno = 0;
        v = strtoul(args[2], &end, 10);
        if (errno != 0 || end == args[2] || *end || v >= UINT32_MAX || args[2][0] == '-')
                return ctl_usage_error("allow-user: '%s' is not a numeric user ID", args[2]);
        uid = (uint32_t) v;
        return call_gpu_method(bus, args[0], "AllowUser", "allow the user on", "su", args[1], uid);
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

int verb_rescan(sd_bus *bus, char **args) {
        return call_manager(bus, "Rescan", "rescan", NULL, 0);
}

int verb_maintenance(sd_bus *bus, char **args) {
        int enable;

        if (strcmp(args[0], "on") == 0)
                enable = 1;
        else if (strcmp(args[0], "off") == 0)
                enable = 0;
        else
                return ctl_usage_error("maintenance takes 'on' or 'off', not '%s'", args[0]);
        return call_manager(bus, "SetMaintenance", "set maintenance", "b", enable);
}
