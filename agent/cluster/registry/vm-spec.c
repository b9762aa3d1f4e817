/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "pci-address.h"
#include "strv.h"
#include "registry/vm-spec.h"

_printf_(3, 4) static int refuse(int error, char **ret_why, const char *format, ...) {
        va_list ap;
        int r;

        if (!ret_why) /* only the verdict is wanted */
                return error;
        va_start(ap, format);
        r = vasprintf(ret_why, format, ap);
        va_end(ap);
        if (r < 0) {
                *ret_why = NULL;
                return -ENOMEM;
        }
        return error;
}

bool uuid_shaped(const char *s) {
        if (strlen(s) != 36)
                return false;
        for (size_t i = 0; i < 36; i++)
                if ((s[i] == '-') != (i == 8 || i == 13 || i == 18 || i == 23))
                        return false;
        return true;
}

int vm_name_check(const char *name, char **ret_why) {
        size_t n = strlen(name);

        if (n == 0 || n > VM_MAX_NAME)
                return refuse(-EINVAL, ret_why, "VM name '%s' must have 1 to %d characters", name, VM_MAX_NAME);
        for (const char *p = name; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                      *p == '-' || *p == '_' || *p == '.'))
                        return refuse(-EINVAL, ret_why, "VM name '%s' may only hold letters, digits, '-', '_' and '.'",
                                      name);
        /* A VM is named by UUID or name: a name shaped like a UUID would make that ambiguous. */
        if (uuid_shaped(name))
                return refuse(-EINVAL, ret_why, "VM name '%s' has the shape of a UUID: VMs are named by UUID or name",
                              name);
        return 0;
}

int vm_resources_check(uint32_t vcpus, uint64_t memory_mib, char **ret_why) {
        if (vcpus < 1 || vcpus > VM_MAX_VCPUS)
                return refuse(-EINVAL, ret_why, "%u vCPUs: a VM has 1 to %u", vcpus, VM_MAX_VCPUS);
        if (memory_mib < VM_MIN_MEMORY_MIB || memory_mib > VM_MAX_MEMORY_MIB)
                return refuse(-EINVAL, ret_why, "%llu MiB of memory: a VM has 64 MiB to 64 TiB",
                              (unsigned long long) memory_mib);
        return 0;
}

/* "COUNT:MODEL[|MODEL...]": a plain decimal count (no sign, no space: strtoul would take both). */
static bool count_request_valid(const char *req) {
        const char *colon = strchr(req, ':');
        unsigned long count = 0;
        size_t digits = strspn(req, "0123456789");

        if (!colon || digits == 0 || req + digits != colon || digits > 2)
                return false;
        count = strtoul(req, NULL, 10);
        if (count < 1 || count > VM_MAX_GPUS_PER_REQUEST)
                return false;
        /* Model names: none empty. */
        return colon[1] && colon[1] != '|' && !strstr(colon + 1, "||") && colon[strlen(colon) - 1] != '|';
}

void gpu_request_specs_free(struct gpu_request_spec *specs, size_t n) {
        for (size_t i = 0; specs && i < n; i++) {
                strv_free(specs[i].models);
                free(specs[i].host);
                free(specs[i].address);
        }
        free(specs);
}

/* One item, checked, into *spec. */
static int parse_request(char *req, struct gpu_request_spec *spec, char **ret_why) {
        struct pci_address a;

        if (req[0] == '=') {
                char *slash = strchr(req + 1, '/');

                if (!slash || slash == req + 1 || pci_address_parse(slash + 1, &a) < 0)
                        return refuse(-EINVAL, ret_why, "'%s' is not HOST/ADDRESS with a PCI address", req + 1);
                spec->count = 1;
                spec->host = strndup(req + 1, (size_t) (slash - req - 1));
                spec->address = strdup(slash + 1);
                return spec->host && spec->address ? 0 : -ENOMEM;
        }
        if (!count_request_valid(req))
                return refuse(-EINVAL, ret_why, "'%s' is not COUNT:MODEL[|MODEL...] with a count of 1 to %d", req,
                              VM_MAX_GPUS_PER_REQUEST);
        spec->count = (uint32_t) strtoul(req, NULL, 10);
        for (char *save = NULL, *m = strtok_r(strchr(req, ':') + 1, "|", &save); m; m = strtok_r(NULL, "|", &save))
                if (strv_extend(&spec->models, m) < 0)
                        return -ENOMEM;
        return 0;
}

int gpu_requests_parse(const char *text, struct gpu_request_spec **ret, size_t *ret_n, char **ret_why) {
        _cleanup_free_ char *copy = strdup(text);
        struct gpu_request_spec *specs = calloc(VM_MAX_GPU_REQUESTS, sizeof(*specs));
        char *save = NULL;
        size_t n = 0;
        int r = 0;

        if (!copy || !specs) {
                free(specs);
                return -ENOMEM;
        }
        for (char *req = strtok_r(copy, ";", &save); req && r >= 0; req = strtok_r(NULL, ";", &save)) {
                if (n >= VM_MAX_GPU_REQUESTS)
                        r = refuse(-EINVAL, ret_why, "%s: a VM has at most %d GPU requests", text,
                                   VM_MAX_GPU_REQUESTS);
                else
                        r = parse_request(req, &specs[n++], ret_why);
        }
        if (r < 0 || !ret) {
                gpu_request_specs_free(specs, n);
                return r;
        }
        *ret = specs;
        *ret_n = n;
        return 0;
}

int gpu_requests_validate(const char *text, char **ret_why) {
        return gpu_requests_parse(text, NULL, NULL, ret_why);
}

bool gpu_requests_name_model(const char *text, const char *model) {
        struct gpu_request_spec *specs = NULL;
        bool found = false;
        size_t n = 0;

        if (gpu_requests_parse(text, &specs, &n, NULL) < 0)
                return false;
        for (size_t i = 0; i < n && !found; i++)
                found = strv_contains(specs[i].models, model);
        gpu_request_specs_free(specs, n);
        return found;
}

bool gpu_address_matches(const char *full, const char *given) {
        struct pci_address a, b;

        return pci_address_parse(full, &a) >= 0 && pci_address_parse(given, &b) >= 0 && a.domain == b.domain &&
               a.bus == b.bus && a.device == b.device && a.function == b.function;
}

int vm_affinity_join(char * const *hosts, bool (*is_host)(const char *name, void *userdata), void *userdata,
                     char **ret_joined, char **ret_why) {
        _cleanup_strv_free_ char **kept = NULL;
        char *joined;
        size_t len = 1;

        for (char * const *h = hosts; h && *h; h++) {
                if (!is_host(*h, userdata))
                        return refuse(-ENOENT, ret_why, "Host %s is not in the cluster", *h);
                if (strv_contains(kept, *h))
                        continue;
                if (strv_extend(&kept, *h) < 0)
                        return -ENOMEM;
                len += strlen(*h) + 1;
        }
        joined = calloc(1, len);
        if (!joined)
                return -ENOMEM;
        for (char **h = kept; h && *h; h++) {
                if (*joined)
                        strcat(joined, ",");
                strcat(joined, *h);
        }
        *ret_joined = joined;
        return 0;
}
