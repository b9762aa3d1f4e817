/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "clusterd-config.h"
#include "macro.h"

static bool host_name_is_valid(const char *name) {
        if (!*name || strlen(name) > 64)
                return false;
        for (const char *p = name; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                      *p == '-' || *p == '_' || *p == '.'))
                        return false;
        return true;
}

static struct host_config *find_or_add_host(struct clusterd_config *c, const char *name) {
        struct host_config *t;

        for (size_t i = 0; i < c->n_hosts; i++)
                if (strcmp(c->hosts[i].name, name) == 0)
                        return &c->hosts[i];
        t = realloc(c->hosts, sizeof(*t) * (c->n_hosts + 1));
        if (!t)
                return NULL;
        c->hosts = t;
        t = &c->hosts[c->n_hosts];
        *t = (struct host_config) { .name = strdup(name) };
        if (!t->name)
                return NULL;
        c->n_hosts++;
        return t;
}

/* The [Cluster] keys of the VM runtime: ShutdownTimeoutSec= (whole seconds, at most a day), OnCrash=. */
static int runtime_cluster_key(struct clusterd_config *c, const char *name, const char *value) {
        if (strcmp(name, "ShutdownTimeoutSec") == 0) {
                char *end;
                unsigned long n;

                errno = 0;
                n = strtoul(value, &end, 10);
                if (errno != 0 || end == value || *end || *value == '-' || n == 0 || n > 86400)
                        return 0;
                c->shutdown_timeout_usec = n * 1000000ULL;
                return 1;
        }
        if (strcmp(name, "OnCrash") == 0 && (strcmp(value, "off") == 0 || strcmp(value, "restart") == 0)) {
                c->restart_on_crash = strcmp(value, "restart") == 0;
                return 1;
        }
        return 0;
}

/* A [Host NAME] key: Address= (once), Runtime=none|libvirt, LibvirtUri=. */
static int host_key(struct clusterd_config *c, const char *host, const char *name, const char *value) {
        struct host_config *h;
        char **field;

        if (!host_name_is_valid(host) || !*value)
                return 0;
        h = find_or_add_host(c, host);
        if (!h)
                return 0;
        if (strcmp(name, "Runtime") == 0) {
                if (strcmp(value, "none") != 0 && strcmp(value, "libvirt") != 0)
                        return 0;
                h->runtime_set = strcmp(value, "libvirt") == 0;
                return 1;
        }
        field = strcmp(name, "Address") == 0 ? &h->address : strcmp(name, "LibvirtUri") == 0 ? &h->libvirt_uri : NULL;
        if (!field || *field)
                return 0; /* unknown, or given twice */
        *field = strdup(value);
        return *field != NULL;
}

/* inih: nonzero means the line was fine. Unknown sections and keys are errors. */
static int config_handler(void *user, const char *section, const char *name, const char *value) {
        struct clusterd_config *c = user;

        if (strcmp(section, "Cluster") == 0 && strcmp(name, "AdminGroup") == 0 && *value) {
                free(c->admin_group);
                c->admin_group = strdup(value);
                return c->admin_group != NULL;
        }
        if (strcmp(section, "Cluster") == 0)
                return runtime_cluster_key(c, name, value);
        if (strncmp(section, "Host ", 5) == 0)
                return host_key(c, section + 5, name, value);
        return 0;
}

/* Runtime=libvirt without LibvirtUri=: the host's own libvirt, over ssh for an ssh: host. */
static int default_runtime_uri(struct host_config *h) {
        if (!h->runtime_set)
                return 0;
        if (h->libvirt_uri)
                h->runtime_uri = strdup(h->libvirt_uri);
        else if (h->address && strncmp(h->address, "ssh:", 4) == 0)
                return asprintf(&h->runtime_uri, "qemu+ssh://%s/system", h->address + 4) < 0 ? -ENOMEM : 0;
        else
                h->runtime_uri = strdup("qemu:///system");
        return h->runtime_uri ? 0 : -ENOMEM;
}

static int finish(struct clusterd_config *c, int r, int *ret_line) {
        if (r != 0) {
                if (ret_line)
                        *ret_line = r;
                return r > 0 ? -EINVAL : -EIO;
        }
        if (!c->admin_group && !(c->admin_group = strdup("gpupass")))
                return -ENOMEM;
        if (c->shutdown_timeout_usec == 0)
                c->shutdown_timeout_usec = CLUSTERD_SHUTDOWN_TIMEOUT_USEC;
        for (size_t i = 0; i < c->n_hosts; i++) {
                if (c->hosts[i].libvirt_uri && !c->hosts[i].runtime_set)
                        return -EINVAL; /* LibvirtUri= of a host whose Runtime is none: a mistake */
                r = default_runtime_uri(&c->hosts[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

int clusterd_config_parse_string(struct clusterd_config *c, const char *text, int *ret_line) {
        return finish(c, ini_parse_string(text, config_handler, c), ret_line);
}

int clusterd_config_load(struct clusterd_config *c, const char *path, int *ret_line) {
        FILE *f = fopen(path, "re");
        int r;

        if (!f) {
                if (errno != ENOENT)
                        return negative_errno();
                return finish(c, 0, ret_line);
        }
        r = ini_parse_file(f, config_handler, c);
        fclose(f);
        return finish(c, r, ret_line);
}

void clusterd_config_done(struct clusterd_config *c) {
        for (size_t i = 0; i < c->n_hosts; i++) {
                free(c->hosts[i].name);
                free(c->hosts[i].address);
                free(c->hosts[i].runtime_uri);
                free(c->hosts[i].libvirt_uri);
        }
        free(c->hosts);
        free(c->admin_group);
        *c = (struct clusterd_config) {};
}

/* A value that goes into a D-Bus address must escape everything but [-0-9A-Za-z_/.\*]. */
static int escape_address_value(const char *s, char **ret) {
        size_t n = strlen(s);
        char *out = malloc(n * 3 + 1), *p = out;

        if (!out)
                return -ENOMEM;
        for (; *s; s++) {
                unsigned char ch = (unsigned char) *s;

                if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                    strchr("-_/.\\*", ch))
                        *p++ = (char) ch;
                else
                        p += sprintf(p, "%%%02x", ch);
        }
        *p = '\0';
        *ret = out;
        return 0;
}

int host_address_to_bus_address(const char *configured, char **ret) {
        _cleanup_free_ char *e = NULL;
        int r;

        if (strncmp(configured, "ssh:", 4) == 0) {
                /* What sd_bus_open_system_remote() does, as an address we can connect asynchronously. */
                r = escape_address_value(configured + 4, &e);
                if (r < 0)
                        return r;
                if (!*e)
                        return -EINVAL;
                return asprintf(ret, "unixexec:path=ssh,argv1=-xT,argv2=--,argv3=%s,argv4=systemd-stdio-bridge", e) < 0
                        ? -ENOMEM : 0;
        }
        if (strncmp(configured, "machine:", 8) == 0) {
                r = escape_address_value(configured + 8, &e);
                if (r < 0)
                        return r;
                if (!*e)
                        return -EINVAL;
                return asprintf(ret, "x-machine-unix:machine=%s", e) < 0 ? -ENOMEM : 0;
        }
        if (!strchr(configured, ':'))
                return -EINVAL;
        *ret = strdup(configured);
        return *ret ? 0 : -ENOMEM;
}
