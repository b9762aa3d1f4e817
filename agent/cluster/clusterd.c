/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gpupass-clusterd's life: the configuration, the registry, the event loop and its signals, the host
 * connections, the reconciler, the bus; and the way down in reverse. main.c runs new -> startup -> run ->
 * free. This file also connects the layers: what a link reports and what the registry changes go to the
 * lifecycle (placement view, reconciles) and to the bus objects.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-daemon.h>

#include <sys/stat.h>

#include "bus/cluster-objects.h"
#include "clusterd.h"
#include "config.h"
#include "lifecycle/lifecycle.h"
#include "lifecycle/placement-view.h"
#include "link/hostlink.h"
#include "lifecycle/vm-runtime.h"
#include "log.h"
#include "macro.h"
#include "registry/vm-table.h"
#include "registry/vm-template.h"
#include "registry/vmstore.h"

sd_event *clusterd_event(struct clusterd *c) {
        return c->event;
}

/* Once no host is connecting any more (each answered or failed once), the interrupted calls of a previous
 * run are finished, then the reconciles that waited for the hosts run: before that, placement would not
 * know the hosts. */
static void maybe_startup(struct clusterd *c) {
        if (c->started || !c->reconciler)
                return;
        for (size_t i = 0; i < c->n_hosts; i++)
                if (c->hosts[i]->state == LINK_CONNECTING)
                        return;
        c->started = true;
        reconciler_release(c->reconciler, lifecycle_startup);
}

void clusterd_host_changed(struct clusterd *c, struct hostlink *l) {
        size_t up = 0;

        for (size_t i = 0; i < c->n_hosts; i++)
                up += c->hosts[i]->state == LINK_UP;
        (void) sd_notifyf(false, "STATUS=%zu of %zu hosts up", up, c->n_hosts);
        for (size_t i = 0; i < c->n_hosts; i++)
                if (!l || c->hosts[i] == l) {
                        placement_view_host_changed(c->placement, c->hosts[i]);
                        host_view_refresh(c, c->hosts[i]);
                }
        maybe_startup(c);
}

static void on_link_changed(struct hostlink *l, void *userdata) {
        clusterd_host_changed(userdata, l);
}

static void on_link_up(struct hostlink *l, void *userdata) {
        struct clusterd *c = userdata;

        if (c->reconciler)
                lifecycle_host_up(c, l);
}

static void on_owner_changed(struct hostlink *l, const struct cluster_gpu *g, const char *old_owner,
                             void *userdata) {
        struct clusterd *c = userdata;

        if (c->reconciler)
                lifecycle_owner_changed(c, l, g, old_owner);
}

static void on_identity_changed(struct hostlink *l, const char *address, const char *old_model,
                                const char *new_model, void *userdata) {
        struct clusterd *c = userdata;

        if (c->reconciler)
                lifecycle_flag_reflash(c, l, address, old_model, new_model);
}

static const struct hostlink_callbacks link_callbacks = {
        .changed = on_link_changed,
        .up = on_link_up,
        .owner_changed = on_owner_changed,
        .identity_changed = on_identity_changed,
};

int clusterd_host_new(struct clusterd *c, const struct host_config *h, struct hostlink **ret) {
        _cleanup_free_ char *bus_address = NULL;
        int r;

        if (!h->address)
                return -EINVAL;
        r = host_address_to_bus_address(h->address, &bus_address);
        if (r < 0)
                return r;
        return hostlink_new(c->event, h->name, h->address, bus_address, &link_callbacks, c, ret);
}

/* The one place that hears of every registry write: placement's reservations and the bus objects. */
static void on_registry_change(const struct vm_record *old, const struct vm_record *new, void *userdata) {
        struct clusterd *c = userdata;

        if (!old && new && vm_table_put(c->known_vms, new->uuid, c) < 0)
                log_error("VM %s: cannot note it as known, its claims show as foreign", new->name);
        if (old && !new)
                (void) vm_table_remove(c->known_vms, old->uuid);
        placement_view_vm_changed(c->placement, old, new);
        cluster_objects_vm_changed(c, old, new);
}

/* Every operator call still waiting is answered now, while the bus is up: sd-bus closes it when the
 * event loop exits. The reconciler stops deciding and the agents' calls still waiting fail. */
static void clusterd_stop(struct clusterd *c) {
        if (!c->reconciler)
                return;
        reconciler_stop(c->reconciler);
        for (size_t i = 0; i < c->n_hosts; i++)
                hostlink_calls_fail(c->hosts[i], SD_BUS_ERROR_FAILED, "gpupass-clusterd is stopping");
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        struct clusterd *c = userdata;

        (void) sd_notify(false, "STOPPING=1");
        clusterd_stop(c);
        return sd_event_exit(c->event, 0);
}

static int on_reload(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        (void) clusterd_reload(userdata);
        return 0;
}

struct clusterd *clusterd_free(struct clusterd *c) {
        if (!c)
                return NULL;
        sd_event_source_disable_unref(c->reload_defer);
        sd_event_source_disable_unref(c->hosts_prepare);
        /* The reconciler stops deciding; the links go, answering their calls still waiting (failed), so
         * that every reconcile ends and answers the operator calls waiting for it, while the bus is there
         * to carry the replies. */
        if (c->reconciler)
                reconciler_stop(c->reconciler);
        cluster_objects_done(c);
        while (c->n_hosts > 0) /* out of the list first: the calls it fails may look the list up */
                hostlink_free(c->hosts[--c->n_hosts]);
        vm_runtimes_free(c); /* a domain start or stop waiting is answered (cancelled) to the reconciler too */
        c->reconciler = reconciler_free(c->reconciler);
        c->placement = placement_view_free(c->placement);
        c->known_vms = vm_table_free(c->known_vms);
        free(c->hosts);
        sd_bus_flush_close_unref(c->bus);
        vmstore_close(c->db);
        sd_event_unref(c->event);
        clusterd_config_done(&c->config);
        free(c);
        return NULL;
}

static int open_registry(struct clusterd *c) {
        const char *state = getenv("STATE_DIRECTORY");
        _cleanup_free_ char *dir = NULL;
        int r;

        if (!state || !*state)
                state = "/var/lib/gpupass";
        /* systemd may pass several directories separated by ':'; ours is the first. */
        dir = strndup(state, strcspn(state, ":"));
        if (!dir)
                return -ENOMEM;
        (void) mkdir(dir, 0700);
        r = vmstore_open(dir, &c->db);
        if (r >= 0)
                r = vm_template_setup(c->db);
        if (r < 0)
                return log_error_errno(r, "Cannot open the VM registry in %s: %m", dir);
        return 0;
}

static int setup_event(struct clusterd *c) {
        sigset_t mask;
        int r;

        r = sd_event_default(&c->event);
        if (r < 0)
                return r;
        (void) sd_event_set_watchdog(c->event, true);
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        r = sd_event_add_signal(c->event, NULL, SIGTERM, on_signal, c);
        if (r >= 0)
                r = sd_event_add_signal(c->event, NULL, SIGINT, on_signal, c);
        if (r >= 0)
                r = sd_event_add_signal(c->event, NULL, SIGHUP, on_reload, c);
        return r;
}

static int add_known(const struct vm_record *v, void *userdata) {
        struct clusterd *c = userdata;

        return vm_table_put(c->known_vms, v->uuid, c);
}

static int setup_hosts(struct clusterd *c) {
        int r;

        r = vm_table_new(&c->known_vms);
        if (r >= 0)
                r = vmstore_foreach(c->db, add_known, c);
        if (r < 0)
                return log_error_errno(r, "Cannot read the VM registry: %m");
        c->hosts = calloc(c->config.n_hosts ?: 1, sizeof(*c->hosts));
        if (!c->hosts)
                return -ENOMEM;
        for (size_t i = 0; i < c->config.n_hosts; i++) {
                struct host_config *h = &c->config.hosts[i];

                r = clusterd_host_new(c, h, &c->hosts[c->n_hosts]);
                if (r < 0)
                        return log_error_errno(r, "Host %s: bad or no Address %s: %m", h->name, h->address ?: "");
                c->n_hosts++;
        }
        r = hostlinks_io_setup(c->event, &c->hosts_prepare);
        if (r < 0)
                return log_error_errno(r, "Cannot set up the host connections' event sources: %m");
        r = placement_view_new(c, &c->placement);
        if (r >= 0)
                r = reconciler_new(c, &c->reconciler);
        if (r >= 0)
                r = reconciler_hold(c->reconciler);
        if (r < 0)
                return log_error_errno(r, "Cannot set up the reconciler: %m");
        vmstore_set_hook(c->db, on_registry_change, c);
        return 0;
}

int clusterd_startup(struct clusterd *c) {
        _cleanup_free_ char *path = NULL;
        int line = 0, r;

        r = clusterd_config_path(&path);
        if (r < 0)
                return r;
        r = clusterd_config_load(&c->config, path, &line);
        if (r == -EINVAL)
                return log_error_errno(r, "%s:%d: invalid setting (unknown key, bad host name or second Address)",
                                       path, line);
        if (r < 0)
                return log_error_errno(r, "Failed to read %s: %m", path);
        clusterd_resolve_admin_group(c);
        r = open_registry(c);
        if (r >= 0)
                r = setup_event(c);
        if (r >= 0)
                r = setup_hosts(c);
        if (r >= 0)
                r = clusterd_bus_setup(c);
        if (r < 0)
                return r;
        /* Connections start now and complete in the loop: a slow or absent host delays nothing. */
        for (size_t i = 0; i < c->n_hosts; i++)
                (void) hostlink_connect(c->hosts[i]);
        r = clusterd_runtime_sync(c);
        if (r < 0)
                return r;
        (void) sd_notify(false, "READY=1");
        clusterd_host_changed(c, NULL); /* STATUS= from the start, also with no host configured */
        log_info("gpupass-clusterd %s: %zu hosts configured", GPUPASS_VERSION, c->n_hosts);
        return 0;
}

int clusterd_new(struct clusterd **ret) {
        struct clusterd *c = calloc(1, sizeof(*c));

        if (!c)
                return -ENOMEM;
        *ret = c;
        return 0;
}

int clusterd_run(struct clusterd *c) {
        return sd_event_loop(c->event);
}
