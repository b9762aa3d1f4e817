/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gpupassctl and the VM runtime: each VM's RuntimeState (from the aggregator's objects, one
 * GetManagedObjects for the whole list), domain-xml (the XML the VM starts with) and set-template (the
 * operator's domain XML template, from a file or stdin).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ctl-cluster.h"
#include "gpupass/bus-names.h"
#include "macro.h"
#include "strv.h"

/* One Vm object's a{sv}: its Uuid and RuntimeState appended to *pairs. */
static int read_vm_properties(sd_bus_message *m, char ***pairs) {
        const char *name, *uuid = NULL, *state = NULL;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                r = sd_bus_message_read(m, "s", &name);
                if (r >= 0 && (strcmp(name, "Uuid") == 0 || strcmp(name, "RuntimeState") == 0))
                        r = sd_bus_message_read(m, "v", "s", strcmp(name, "Uuid") == 0 ? &uuid : &state);
                else if (r >= 0)
                        r = sd_bus_message_skip(m, "v");
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        if (r >= 0 && uuid && state && (r = strv_extend(pairs, uuid)) >= 0)
                r = strv_extend(pairs, state);
        return r;
}

int ctl_runtime_states(sd_bus *bus, char ***ret) {
        _cleanup_(message_unrefp) sd_bus_message *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_strv_free_ char **pairs = NULL;
        const char *path, *iface;
        int r;

        r = sd_bus_call_method(bus, GPUPASS_CLUSTER_BUS_NAME, GPUPASS_CLUSTER_MANAGER_PATH,
                               "org.freedesktop.DBus.ObjectManager", "GetManagedObjects", &error, &reply, NULL);
        if (r < 0) {
                r = ctl_report_error("read the VMs' runtime state", &error, r);
                sd_bus_error_free(&error);
                return r;
        }
        r = sd_bus_message_enter_container(reply, 'a', "{oa{sa{sv}}}");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'e', "oa{sa{sv}}")) > 0) {
                r = sd_bus_message_read(reply, "o", &path);
                if (r >= 0)
                        r = sd_bus_message_enter_container(reply, 'a', "{sa{sv}}");
                while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'e', "sa{sv}")) > 0) {
                        r = sd_bus_message_read(reply, "s", &iface);
                        if (r >= 0)
                                r = strcmp(iface, GPUPASS_CLUSTER_VM_IFACE) == 0 ? read_vm_properties(reply, &pairs)
                                                                                : sd_bus_message_skip(reply, "a{sv}");
                        if (r >= 0)
                                r = sd_bus_message_exit_container(reply);
                }
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(pairs);
        return 0;
}

const char *ctl_runtime_state_of(char **pairs, const char *uuid) {
        for (char **p = pairs; p && p[0] && p[1]; p += 2)
                if (strcasecmp(p[0], uuid) == 0)
                        return p[1];
        return NULL;
}

int verb_domain_xml(sd_bus *bus, char **args) {
        _cleanup_(message_unrefp) sd_bus_message *reply = NULL;
        const char *xml;
        int r;

        r = ctl_call_cluster_string(bus, "GetVmDomainXml", "get the VM's domain XML", args[0], &reply, &xml);
        if (r < 0)
                return r;
        fputs(xml, stdout);
        if (*xml && xml[strlen(xml) - 1] != '\n')
                fputc('\n', stdout);
        return 0;
}

/* The whole of f, NUL-terminated. */
static int read_all(FILE *f, char **ret) {
        char *text = NULL;
        size_t size = 0;
        FILE *out = open_memstream(&text, &size);
        char buf[4096];
        size_t n;

        if (!out)
                return -ENOMEM;
        while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
                fwrite(buf, 1, n, out);
        if (ferror(f)) {
                fclose(out);
                free(text);
                return -EIO;
        }
        if (fclose(out) != 0) {
                free(text);
                return -ENOMEM;
        }
        *ret = text;
        return 0;
}

int verb_set_template(sd_bus *bus, char **args) {
        _cleanup_free_ char *xml = NULL;
        FILE *f = strcmp(args[1], "-") == 0 ? stdin : fopen(args[1], "re");
        int r;

        if (!f) {
                fprintf(stderr, "Failed to read %s: %s\n", args[1], strerror(errno));
                return -EXIT_CALL_FAILED;
        }
        r = read_all(f, &xml);
        if (f != stdin)
                fclose(f);
        if (r < 0) {
                fprintf(stderr, "Failed to read %s: %s\n", args[1], strerror(-r));
                return -EXIT_CALL_FAILED;
        }
        /* An empty file removes the template: the VM starts from gpupass's minimal domain again. */
        return ctl_call_cluster(bus, "SetVmDomainTemplate", "set the VM's domain template", NULL, "ss", args[0], xml);
}
