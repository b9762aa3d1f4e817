/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A VM's domain on its host's runtime: the links per host, the XML, start and stop, and what the lifecycle
 * does when a domain stops by itself. The runtime is observed state: the registry says what the operator
 * wants, libvirt says what runs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clusterd.h"
#include "domain-xml.h"
#include "lifecycle/vm-runtime.h"
#include "link/hostlink.h"
#include "link/libvirt-event.h"
#include "link/runtime-libvirt.h"
#include "log.h"
#include "macro.h"
#include "registry/vm-template.h"
#include "registry/vmstore.h"
#include "strv.h"

static struct host_config *config_host(struct clusterd *c, const char *name) {
        for (size_t i = 0; i < c->config.n_hosts; i++)
                if (strcmp(c->config.hosts[i].name, name) == 0)
                        return &c->config.hosts[i];
        return NULL;
}

struct runtime_link *vm_runtime_link(struct clusterd *c, const char *host) {
        for (size_t i = 0; host && i < c->n_runtimes; i++)
                if (strcmp(c->runtimes[i].host, host) == 0)
                        return c->runtimes[i].link;
        return NULL;
}

static void host_runtime_done(struct host_runtime *h) {
        runtime_link_free(h->link);
        free(h->host);
        free(h->uri);
}

static int add_runtime(struct clusterd *c, const struct host_config *h, const struct runtime_callbacks *cb,
                       void *userdata) {
        struct host_runtime *t, n = {};
        int r;

        if (c->n_runtimes == 0) {
                r = libvirt_event_setup(c->event);
                if (r < 0 && r != -EALREADY)
                        return r;
        }
        t = realloc(c->runtimes, sizeof(*t) * (c->n_runtimes + 1));
        if (!t)
                return -ENOMEM;
        c->runtimes = t;
        n.host = strdup(h->name);
        n.uri = strdup(h->runtime_uri);
        r = n.host && n.uri ? runtime_link_new(c->event, h->name, h->runtime_uri, cb, userdata, &n.link) : -ENOMEM;
        if (r >= 0)
                r = runtime_link_connect(n.link);
        if (r < 0) {
                host_runtime_done(&n);
                return r;
        }
        c->runtimes[c->n_runtimes++] = n;
        return 0;
}

int vm_runtimes_sync(struct clusterd *c, const struct runtime_callbacks *cb, void *userdata, char ***ret_dropped) {
        size_t kept = 0;
        int r;

        for (size_t i = 0; i < c->n_runtimes; i++) {
                struct host_config *h = config_host(c, c->runtimes[i].host);

                if (h && h->runtime_uri && strcmp(h->runtime_uri, c->runtimes[i].uri) == 0) {
                        c->runtimes[kept++] = c->runtimes[i];
                        continue;
                }
                if (strv_extend(ret_dropped, c->runtimes[i].host) < 0)
                        log_warning("Host %s: its VMs' RuntimeState change is not announced (out of memory)",
                                    c->runtimes[i].host);
                host_runtime_done(&c->runtimes[i]);
        }
        c->n_runtimes = kept;
        for (size_t i = 0; i < c->config.n_hosts; i++) {
                struct host_config *h = &c->config.hosts[i];

                if (!h->runtime_uri || vm_runtime_link(c, h->name))
                        continue;
                r = add_runtime(c, h, cb, userdata);
                if (r < 0)
                        return log_error_errno(r, "Host %s: cannot set up libvirt at %s: %m", h->name,
                                               h->runtime_uri);
        }
        return 0;
}

void vm_runtimes_free(struct clusterd *c) {
        for (size_t i = 0; i < c->n_runtimes; i++)
                host_runtime_done(&c->runtimes[i]);
        c->runtimes = mfree(c->runtimes);
        c->n_runtimes = 0;
        libvirt_event_detach();
}

const char *vm_runtime_state(struct clusterd *c, const struct vm_record *v) {
        struct runtime_link *r = vm_runtime_link(c, v->host);
        const char *s;

        if (!r)
                return "none";
        if (runtime_link_state(r) == RUNTIME_CONNECTING)
                return "connecting";
        if (runtime_link_state(r) == RUNTIME_UNREACHABLE)
                return "unreachable";
        s = runtime_link_domain_state(r, v->uuid);
        return s ?: "shut off";
}

static int add_address(struct pci_address **list, size_t *n, const char *text) {
        struct pci_address a, *t;

        if (pci_address_parse(text, &a) < 0)
                return 0; /* not an address the agent would report: nothing to hand through */
        t = realloc(*list, sizeof(*t) * (*n + 1));
        if (!t)
                return -ENOMEM;
        *list = t;
        t[(*n)++] = a;
        return 0;
}

/* A GPU and the functions that go to the VM with it, as the agent reports them. */
static int add_gpu_functions(struct pci_address **list, size_t *n, struct hostlink *l, const char *address) {
        struct cluster_gpu *g = l ? hostlink_find_gpu(l, address) : NULL;
        int r;

        r = add_address(list, n, address);
        for (char **f = g ? g->companions : NULL; r >= 0 && f && *f; f++)
                r = add_address(list, n, *f);
        return r;
}

int vm_runtime_managed_addresses(struct clusterd *c, struct pci_address **ret, size_t *ret_n) {
        struct pci_address *list = NULL;
        size_t n = 0;
        int r = 0;

        for (size_t i = 0; r >= 0 && i < c->n_hosts; i++)
                for (size_t k = 0; r >= 0 && k < c->hosts[i]->n_gpus; k++)
                        r = add_gpu_functions(&list, &n, c->hosts[i], c->hosts[i]->gpus[k]->address);
        if (r < 0) {
                free(list);
                return r;
        }
        *ret = list;
        *ret_n = n;
        return 0;
}

int vm_runtime_domain_xml(struct clusterd *c, const struct vm_record *v, const char *template_xml, char **ret_xml,
                          char **ret_message) {
        struct runtime_link *rl = vm_runtime_link(c, v->host);
        struct hostlink *l = clusterd_find_host(c, v->host, NULL);
        _cleanup_free_ char *stored = NULL, *held = strdup(v->held ?: "");
        _cleanup_free_ struct pci_address *devs = NULL;
        struct domain_xml_params p;
        char *save = NULL;
        size_t n = 0;
        int r;

        if (!held)
                return -ENOMEM;
        if (!template_xml) {
                r = vm_template_get(c->db, v->uuid, &stored);
                if (r < 0)
                        return r;
                template_xml = stored;
        }
        for (char *a = strtok_r(held, ",", &save); a; a = strtok_r(NULL, ",", &save)) {
                r = add_gpu_functions(&devs, &n, l, a);
                if (r < 0)
                        return r;
        }
        p = (struct domain_xml_params) {
                /* libvirt's test driver (the simulated cluster) runs domains of type 'test' only. */
                .type = rl && strncmp(runtime_link_uri(rl), "test", 4) == 0 &&
                        strchr(":+", runtime_link_uri(rl)[4]) ? "test" : "kvm",
                .name = v->name,
                .uuid = v->uuid,
                .vcpus = v->vcpus,
                .memory_kib = v->memory_mib * 1024,
                .hostdevs = devs,
                .n_hostdevs = n,
        };
        return domain_xml_build(template_xml, &p, ret_xml, ret_message);
}

struct runtime_call {
        struct clusterd *c;
        char uuid[37];
        vm_runtime_done_t done;
        void *userdata;
};

static void on_link_done(struct runtime_link *r, int error, const char *message, void *userdata) {
        struct runtime_call *call = userdata;

        call->done(call->c, call->uuid, error, message, call->userdata);
        free(call);
}

static struct runtime_call *runtime_call_new(struct clusterd *c, const char *uuid, vm_runtime_done_t done,
                                             void *userdata) {
        struct runtime_call *call = calloc(1, sizeof(*call));

        if (!call)
                return NULL;
        *call = (struct runtime_call) { .c = c, .done = done, .userdata = userdata };
        snprintf(call->uuid, sizeof(call->uuid), "%s", uuid);
        return call;
}

static int not_connected(struct runtime_link *r, char **ret_message) {
        if (ret_message && asprintf(ret_message, "libvirt at %s is %s%s%s", runtime_link_uri(r),
                                    runtime_link_state(r) == RUNTIME_CONNECTING ? "not connected yet" : "unreachable",
                                    runtime_link_error(r) ? ": " : "", runtime_link_error(r) ?: "") < 0)
                *ret_message = NULL;
        return -ENOTCONN;
}

int vm_runtime_start(struct clusterd *c, const struct vm_record *v, vm_runtime_done_t done, void *userdata,
                     char **ret_message) {
        struct runtime_link *r = vm_runtime_link(c, v->host);
        _cleanup_free_ char *xml = NULL;
        struct runtime_call *call;
        int k;

        if (!r)
                return 1;
        if (runtime_link_state(r) != RUNTIME_UP)
                return not_connected(r, ret_message);
        if (runtime_link_domain_state(r, v->uuid))
                return 1; /* running already: adopted */
        k = vm_runtime_domain_xml(c, v, NULL, &xml, ret_message);
        if (k < 0)
                return k;
        call = runtime_call_new(c, v->uuid, done, userdata);
        if (!call)
                return -ENOMEM;
        k = runtime_link_start(r, v->uuid, xml, on_link_done, call);
        if (k < 0)
                free(call);
        return k;
}

int vm_runtime_stop(struct clusterd *c, const struct vm_record *v, vm_runtime_done_t done, void *userdata) {
        struct runtime_link *r = vm_runtime_link(c, v->host);
        struct runtime_call *call;
        int k;

        if (!r)
                return 1;
        if (runtime_link_state(r) != RUNTIME_UP)
                return -ENOTCONN;
        call = runtime_call_new(c, v->uuid, done, userdata);
        if (!call)
                return -ENOMEM;
        k = runtime_link_stop(r, v->uuid, c->config.shutdown_timeout_usec, on_link_done, call);
        if (k < 0)
                free(call);
        return k;
}
