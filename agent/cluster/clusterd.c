/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gpupass-clusterd's life: the configuration, the registry, the event loop and its signals, the host
 * connections, the bus; and the way down in reverse. main.c runs new -> startup -> run -> free.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-daemon.h>

#include <grp.h>
#include <sys/stat.h>

#include "clusterd.h"
#include "bus/cluster-objects.h"
#include "registry/vmstore.h"
#include "config.h"
#include "link/hostlink.h"
#include "lifecycle/vm-runtime.h"
#include "log.h"
#include "macro.h"
#include "registry/vm-template.h"

sd_event *clusterd_event(struct clusterd *c) {
        return c->event;
}

void clusterd_host_changed(struct clusterd *c, struct hostlink *l) {
        size_t up = 0;

        for (size_t i = 0; i < c->n_hosts; i++)
                up += c->hosts[i]->state == LINK_UP;
        (void) sd_notifyf(false, "STATUS=%zu of %zu hosts up", up, c->n_hosts);
        if (l)
                host_view_refresh(c, l);
        else /* the host list itself changed (a reload) */
                for (size_t i = 0; i < c->n_hosts; i++)
                        host_view_refresh(c, c->hosts[i]);
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        struct clusterd *c = userdata;

        (void) sd_notify(false, "STOPPING=1");
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
        vm_runtimes_free(c); /* first: a stop it cancels answers its waiting call */
        cluster_objects_done(c);
        for (size_t i = 0; i < c->n_hosts; i++)
                hostlink_free(c->hosts[i]);
        free(c->hosts);
        strv_free(c->powering_on);
        sd_bus_flush_close_unref(c->bus);
        vmstore_close(c->db);
        sd_event_unref(c->event);
        clusterd_config_done(&c->config);
        free(c);
        return NULL;
}

int clusterd_startup(struct clusterd *c) {
        _cleanup_free_ char *path = NULL;
        sigset_t mask;
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
        {
                const char *state = getenv("STATE_DIRECTORY");
                _cleanup_free_ char *sdir = strndup(state && *state ? state : "/var/lib/gpupass",
                                                    strcspn(state && *state ? state : "/var/lib/gpupass", ":"));

                if (!sdir)
                        return -ENOMEM;
                (void) mkdir(sdir, 0700);
                r = vmstore_open(sdir, &c->db);
                if (r >= 0)
                        r = vm_template_setup(c->db);
                if (r < 0)
                        return log_error_errno(r, "Cannot open the VM registry in %s: %m", sdir);
        }

        r = sd_event_default(&c->event);
        if (r < 0)
                return r;
        (void) sd_event_set_watchdog(c->event, true);
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        (void) sd_event_add_signal(c->event, NULL, SIGTERM, on_signal, c);
        (void) sd_event_add_signal(c->event, NULL, SIGINT, on_signal, c);
        (void) sd_event_add_signal(c->event, NULL, SIGHUP, on_reload, c);

        c->hosts = calloc(c->config.n_hosts ?: 1, sizeof(*c->hosts));
        if (!c->hosts)
                return -ENOMEM;
        for (size_t i = 0; i < c->config.n_hosts; i++) {
                struct host_config *h = &c->config.hosts[i];

                if (!h->address)
                        return log_error_errno(EINVAL, "Host %s has no Address", h->name);
                r = hostlink_new(c, h->name, h->address, &c->hosts[c->n_hosts]);
                if (r < 0)
                        return log_error_errno(r, "Host %s: bad Address %s: %m", h->name, h->address);
                c->n_hosts++;
        }
        r = hostlinks_io_setup(c);
        if (r < 0)
                return log_error_errno(r, "Cannot set up the host connections' event sources: %m");
        /* Connections start now and complete in the loop: a slow or absent host delays nothing. */
        for (size_t i = 0; i < c->n_hosts; i++) {
                r = hostlink_connect(c->hosts[i]);
                if (r < 0)
                        log_warning_errno(r, "Host %s: cannot connect yet: %m", c->hosts[i]->name);
        }
        r = clusterd_runtime_sync(c);
        if (r < 0)
                return r;
        r = clusterd_bus_setup(c);
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
